# D-FINE-X (Peterande/D-FINE configs/dfine/dfine_hgnetv2_x_coco.yml): L's
# recipe with HGNetV2-B5, a 384-wide encoder (feedforward 2048) projected
# to the 256-wide decoder, reg_scale 8, the backbone at lr 2.5e-6, and
# RT-DETR's 13 sizes (640 three times) until epoch 72 of 80.
# Not reproduced: the reload with EMA decay 0.9998 at epoch 72.
_base_ = './dfine_hgnetv2_l_coco.py'
from mmriformer.utils.dfine_recipe import dfine_schedule  # noqa: E402

batch_augments, custom_hooks = dfine_schedule(
    _base_, _base_.stop_epoch, base_size_repeat=3)

model = dict(
    data_preprocessor=dict(batch_augments=batch_augments),
    backbone=dict(
        arch='B5',
        init_cfg=dict(
            checkpoint='https://github.com/Peterande/storage/releases/'
            'download/dfinev1.0/PPHGNetV2_B5_stage1.pth')),
    neck=dict(embed_dims=384, feedforward_channels=2048),
    decoder=dict(reg_scale=8.))

optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.01)}))
