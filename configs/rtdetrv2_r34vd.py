# RT-DETRv2-M*: RT-DETR-R34vd with RT-DETRv2's recipe
# (rtdetrv2_r34vd_120e): sampling points given per level, 120 epochs,
# backbone lr 5e-5, and from epoch stop_epoch (0-based) on neither
# multi-scale batches nor photometric distortion, zoom-out (Expand) or IoU
# crop.
_base_ = './rtdetr_r34vd.py'

max_epochs = 120
stop_epoch = 117
model = dict(
    data_preprocessor=dict(batch_augments=[
        dict(augment, stop_epoch=stop_epoch)
        for augment in _base_.model.data_preprocessor.batch_augments
    ]),
    # The same 4 points on each level, in v2's per-level form.
    decoder=dict(layer_cfg=dict(num_points=[4, 4, 4])))

train_cfg = dict(max_epochs=max_epochs)
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.5)}))

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
