# RT-DETR-RIFormer-S24: sized like RT-DETR-R34 (4 decoder layers, expansion 0.5).
_base_ = './_base_/rtdetr_riformer_coco.py'

model = dict(
    backbone=dict(
        arch='s24',
        init_cfg=dict(checkpoint='https://download.openmmlab.com/'
                      'mmclassification/v1/riformer/'
                      'riformer-s24_32xb128_in1k_20230406-fdab072a.pth')),
    neck=dict(in_channels=[128, 320, 512], expansion=0.5),
    decoder=dict(num_layers=4))
