# RT-DETR-RIFormer-M48: the decoder and encoder of RT-DETR-R50 (6 decoder layers,
# expansion 1.0); R101 also widens its encoder to 384 channels.
_base_ = './_base_/rtdetr_riformer_coco.py'

model = dict(
    backbone=dict(
        arch='m48',
        init_cfg=dict(checkpoint='https://download.openmmlab.com/'
                      'mmclassification/v1/riformer/'
                      'riformer-m48_32xb128_in1k_20230406-2b9d1abf.pth')),
    neck=dict(in_channels=[192, 384, 768], expansion=1.0),
    decoder=dict(num_layers=6))
