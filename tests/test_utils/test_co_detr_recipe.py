# Copyright (c) OpenMMLab. All rights reserved.
"""Co-DETR's auxiliary ATSS head, against Co-DINO's config."""
from mmdet.models.dense_heads import ATSSHead
from mmdet.registry import MODELS

from mmriformer.utils.co_detr_recipe import atss_aux_head

# open-mmlab/mmdetection at 2a6903c09949b8f6f9a140dee8fd91eb97b922b5,
# projects/CO-DETR/configs/codino/co_dino_5scale_r50_lsj_8xb2_1x_coco.py:
# num_dec_layer 6, loss_lambda 2.0, and its CoATSSHead's values.
LOSS_WEIGHTS = dict(loss_cls=1.0 * 6 * 2.0, loss_bbox=2.0 * 6 * 2.0,
                    loss_centerness=1.0 * 6 * 2.0)


def test_co_dino_values():
    cfg = atss_aux_head(num_classes=80, in_channels=256,
                        num_decoder_layers=6, strides=[4, 8, 16, 32, 64],
                        octave_base_scale=8)
    anchors = cfg['anchor_generator']
    assert (cfg['stacked_convs'], cfg['feat_channels']) == (1, 256)
    assert (anchors['ratios'], anchors['octave_base_scale'],
            anchors['scales_per_octave']) == ([1.0], 8, 1)
    assert cfg['bbox_coder']['target_stds'] == [0.1, 0.1, 0.2, 0.2]
    assert (cfg['loss_cls']['type'], cfg['loss_cls']['gamma'],
            cfg['loss_cls']['alpha']) == ('FocalLoss', 2.0, 0.25)
    assert cfg['loss_bbox']['type'] == 'GIoULoss'
    assert {key: cfg[key]['loss_weight'] for key in LOSS_WEIGHTS} == \
        LOSS_WEIGHTS
    assert cfg['train_cfg']['assigner'] == dict(type='ATSSAssigner', topk=9)

    head = MODELS.build(cfg)
    assert isinstance(head, ATSSHead)
    assert head.prior_generator.strides == [(s, s) for s in (4, 8, 16, 32,
                                                             64)]
    # One square anchor per location, 8 strides wide.
    assert head.prior_generator.num_base_priors == [1] * 5
    assert head.prior_generator.base_anchors[0].tolist() == [[-16.0, -16.0,
                                                              16.0, 16.0]]


def test_weights_follow_the_decoder():
    cfg = atss_aux_head(num_classes=6, in_channels=128, num_decoder_layers=3,
                        loss_lambda=1.0)
    assert [cfg[key]['loss_weight']
            for key in ('loss_cls', 'loss_bbox', 'loss_centerness')
            ] == [3.0, 6.0, 3.0]
    # RT-DETR's maps, with Co-DINO's smallest anchor: 32 pixels.
    assert cfg['anchor_generator']['strides'] == [8, 16, 32]
    head = MODELS.build(cfg)
    assert head.prior_generator.base_anchors[0].tolist() == [[-16.0, -16.0,
                                                              16.0, 16.0]]
