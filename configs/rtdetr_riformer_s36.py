# RT-DETR-RIFormer-S36: sized like RT-DETR-R50 (6 decoder layers, expansion 1.0).
_base_ = './_base_/rtdetr_riformer_coco.py'
from mmriformer.utils.riformer_backbone import riformer_backbone  # noqa: E402

model = dict(
    backbone=riformer_backbone('s36'),
    neck=dict(in_channels=[128, 320, 512], expansion=1.0),
    decoder=dict(num_layers=6))
