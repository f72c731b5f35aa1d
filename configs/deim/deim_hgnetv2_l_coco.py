# DEIM-D-FINE-L (Intellindust-AI-Lab/DEIM configs/deim_dfine/
# deim_hgnetv2_l_coco.yml): D-FINE-L's groups with its HGNetV2-B4 trained
# whole (nothing frozen, BatchNorms trained: configs/base/deim.yml), DEIM's
# recipe over 58 epochs: mosaic and mixup from epoch 4 to 29, no strong
# augmentation and one size from 50, lr flat until 29 and at half for the
# last 8; lr 5e-4, the backbone (its BatchNorms too) 2.5e-5.
# Not reproduced: the reload of the best state at epoch 50.
_base_ = '../dfine/dfine_hgnetv2_l_coco.py'
from mmriformer.utils.deim_recipe import deim_changes  # noqa: E402

max_epochs = 58
train_cfg = dict(max_epochs=max_epochs)
(model, optim_wrapper, param_scheduler, custom_hooks,
 train_dataloader) = deim_changes(
     _base_, max_epochs, no_aug_epoch=8, flat_epoch=29, lr=5e-4,
     backbone_norm_lr_mult=None)
