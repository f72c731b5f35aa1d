# RT-DETRv2-L: RT-DETR-R50vd with RT-DETRv2's recipe (rtdetrv2_r50vd_6x,
# mmriformer/utils/rtdetrv2_recipe.py): sampling points given per level,
# and from epoch stop_epoch (0-based) on neither multi-scale batches nor
# photometric distortion, zoom-out (Expand) or IoU crop. 72 epochs and
# backbone lr 1e-5, as v1.
_base_ = './rtdetr_r50vd.py'
from mmriformer.utils.rtdetrv2_recipe import rtdetrv2_changes  # noqa: E402

stop_epoch = 71
model, optim_wrapper, custom_hooks = rtdetrv2_changes(_base_, stop_epoch)
