# The shared base of configs/rtdetr_riformer_*.py.
_base_ = [
    './models/rtdetr_riformer.py',
    './datasets/coco_rtdetr.py',
    './schedules/rtdetr_72e.py',
    'mmdet::_base_/default_runtime.py',
]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3,
                    save_best='coco/bbox_mAP', rule='greater'))
# As officially (sync_bn: True): in distributed runs mmengine's Runner makes
# every BatchNorm a SyncBatchNorm (per-process BN again without DDP).
sync_bn = 'torch'
# One seed for every run: mmengine seeds python, numpy and torch, the
# sampler's order and the dataloader workers from it, so two runs of a
# config on one machine train the same model (docs/reproducibility.md).
# Another: --cfg-options randomness.seed=N; a new one per run: seed=None.
randomness = dict(seed=0, deterministic=False)
