# D-FINE-RIFormer-S24: D-FINE-M (./dfine_hgnetv2_m_coco.py: its encoder,
# 4-layer decoder and 132-epoch recipe) on RIFormer-S24, the next size up
# from D-FINE-RIFormer-S12 as RT-DETR-RIFormer-S24 is from S12 (4 decoder
# layers, as RT-DETR-R34). The name keeps the schedule, 132 epochs.
# The backbone as in ../rtdetr_riformer_s24.py (riformer_backbone,
# mmriformer/utils/riformer_backbone.py), at D-FINE-M's backbone lr (x0.1),
# its norms, biases and layer scales not decayed (see
# ./dfine_riformer_s12_132e_coco.py).
_base_ = './dfine_hgnetv2_m_coco.py'
from mmriformer.utils.riformer_backbone import riformer_backbone  # noqa: E402

model = dict(
    data_preprocessor=dict(mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375]),
    backbone=dict(_delete_=True, **riformer_backbone('s24')),
    neck=dict(in_channels=[128, 320, 512]))

optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={'backbone': dict(_delete_=True, lr_mult=0.1)}))
