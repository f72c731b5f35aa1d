# RIFormer-S24 trained as the paper does: module imitation of a frozen
# PoolFormer-S24. mmpretrain's s24 and s12 recipes differ only by arch.
_base_ = './riformer-s12_distill-poolformer_8xb128_in1k.py'

model = dict(
    backbone=dict(arch='s24'),
    teacher=dict(backbone=dict(arch='s24')),
    teacher_checkpoint='https://download.openmmlab.com/mmclassification/v0/'
    'poolformer/poolformer-s24_3rdparty_32xb128_in1k_20220414-d7055904.pth')
