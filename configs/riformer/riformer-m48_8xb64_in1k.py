# mmpretrain's ImageNet classifier with mmriformer's RIFormer as backbone.
# Same keys as mmpretrain's own, so its checkpoints load as they are.
_base_ = 'mmpretrain::riformer/riformer-m48_8xb64_in1k.py'
custom_imports = dict(imports=['mmriformer'], allow_failed_imports=False)

# mmpretrain registers its own 'RIFormer'; ours is reached by scope.
model = dict(backbone=dict(type='mmdet.RIFormer'))

# mmpretrain draws a new seed per run; ours are seeded as the detection
# configs are (docs/reproducibility.md).
randomness = dict(seed=0, deterministic=False)
