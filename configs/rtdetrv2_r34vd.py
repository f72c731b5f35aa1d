# RT-DETRv2-M*: RT-DETR-R34vd with RT-DETRv2's recipe (rtdetrv2_r34vd_120e,
# mmriformer/utils/rtdetrv2_recipe.py): sampling points given per level,
# 120 epochs, backbone lr 5e-5, and from epoch stop_epoch (0-based) on
# neither multi-scale batches nor photometric distortion, zoom-out (Expand)
# or IoU crop. Biases keep v1's exemption from weight decay.
_base_ = './rtdetr_r34vd.py'
from mmriformer.utils.rtdetrv2_recipe import rtdetrv2_changes  # noqa: E402

max_epochs = 120
stop_epoch = 117
train_cfg = dict(max_epochs=max_epochs)
model, optim_wrapper, custom_hooks = rtdetrv2_changes(
    _base_, stop_epoch, backbone_lr_mult=0.5, decay_biases=False)
