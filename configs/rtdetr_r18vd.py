# RT-DETR-R18vd, the paper's baseline (3 decoder layers, expansion 0.5).
_base_ = './rtdetr_r50vd.py'

model = dict(
    backbone=dict(
        depth=18,
        # As officially for R18 and R34: nothing frozen, BatchNorm trained.
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        # mmpretrain has no ResNet-vd 18/34 weights. Start from the official
        # COCO checkpoint with load_from, or from the official ImageNet
        # PResNet weights.
        init_cfg=None),
    neck=dict(in_channels=[128, 256, 512], expansion=0.5),
    decoder=dict(num_layers=3))
