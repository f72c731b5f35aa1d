# DEIM on RT-DETR-RIFormer-S12, with DEIM-RTDETRv2-S's recipe
# (deim_r18vd_120e_coco, mmriformer/utils/deim_recipe.py): S12 is sized like
# R18 (3 decoder layers, expansion 0.5, see ../rtdetr_riformer_s12.py), so
# it takes R18's schedule: 120 epochs, mosaic and mixup from epoch 4 to 64,
# no strong augmentation from 117, lr 2e-4 for all parameters (v2-S and
# DEIM-S train the backbone at the base lr), FlatCosineLR flat until 64 and
# at half the lr for the last 3. RT-DETRv2's sampling points and groups
# come with the recipe.
_base_ = '../rtdetr_riformer_s12.py'
from mmriformer.utils.deim_recipe import deim_changes  # noqa: E402

max_epochs = 120
train_cfg = dict(max_epochs=max_epochs)
(model, optim_wrapper, param_scheduler, custom_hooks,
 train_dataloader) = deim_changes(
     _base_, max_epochs, no_aug_epoch=3, backbone_lr_mult=1.0)
