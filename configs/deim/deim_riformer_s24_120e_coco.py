# DEIM on RT-DETR-RIFormer-S24, with DEIM-RTDETRv2-M*'s recipe
# (deim_r34vd_120e_coco, mmriformer/utils/deim_recipe.py): S24 is sized like
# R34 (4 decoder layers, expansion 0.5, see ../rtdetr_riformer_s24.py), so
# it takes R34's schedule: 120 epochs, mosaic and mixup from epoch 4 to 64,
# no strong augmentation from 117, lr 2e-4 and backbone lr 1e-4 (ratio 0.5),
# FlatCosineLR flat until 64 and at half the lr for the last 3. RT-DETRv2's
# sampling points and groups come with the recipe.
_base_ = '../rtdetr_riformer_s24.py'
from mmriformer.utils.deim_recipe import deim_changes  # noqa: E402

max_epochs = 120
train_cfg = dict(max_epochs=max_epochs)
(model, optim_wrapper, param_scheduler, custom_hooks,
 train_dataloader) = deim_changes(
     _base_, max_epochs, no_aug_epoch=3, backbone_lr_mult=0.5)
