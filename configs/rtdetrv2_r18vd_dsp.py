# RT-DETRv2-S with discrete sampling (rtdetrv2_r18vd_dsp_3x), for runtimes
# without GridSample: each sampling point reads the pixel it falls in, and
# the sampling offsets are frozen. Fine-tuned for 36 epochs from a trained
# configs/rtdetrv2_r18vd.py checkpoint (its EMA weights, as the official
# `tuning`), without strong augmentation in the last 3.
_base_ = './rtdetrv2_r18vd.py'

max_epochs = 36
stop_epoch = 33
model = dict(decoder=dict(layer_cfg=dict(cross_attn_method='discrete')))

load_from = 'work_dirs/rtdetrv2_r18vd/epoch_120.pth'
train_cfg = dict(max_epochs=max_epochs)
custom_hooks = [
    dict(hook, switch_epoch=stop_epoch)
    if hook['type'] == 'PipelineSwitchHook' else hook
    for hook in _base_.custom_hooks
]
