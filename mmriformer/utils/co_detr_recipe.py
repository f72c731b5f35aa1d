# Copyright (c) OpenMMLab. All rights reserved.
"""Co-DETR's auxiliary ATSS head for an RT-DETR config.

Co-DETR (Zong et al., ICCV 2023, "DETRs with Collaborative Hybrid
Assignments Training") trains one-to-many heads on the encoder's maps beside
the one-to-one decoder and drops them for inference. Its ATSS head is
mmdet's ``ATSSHead``; Co-DETR's other parts (its Faster R-CNN head, and the
positive queries its heads feed the decoder) are not used here.
"""
from typing import Sequence

# Co-DETR's `loss_lambda` (open-mmlab/mmdetection projects/CO-DETR,
# co_dino_5scale_r50_lsj_8xb2_1x_coco.py).
LOSS_LAMBDA = 2.0


def atss_aux_head(num_classes: int,
                  in_channels: int,
                  num_decoder_layers: int,
                  strides: Sequence[int] = (8, 16, 32),
                  octave_base_scale: int = 4,
                  loss_lambda: float = LOSS_LAMBDA) -> dict:
    """Co-DETR's ATSS head, as ``model.aux_head`` of an RT-DETR config.

    Co-DINO's values: one stacked conv as wide as its input, one square
    anchor per location of side ``octave_base_scale`` times the stride,
    ATSS's top 9, focal loss, GIoU and centerness, each weighted by
    ``num_decoder_layers * loss_lambda`` (GIoU twice that), so that the
    head weighs as much as the decoder's layers together. Co-DINO's maps
    start at stride 4 with anchors of 8 strides; RT-DETR's start at stride
    8, so 4 strides give the same smallest anchor, 32 pixels.

    Args:
        num_classes (int): The detector's classes.
        in_channels (int): The width of the encoder's maps (the neck's
            ``embed_dims``).
        num_decoder_layers (int): Co-DETR's ``num_dec_layer``.
        strides (Sequence[int]): The stride of each encoder map. Defaults to
            RT-DETR's (8, 16, 32).
        octave_base_scale (int): The anchors' side over the stride.
            Defaults to 4 (Co-DINO's 8 at half the stride).
        loss_lambda (float): Co-DETR's ``loss_lambda``. Defaults to
            :data:`LOSS_LAMBDA`.

    Returns:
        dict: An mmdet ``ATSSHead`` config.
    """
    weight = num_decoder_layers * loss_lambda
    return dict(
        type='ATSSHead',
        num_classes=num_classes,
        in_channels=in_channels,
        stacked_convs=1,
        feat_channels=in_channels,
        anchor_generator=dict(
            type='AnchorGenerator',
            ratios=[1.0],
            octave_base_scale=octave_base_scale,
            scales_per_octave=1,
            strides=list(strides)),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[0.0] * 4,
            target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(
            type='FocalLoss',
            use_sigmoid=True,
            gamma=2.0,
            alpha=0.25,
            loss_weight=weight),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0 * weight),
        loss_centerness=dict(
            type='CrossEntropyLoss', use_sigmoid=True, loss_weight=weight),
        train_cfg=dict(
            assigner=dict(type='ATSSAssigner', topk=9),
            allowed_border=-1,
            pos_weight=-1,
            debug=False))
