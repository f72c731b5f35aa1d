# RT-DETR-R50vd, the paper's baseline (6 decoder layers, expansion 1.0).
# RT-DETR's ResNet-vd, PResNet: mmdet's ResNetV1d (deep stem of three 3x3
# convs, 32-32-64, and average-pool shortcuts) with a projection shortcut on
# the first block of every stage, which adds one to R18/R34's first stage.
_base_ = './_base_/rtdetr_riformer_coco.py'

model = dict(
    # As officially: pixels only scaled to [0, 1] (no mean/std), what the
    # official ResNet-vd weights were fine-tuned with.
    data_preprocessor=dict(mean=[0, 0, 0], std=[255, 255, 255]),
    backbone=dict(
        _delete_=True,
        type='PResNet',
        depth=50,
        num_stages=4,
        out_indices=(1, 2, 3),  # strides 8, 16, 32
        # As officially for R50 and R101: frozen stem, frozen BatchNorm.
        frozen_stages=0,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='pytorch',
        # The official starting point: lyuwenyu/RT-DETR's ImageNet
        # ResNet50-vd, SSLD-distilled by Paddle (83.0% top-1), for pixels in
        # [0, 1] as this config feeds them. PResNet loads this layout (and
        # mmpretrain's ResNetV1d or mmdet's) strictly: a key that does not
        # fit is an error. mmpretrain's ResNetV1d-50 (resnetv1d50_b32x8_
        # imagenet_20210531-db14775a.pth, 77.5%) also loads completely, but
        # was trained on mean/std-normalised pixels. Offline: give a local
        # copy (model.backbone.init_cfg.checkpoint=PATH); from scratch:
        # model.backbone.init_cfg=None.
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/lyuwenyu/storage/releases/'
            'download/v0.1/ResNet50_vd_ssld_v2_pretrained_from_paddle.pth')),
    neck=dict(in_channels=[512, 1024, 2048], expansion=1.0),
    decoder=dict(num_layers=6))
