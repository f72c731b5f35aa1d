# D-FINE-RIFormer-S12: D-FINE-S (./dfine_hgnetv2_s_coco.py: its encoder,
# 3-layer decoder and 132-epoch recipe) on RIFormer-S12, as
# RT-DETR-RIFormer-S12 takes RT-DETR-R18's size: D-FINE-S is the D-FINE of
# RT-DETR-R18's size (3 decoder layers, expansion 0.5), and the name keeps
# its schedule, 132 epochs (strong augmentation until 120).
# The backbone as in ../rtdetr_riformer_s12.py (riformer_backbone,
# mmriformer/utils/riformer_backbone.py): mmpretrain's ImageNet
# RIFormer-S12 on mean/std-normalised pixels, at D-FINE-S's backbone lr
# (x0.5); its norms, biases and layer scales are not decayed (RIFormer's
# norms are named `norm`, which D-FINE's backbone group excludes).
_base_ = './dfine_hgnetv2_s_coco.py'
from mmriformer.utils.riformer_backbone import riformer_backbone  # noqa: E402

model = dict(
    data_preprocessor=dict(mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375]),
    backbone=dict(_delete_=True, **riformer_backbone('s12')),
    neck=dict(in_channels=[128, 320, 512]))

optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={'backbone': dict(_delete_=True, lr_mult=0.5)}))
