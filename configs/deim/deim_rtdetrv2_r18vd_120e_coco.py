# DEIM-RTDETRv2-S: RT-DETRv2-R18vd with DEIM's recipe (deim_r18vd_120e_coco,
# mmriformer/utils/deim_recipe.py): MAL, Dense O2O (mosaic and mixup from
# epoch 4 to 64, no strong augmentation from 117), multi-scale batches until
# 117, lr 2e-4 for all parameters (the backbone too, as v2-S) with
# FlatCosineLR: flat until epoch 64, at half the lr for the last 3.
# DEIM's collate function has no `scales` argument (v2-S's `scales: ~`), so
# its multi-scale follows base_size_repeat and stop_epoch as for the others.
_base_ = '../rtdetrv2_r18vd.py'
from mmriformer.utils.deim_recipe import deim_changes  # noqa: E402

max_epochs = 120
train_cfg = dict(max_epochs=max_epochs)
(model, optim_wrapper, param_scheduler, custom_hooks,
 train_dataloader) = deim_changes(_base_, max_epochs, no_aug_epoch=3)
