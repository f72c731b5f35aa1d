# D-FINE-M (Peterande/D-FINE configs/dfine/dfine_hgnetv2_m_coco.yml): S's
# recipe with HGNetV2-B2, a hybrid encoder of depth 0.67 and expansion 1.0,
# 4 decoder layers, the backbone at lr 2e-5, and 640 drawn 6 times in 16
# sizes until epoch 120 of 132.
# Not reproduced, as for S: the reload with EMA decay 0.9999 at epoch 120.
_base_ = './dfine_hgnetv2_s_coco.py'
from mmriformer.utils.dfine_recipe import dfine_schedule  # noqa: E402

batch_augments, custom_hooks = dfine_schedule(
    _base_, _base_.stop_epoch, base_size_repeat=6)

model = dict(
    data_preprocessor=dict(batch_augments=batch_augments),
    backbone=dict(
        arch='B2',
        init_cfg=dict(
            checkpoint='https://github.com/Peterande/storage/releases/'
            'download/dfinev1.0/PPHGNetV2_B2_stage1.pth')),
    neck=dict(in_channels=[384, 768, 1536], expansion=1.0,
              depth_mult=0.67),
    decoder=dict(num_layers=4))

optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
