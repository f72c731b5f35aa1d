# RT-DETR-R18vd, the paper's baseline (3 decoder layers, expansion 0.5).
_base_ = './rtdetr_r50vd.py'

model = dict(
    backbone=dict(
        depth=18,
        # As officially for R18 and R34: nothing frozen, BatchNorm trained.
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        # As officially: lyuwenyu/RT-DETR's ImageNet ResNet18-vd (Paddle's,
        # 72.3% top-1), loaded strictly (see configs/rtdetr_r50vd.py). From
        # scratch (about -3 AP officially): model.backbone.init_cfg=None.
        init_cfg=dict(
            checkpoint='https://github.com/lyuwenyu/storage/releases/'
            'download/v0.1/ResNet18_vd_pretrained_from_paddle.pth')),
    neck=dict(in_channels=[128, 256, 512], expansion=0.5),
    decoder=dict(num_layers=3))
