# D-FINE-S (Peterande/D-FINE configs/dfine/dfine_hgnetv2_s_coco.yml):
# HGNetV2-B0 with learnable affines, nothing frozen, a hybrid encoder of
# depth 0.34 and expansion 0.5, 3 decoder layers; AdamW lr 2e-4 (backbone
# 1e-4), weight decay 1e-4 but not on the encoder's and decoder's norms
# and biases; 132 epochs, strong augmentation and multi-scale (640 drawn
# 20 times in 30) until epoch 120.
# Not reproduced (a training-loop change; see docs/training.md on DEIM's
# solver, which D-FINE's is): reloading the best state of the first 120
# epochs at epoch 120 with EMA decay 0.9999 (ema_restart_decay).
_base_ = '../_base_/dfine_hgnetv2_coco.py'
from mmriformer.utils.dfine_recipe import dfine_schedule  # noqa: E402

max_epochs = 132
stop_epoch = 120
train_cfg = dict(max_epochs=max_epochs)
batch_augments, custom_hooks = dfine_schedule(
    _base_, stop_epoch, base_size_repeat=20)

model = dict(
    data_preprocessor=dict(batch_augments=batch_augments),
    backbone=dict(
        arch='B0',
        use_lab=True,
        frozen_stages=-1,
        norm_eval=False,
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=dict(
            checkpoint='https://github.com/Peterande/storage/releases/'
            'download/dfinev1.0/PPHGNetV2_B0_stage1.pth')),
    neck=dict(in_channels=[256, 512, 1024], expansion=0.5,
              depth_mult=0.34),
    decoder=dict(num_layers=3))

# Groups '^(?=.*backbone)(?!.*norm|bn).*$' (every backbone parameter, see
# the base) and '^(?=.*(?:encoder|decoder))(?=.*(?:norm|bn|bias)).*$' with
# weight decay 0: biases are not decayed either.
optim_wrapper = dict(
    optimizer=dict(lr=2e-4, weight_decay=1e-4),
    paramwise_cfg=dict(
        custom_keys={'backbone': dict(lr_mult=0.5, decay_mult=1.0)},
        bias_decay_mult=0.,
        flat_decay_mult=0.))
