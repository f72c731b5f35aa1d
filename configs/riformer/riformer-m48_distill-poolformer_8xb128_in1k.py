# RIFormer-M48 trained as the paper does: module imitation of a frozen
# PoolFormer-M48. mmpretrain's m48 and m36 recipes differ only by arch.
_base_ = './riformer-m36_distill-poolformer_8xb128_in1k.py'

model = dict(
    backbone=dict(arch='m48'),
    teacher=dict(backbone=dict(arch='m48')),
    teacher_checkpoint='https://download.openmmlab.com/mmclassification/v0/'
    'poolformer/poolformer-m48_3rdparty_32xb128_in1k_20220414-9378f3eb.pth')
