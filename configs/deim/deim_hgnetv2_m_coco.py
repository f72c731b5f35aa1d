# DEIM-D-FINE-M (Intellindust-AI-Lab/DEIM configs/deim_dfine/
# deim_hgnetv2_m_coco.yml): D-FINE-M with DEIM-S's recipe and groups over
# 102 epochs: mosaic and mixup from epoch 4 to 49, no strong augmentation
# and one size from 90, lr flat until 49 and at half for the last 12;
# lr 4e-4, the backbone 4e-5 but its BatchNorms at 4e-4.
# Not reproduced: the reload of the best state at epoch 90.
_base_ = '../dfine/dfine_hgnetv2_m_coco.py'
from mmriformer.utils.deim_recipe import deim_changes  # noqa: E402

max_epochs = 102
train_cfg = dict(max_epochs=max_epochs)
(model, optim_wrapper, param_scheduler, custom_hooks,
 train_dataloader) = deim_changes(
     _base_, max_epochs, no_aug_epoch=12, flat_epoch=49, lr=4e-4)
optim_wrapper['paramwise_cfg'].update(
    custom_keys={'backbone': dict(_delete_=True, lr_mult=0.1,
                                  norm_lr_mult=1.0)},
    bias_decay_mult=1.0,
    flat_decay_mult=1.0)
