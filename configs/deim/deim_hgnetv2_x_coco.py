# DEIM-D-FINE-X (Intellindust-AI-Lab/DEIM configs/deim_dfine/
# deim_hgnetv2_x_coco.yml): DEIM-D-FINE-L's recipe on D-FINE-X: its
# HGNetV2-B5 trained whole at lr 5e-6 (BatchNorms too), lr 5e-4.
# Not reproduced: the reload of the best state at epoch 50.
_base_ = '../dfine/dfine_hgnetv2_x_coco.py'
from mmriformer.utils.deim_recipe import deim_changes  # noqa: E402

max_epochs = 58
train_cfg = dict(max_epochs=max_epochs)
(model, optim_wrapper, param_scheduler, custom_hooks,
 train_dataloader) = deim_changes(
     _base_, max_epochs, no_aug_epoch=8, flat_epoch=29, lr=5e-4,
     backbone_norm_lr_mult=None)
