# RT-DETR-RIFormer-M48: the decoder and encoder of RT-DETR-R50 (6 decoder layers,
# expansion 1.0); R101 also widens its encoder to 384 channels.
_base_ = './_base_/rtdetr_riformer_coco.py'
from mmriformer.utils.riformer_backbone import riformer_backbone  # noqa: E402

model = dict(
    backbone=riformer_backbone('m48'),
    neck=dict(in_channels=[192, 384, 768], expansion=1.0),
    decoder=dict(num_layers=6))
