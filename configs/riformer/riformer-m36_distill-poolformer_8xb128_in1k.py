# RIFormer-M36 trained as the paper does: module imitation of a frozen
# PoolFormer-M36 (ModuleImitationClassifier; docs/distillation.md).
_base_ = './riformer-m36_8xb128_in1k.py'

# The loss weights are the class's defaults: all 1 and T = 1 (our choice,
# the paper gives none), no label loss (as the paper).
model = dict(
    type='ModuleImitationClassifier',
    teacher=dict(
        type='ImageClassifier',
        backbone=dict(type='PoolFormer', arch='m36'),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=768)),
    teacher_checkpoint='https://download.openmmlab.com/mmclassification/v0/'
    'poolformer/poolformer-m36_3rdparty_32xb128_in1k_20220414-c55e0949.pth')

# The paper's final models trained 600 epochs. AdamW, lr 4e-3 at batch 4096
# (1e-3 at 8x128 with --auto-scale-lr), 20 warm-up epochs, cosine and the
# augmentation are the inherited mmpretrain RIFormer recipe (not published
# for distillation: our choice).
train_cfg = dict(max_epochs=600)
