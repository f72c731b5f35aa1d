# The student of riformer_tiny_shapes_cls.py trained by module imitation of
# the PoolFormer of poolformer_tiny_shapes_cls.py, for the same number of
# steps, without labels. tools/distill_demo.py sets teacher_checkpoint.
_base_ = './riformer_tiny_shapes_cls.py'

model = dict(
    type='ModuleImitationClassifier',
    teacher=dict(
        type='ImageClassifier',
        backbone=dict(type='PoolFormer', arch={{_base_.tiny_arch}}),
        neck=dict(type='GlobalAveragePooling'),
        head=_base_.model.head),
    teacher_checkpoint='work_dirs/distill_demo/teacher/epoch_10.pth')
