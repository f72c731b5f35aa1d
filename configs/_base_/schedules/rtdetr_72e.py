# RT-DETR's recipe: AdamW 1e-4 (backbone x0.1), weight decay 1e-4 except on
# norms, biases and other 1-D parameters (in the backbone too, which
# mmengine's default constructor does not do for a custom key), grad clip
# 0.1, linear warm-up over 2000 iterations then constant, EMA (momentum
# 1e-4, 2000-iteration ramp) for evaluation and checkpoints, 72 epochs at a
# total batch of 16.
max_epochs = 72
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                   weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    constructor='DecayPolicyOptimWrapperConstructor',
    paramwise_cfg=dict(
        custom_keys={'backbone': dict(lr_mult=0.1)},
        norm_decay_mult=0,
        bias_decay_mult=0,
        flat_decay_mult=0))

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=2000)
]

custom_hooks = [
    # Fails early when num_classes disagrees with the dataset's classes.
    dict(type='NumClassCheckHook'),
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=1e-4,
         gamma=2000, update_buffers=True, priority=49),
    # A resumed run draws the random numbers of the uninterrupted one.
    dict(type='ReseedHook')
]

# 4 GPUs x 4 images; `--auto-scale-lr` rescales lr for another total batch.
auto_scale_lr = dict(enable=False, base_batch_size=16)
