# RT-DETR with a RIFormer backbone (strides 8/16/32 from out_indices 2, 4, 6).
# No bases, but `_base_` comes first: mmengine reads a config that imports
# before any `_base_` as a lazy-import (pure Python) config.
_base_ = []
from mmriformer.utils.riformer_backbone import riformer_backbone  # noqa: E402

custom_imports = dict(imports=['mmriformer'], allow_failed_imports=False)

num_classes = 80

model = dict(
    type='RTDETR',
    num_queries=300,
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        # As the RIFormer backbones were pretrained by mmpretrain: ImageNet's
        # mean and std, RGB. (RT-DETR's ResNet-vd configs only scale pixels
        # to [0, 1], as the official weights were fine-tuned.) The ONNX
        # export folds this into its graph and still takes [0, 1] images.
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        # RT-DETR's multi-scale training: one of 13 sizes (640 three times)
        # per batch, nearest resizing.
        batch_augments=[dict(type='BatchRandomChoiceResize')]),
    # RIFormer-S24 from mmpretrain's ImageNet weights; the sizes set theirs.
    backbone=riformer_backbone('s24'),
    neck=dict(
        type='HybridEncoder',
        in_channels=[128, 320, 512],
        feat_strides=[8, 16, 32],
        embed_dims=256,
        num_heads=8,
        feedforward_channels=1024,
        use_encoder_idx=[2],
        num_encoder_layers=1,
        expansion=1.0,
        depth_mult=1.0),
    decoder=dict(
        num_layers=6,
        eval_idx=-1,
        layer_cfg=dict(embed_dims=256, num_heads=8, feedforward_channels=1024,
                       num_levels=3, num_points=4)),
    bbox_head=dict(
        type='RTDETRHead',
        num_classes=num_classes,
        embed_dims=256,
        as_two_stage=True,
        sync_cls_avg_factor=True,
        loss_cls=dict(type='RTDETRVarifocalLoss', use_sigmoid=True,
                      alpha=0.75, gamma=2.0, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=5.0),
        loss_iou=dict(type='GIoULoss', loss_weight=2.0)),
    dn_cfg=dict(
        label_noise_scale=0.5,
        box_noise_scale=1.0,
        group_cfg=dict(dynamic=True, num_groups=None, num_dn_queries=100)),
    train_cfg=dict(
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='FocalLossCost', weight=2.0),
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='IoUCost', iou_mode='giou', weight=2.0)
            ])),
    test_cfg=dict(max_per_img=300))
