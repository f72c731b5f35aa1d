# RT-DETR-R34vd, the paper's baseline (4 decoder layers, expansion 0.5).
_base_ = './rtdetr_r18vd.py'

model = dict(
    backbone=dict(
        depth=34,
        # As officially: ImageNet ResNet34-vd (Paddle's, 76.0% top-1).
        init_cfg=dict(
            checkpoint='https://github.com/lyuwenyu/storage/releases/'
            'download/v0.1/ResNet34_vd_pretrained_from_paddle.pth')),
    decoder=dict(num_layers=4))
