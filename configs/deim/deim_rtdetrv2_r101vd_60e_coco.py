# DEIM-RTDETRv2-X: RT-DETRv2-R101vd with DEIM's recipe
# (deim_r101vd_60e_coco, mmriformer/utils/deim_recipe.py): as DEIM-L's, with
# backbone lr 2e-6 (v2-X's ratio 0.01).
_base_ = '../rtdetrv2_r101vd.py'
from mmriformer.utils.deim_recipe import deim_changes  # noqa: E402

max_epochs = 60
train_cfg = dict(max_epochs=max_epochs)
(model, optim_wrapper, param_scheduler, custom_hooks,
 train_dataloader) = deim_changes(_base_, max_epochs, no_aug_epoch=2)
