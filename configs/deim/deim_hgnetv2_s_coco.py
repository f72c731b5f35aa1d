# DEIM-D-FINE-S (Intellindust-AI-Lab/DEIM configs/deim_dfine/
# deim_hgnetv2_s_coco.yml with configs/base/deim.yml):
# D-FINE-S (../dfine/dfine_hgnetv2_s_coco.py) with DEIM's recipe
# (mmriformer/utils/deim_recipe.py): MAL, SiLU in the decoder, Dense O2O
# (mosaic and mixup from epoch 4 to 64, no strong augmentation and one size
# from 120), FlatCosineLR flat until 64 and at half the lr for the last 12
# of 132 epochs, warm-up 2000 iterations; lr 4e-4, the backbone 2e-4 but
# its BatchNorms at 4e-4 ('^(?=.*backbone)(?!.*bn).*$'), weight decay 1e-4
# on everything but norms ('^(?=.*(?:norm|bn)).*$'): biases are decayed.
# Not reproduced (see docs/training.md): the reload of the best state at
# epoch 120.
_base_ = '../dfine/dfine_hgnetv2_s_coco.py'
from mmriformer.utils.deim_recipe import deim_changes  # noqa: E402

(model, optim_wrapper, param_scheduler, custom_hooks,
 train_dataloader) = deim_changes(
     _base_, _base_.max_epochs, no_aug_epoch=12, flat_epoch=64, lr=4e-4)
optim_wrapper['paramwise_cfg'].update(
    custom_keys={'backbone': dict(_delete_=True, lr_mult=0.5,
                                  norm_lr_mult=1.0)},
    bias_decay_mult=1.0,
    flat_decay_mult=1.0)
