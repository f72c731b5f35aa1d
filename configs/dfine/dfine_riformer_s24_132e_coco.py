# D-FINE-RIFormer-S24: D-FINE-M (./dfine_hgnetv2_m_coco.py: its encoder,
# 4-layer decoder and 132-epoch recipe) on RIFormer-S24, the next size up
# from D-FINE-RIFormer-S12 as RT-DETR-RIFormer-S24 is from S12 (4 decoder
# layers, as RT-DETR-R34). The name keeps the schedule, 132 epochs.
# The backbone as in ../rtdetr_riformer_s24.py, at D-FINE-M's backbone lr
# (x0.1), its norms, biases and layer scales not decayed (see
# ./dfine_riformer_s12_132e_coco.py).
_base_ = './dfine_hgnetv2_m_coco.py'

model = dict(
    data_preprocessor=dict(mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375]),
    backbone=dict(
        _delete_=True,
        type='RIFormer',
        arch='s24',
        out_indices=(2, 4, 6),  # strides 8, 16, 32
        drop_path_rate=0.1,
        frozen_stages=-1,
        init_cfg=dict(type='Pretrained', prefix='backbone.',
                      checkpoint='https://download.openmmlab.com/'
                      'mmclassification/v1/riformer/'
                      'riformer-s24_32xb128_in1k_20230406-fdab072a.pth')),
    neck=dict(in_channels=[128, 320, 512]))

optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={'backbone': dict(_delete_=True, lr_mult=0.1)}))
