# RT-DETRv2-S: RT-DETR-R18vd with RT-DETRv2's recipe (rtdetrv2_r18vd_120e):
# sampling points given per level, 120 epochs, the backbone at the base lr
# (1e-4), single-scale training (the official `scales: ~`), and no
# photometric distortion, zoom-out (Expand) or IoU crop from epoch
# stop_epoch (0-based) on.
_base_ = './rtdetr_r18vd.py'

max_epochs = 120
stop_epoch = 117
model = dict(
    data_preprocessor=dict(batch_augments=None),
    # The same 4 points on each level, in v2's per-level form.
    decoder=dict(layer_cfg=dict(num_points=[4, 4, 4])))

train_cfg = dict(max_epochs=max_epochs)
# v2's parameter groups (norm|bn, not bias): biases, attention's
# in_proj_bias included, are decayed; norms are not.
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=1.0)},
                       bias_decay_mult=1.0, flat_decay_mult=1.0))

# The strong augmentations v2 drops at the end.
strong_augments = ('RandomPhotometricDistort', 'Expand', 'RandomIoUCrop')
custom_hooks = _base_.custom_hooks + [
    dict(type='PipelineSwitchHook',
         switch_epoch=stop_epoch,
         switch_pipeline=[
             transform for transform in _base_.train_pipeline
             if transform['type'] not in strong_augments
         ])
]
