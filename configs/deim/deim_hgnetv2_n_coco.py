# DEIM-D-FINE-N (Intellindust-AI-Lab/DEIM configs/deim_dfine/
# deim_hgnetv2_n_coco.yml): D-FINE-N (its groups, lr 8e-4 and backbone
# 4e-4, total batch 128, one training size: base_size_repeat ~) with DEIM's
# recipe over 160 epochs: mosaic and mixup from epoch 4 to 78, no strong
# augmentation from 148, a constant lr after the warm-up (lr_gamma 1.0;
# DEIM's flat_epoch 7800 then changes nothing, so ours is the policy's 78).
# Not reproduced: the reload of the best state at epoch 148.
_base_ = '../dfine/dfine_hgnetv2_n_coco.py'
from mmriformer.utils.deim_recipe import deim_changes  # noqa: E402

(model, optim_wrapper, param_scheduler, custom_hooks,
 train_dataloader) = deim_changes(
     _base_, _base_.max_epochs, no_aug_epoch=12, flat_epoch=78, lr=8e-4,
     lr_gamma=1.0, backbone_norm_lr_mult=None, multi_scale=False)
