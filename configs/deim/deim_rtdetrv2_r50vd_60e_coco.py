# DEIM-RTDETRv2-L: RT-DETRv2-R50vd with DEIM's recipe (deim_r50vd_60e_coco,
# mmriformer/utils/deim_recipe.py): MAL, Dense O2O (mosaic and mixup from
# epoch 4 to 34, no strong augmentation from 58), multi-scale batches until
# 58, the backbone unfrozen with its BatchNorms trained, lr 2e-4 and
# backbone lr 2e-5 (v2-L's ratio 0.1) with FlatCosineLR: flat until epoch
# 34, at half the lr for the last 2.
_base_ = '../rtdetrv2_r50vd.py'
from mmriformer.utils.deim_recipe import deim_changes  # noqa: E402

max_epochs = 60
train_cfg = dict(max_epochs=max_epochs)
(model, optim_wrapper, param_scheduler, custom_hooks,
 train_dataloader) = deim_changes(_base_, max_epochs, no_aug_epoch=2)
