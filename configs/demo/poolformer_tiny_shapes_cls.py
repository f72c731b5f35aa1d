# The teacher of tools/distill_demo.py: mmpretrain's PoolFormer with the
# student's stage layout, trained with labels.
_base_ = './riformer_tiny_shapes_cls.py'

model = dict(backbone=dict(type='PoolFormer', frozen_stages=-1))
train_cfg = dict(max_epochs=10)
