# RT-DETR-RIFormer-S12: sized like RT-DETR-R18 (3 decoder layers, expansion 0.5).
_base_ = './_base_/rtdetr_riformer_coco.py'

model = dict(
    backbone=dict(
        arch='s12',
        init_cfg=dict(checkpoint='https://download.openmmlab.com/'
                      'mmclassification/v1/riformer/'
                      'riformer-s12_32xb128_in1k_20230406-6741ce71.pth')),
    neck=dict(in_channels=[128, 320, 512], expansion=0.5),
    decoder=dict(num_layers=3))
