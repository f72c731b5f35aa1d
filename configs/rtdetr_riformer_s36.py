# RT-DETR-RIFormer-S36: sized like RT-DETR-R50 (6 decoder layers, expansion 1.0).
_base_ = './_base_/rtdetr_riformer_coco.py'

model = dict(
    backbone=dict(
        arch='s36',
        init_cfg=dict(checkpoint='https://download.openmmlab.com/'
                      'mmclassification/v1/riformer/'
                      'riformer-s36_32xb128_in1k_20230406-fdfcd3b0.pth')),
    neck=dict(in_channels=[128, 320, 512], expansion=1.0),
    decoder=dict(num_layers=6))
