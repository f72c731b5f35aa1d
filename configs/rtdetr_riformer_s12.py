# RT-DETR-RIFormer-S12: sized like RT-DETR-R18 (3 decoder layers, expansion 0.5).
_base_ = './_base_/rtdetr_riformer_coco.py'
from mmriformer.utils.riformer_backbone import riformer_backbone  # noqa: E402

model = dict(
    backbone=riformer_backbone('s12'),
    neck=dict(in_channels=[128, 320, 512], expansion=0.5),
    decoder=dict(num_layers=3))
