# RIFormer-S36 trained as the paper does: module imitation of a frozen
# PoolFormer-S36. mmpretrain's s36 and s12 recipes differ only by arch.
_base_ = './riformer-s12_distill-poolformer_8xb128_in1k.py'

model = dict(
    backbone=dict(arch='s36'),
    teacher=dict(backbone=dict(arch='s36')),
    teacher_checkpoint='https://download.openmmlab.com/mmclassification/v0/'
    'poolformer/poolformer-s36_3rdparty_32xb128_in1k_20220414-d78ff3e8.pth')
