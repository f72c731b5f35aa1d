# D-FINE-N (Peterande/D-FINE configs/dfine/dfine_hgnetv2_n_coco.yml): S's
# backbone returning strides 16 and 32 only, a 128-wide hybrid encoder
# (feedforward 512, depth 0.5, expansion 0.34) and decoder (2 levels of 6
# sampling points); AdamW lr 8e-4 (backbone 4e-4); 160 epochs, strong
# augmentation until epoch 148, one training size (base_size_repeat ~);
# a total batch of 128 (16 x 8 GPUs).
# Not reproduced, as for S: the reload with EMA decay 0.9999 at epoch 148.
_base_ = './dfine_hgnetv2_s_coco.py'
from mmriformer.utils.dfine_recipe import dfine_schedule  # noqa: E402

max_epochs = 160
stop_epoch = 148
train_cfg = dict(max_epochs=max_epochs)
batch_augments, custom_hooks = dfine_schedule(
    _base_, stop_epoch, base_size_repeat=None)

model = dict(
    data_preprocessor=dict(batch_augments=batch_augments),
    backbone=dict(out_indices=(2, 3)),
    neck=dict(
        in_channels=[512, 1024],
        feat_strides=[16, 32],
        embed_dims=128,
        feedforward_channels=512,
        use_encoder_idx=[1],
        expansion=0.34,
        depth_mult=0.5),
    decoder=dict(
        layer_cfg=dict(embed_dims=128, feedforward_channels=512,
                       num_levels=2, num_points=[6, 6])),
    bbox_head=dict(embed_dims=128))

optim_wrapper = dict(optimizer=dict(lr=8e-4))
train_dataloader = dict(batch_size=16)
auto_scale_lr = dict(base_batch_size=128)
