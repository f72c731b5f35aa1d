# RT-DETRv2-S: RT-DETR-R18vd with RT-DETRv2's recipe (rtdetrv2_r18vd_120e,
# mmriformer/utils/rtdetrv2_recipe.py): sampling points given per level,
# 120 epochs, the backbone at the base lr (1e-4), single-scale training (the
# official `scales: ~`), and no photometric distortion, zoom-out (Expand)
# or IoU crop from epoch stop_epoch (0-based) on.
_base_ = './rtdetr_r18vd.py'
from mmriformer.utils.rtdetrv2_recipe import rtdetrv2_changes  # noqa: E402

max_epochs = 120
stop_epoch = 117
train_cfg = dict(max_epochs=max_epochs)
model, optim_wrapper, custom_hooks = rtdetrv2_changes(
    _base_, stop_epoch, multi_scale=False, backbone_lr_mult=1.0)
