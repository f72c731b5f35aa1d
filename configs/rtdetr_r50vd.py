# RT-DETR-R50vd, the paper's baseline (6 decoder layers, expansion 1.0).
# RT-DETR's ResNet-vd, PResNet: mmdet's ResNetV1d (deep stem of three 3x3
# convs, 32-32-64, and average-pool shortcuts) with a projection shortcut on
# the first block of every stage, which adds one to R18/R34's first stage.
_base_ = './_base_/rtdetr_riformer_coco.py'

model = dict(
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
        init_cfg=dict(
            type='Pretrained', prefix='backbone.',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/'
            'resnet/resnetv1d50_b32x8_imagenet_20210531-db14775a.pth')),
    neck=dict(in_channels=[512, 1024, 2048], expansion=1.0),
    decoder=dict(num_layers=6))
