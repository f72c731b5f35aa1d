# RT-DETR-R101vd, the paper's baseline: a wider encoder (384 channels, FFN
# 2048) than the decoder (256), and backbone lr 1e-6.
_base_ = './rtdetr_r50vd.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(
            checkpoint='https://download.openmmlab.com/mmclassification/v0/'
            'resnet/resnetv1d101_b32x8_imagenet_20210531-6e13bcd3.pth')),
    neck=dict(embed_dims=384, feedforward_channels=2048))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.01)}))
