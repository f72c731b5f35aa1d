# RT-DETRv2-M: RT-DETRv2-L's recipe on RT-DETR-R50vd-m (rtdetrv2_r50vd_m_7x,
# mmriformer/utils/rtdetrv2_recipe.py): encoder expansion 0.5, decoder
# layer 3 of 6 at test time, 84 epochs, and the strong augmentation and
# multi-scale batches stopped from epoch 81.
_base_ = './rtdetr_r50vd_m.py'
from mmriformer.utils.rtdetrv2_recipe import rtdetrv2_changes  # noqa: E402

max_epochs = 84
stop_epoch = 81
train_cfg = dict(max_epochs=max_epochs)
model, optim_wrapper, custom_hooks = rtdetrv2_changes(_base_, stop_epoch)
