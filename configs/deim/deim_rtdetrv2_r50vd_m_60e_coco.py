# DEIM-RTDETRv2-M: RT-DETRv2-R50vd-m with DEIM's recipe
# (deim_r50vd_m_60e_coco, mmriformer/utils/deim_recipe.py), as DEIM-L's, and
# a decoder of 3 layers that all train (v2-M trains 6 and runs 3 at test).
_base_ = '../rtdetrv2_r50vd_m.py'
from mmriformer.utils.deim_recipe import deim_changes  # noqa: E402

max_epochs = 60
train_cfg = dict(max_epochs=max_epochs)
(model, optim_wrapper, param_scheduler, custom_hooks,
 train_dataloader) = deim_changes(_base_, max_epochs, no_aug_epoch=2)
model['decoder'].update(num_layers=3, eval_idx=2)
