# RT-DETRv2-M: RT-DETRv2-L's recipe on RT-DETR-R50vd-m (rtdetrv2_r50vd_m_7x):
# encoder expansion 0.5, decoder layer 3 of 6 at test time, 84 epochs, and
# the strong augmentation and multi-scale batches stopped from epoch 81.
_base_ = './rtdetrv2_r50vd.py'

max_epochs = 84
stop_epoch = 81
model = dict(
    data_preprocessor=dict(batch_augments=[
        dict(augment, stop_epoch=stop_epoch)
        for augment in _base_.model.data_preprocessor.batch_augments
    ]),
    neck=dict(expansion=0.5),
    decoder=dict(eval_idx=2))

train_cfg = dict(max_epochs=max_epochs)
custom_hooks = [
    dict(hook, switch_epoch=stop_epoch)
    if hook['type'] == 'PipelineSwitchHook' else hook
    for hook in _base_.custom_hooks
]
