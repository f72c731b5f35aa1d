# RT-DETR-R101vd, the paper's baseline: a wider encoder (384 channels, FFN
# 2048) than the decoder (256), and backbone lr 1e-6.
_base_ = './rtdetr_r50vd.py'

model = dict(
    backbone=dict(
        depth=101,
        # As officially: ImageNet ResNet101-vd SSLD (83.7% top-1), see
        # configs/rtdetr_r50vd.py.
        init_cfg=dict(
            checkpoint='https://github.com/lyuwenyu/storage/releases/'
            'download/v0.1/ResNet101_vd_ssld_pretrained_from_paddle.pth')),
    neck=dict(embed_dims=384, feedforward_channels=2048))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.01)}))
