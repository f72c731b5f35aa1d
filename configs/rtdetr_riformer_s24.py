# RT-DETR-RIFormer-S24: sized like RT-DETR-R34 (4 decoder layers, expansion 0.5).
_base_ = './_base_/rtdetr_riformer_coco.py'
from mmriformer.utils.riformer_backbone import riformer_backbone  # noqa: E402

model = dict(
    backbone=riformer_backbone('s24'),
    neck=dict(in_channels=[128, 320, 512], expansion=0.5),
    decoder=dict(num_layers=4))
