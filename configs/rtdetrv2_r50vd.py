# RT-DETRv2-L: RT-DETR-R50vd with RT-DETRv2's recipe (rtdetrv2_r50vd_6x):
# sampling points given per level, and from epoch stop_epoch (0-based) on
# neither multi-scale batches nor photometric distortion, zoom-out (Expand)
# or IoU crop. 72 epochs and backbone lr 1e-5, as v1.
_base_ = './rtdetr_r50vd.py'

stop_epoch = 71
model = dict(
    data_preprocessor=dict(batch_augments=[
        dict(augment, stop_epoch=stop_epoch)
        for augment in _base_.model.data_preprocessor.batch_augments
    ]),
    # The same 4 points on each level, in v2's per-level form.
    decoder=dict(layer_cfg=dict(num_points=[4, 4, 4])))

# v2's parameter groups (norm|bn, not bias): biases, attention's
# in_proj_bias included, are decayed; norms are not.
optim_wrapper = dict(
    paramwise_cfg=dict(bias_decay_mult=1.0, flat_decay_mult=1.0))

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
