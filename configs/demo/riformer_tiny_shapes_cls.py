# A RIFormer of 8 blocks trained with labels only on the synthetic shape
# classes: the baseline of tools/distill_demo.py.
_base_ = [
    '../_base_/datasets/shapes_cls.py', '../_base_/schedules/shapes_cls.py',
    'mmpretrain::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmriformer'], allow_failed_imports=False)

# The stage layout of the teacher (poolformer_tiny_shapes_cls.py).
tiny_arch = dict(
    layers=[2, 2, 2, 2],
    embed_dims=[32, 64, 128, 192],
    mlp_ratios=[4, 4, 4, 4],
    layer_scale_init_value=1e-5)
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='mmdet.RIFormer',
        arch=tiny_arch,
        init_cfg=[
            dict(
                type='TruncNormal',
                layer=['Conv2d', 'Linear'],
                std=.02,
                bias=0.),
            dict(type='Constant', layer=['GroupNorm'], val=1., bias=0.),
        ]),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=_base_.data_preprocessor.num_classes,
        in_channels=192))

default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(max_keep_ckpts=1))
# The three runs of tools/distill_demo.py share one seed
# (docs/reproducibility.md).
randomness = dict(seed=0, deterministic=False)
