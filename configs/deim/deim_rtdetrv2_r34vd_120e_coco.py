# DEIM-RTDETRv2-M*: RT-DETRv2-R34vd with DEIM's recipe (deim_r34vd_120e_coco,
# mmriformer/utils/deim_recipe.py): MAL, Dense O2O (mosaic and mixup from
# epoch 4 to 64, no strong augmentation from 117), multi-scale batches until
# 117, lr 2e-4 and backbone lr 1e-4 (v2-M*'s ratio 0.5) with FlatCosineLR:
# flat until epoch 64, at half the lr for the last 3. Unlike v2-M*, biases
# are decayed (DEIM's groups exempt norms only).
_base_ = '../rtdetrv2_r34vd.py'
from mmriformer.utils.deim_recipe import deim_changes  # noqa: E402

max_epochs = 120
train_cfg = dict(max_epochs=max_epochs)
(model, optim_wrapper, param_scheduler, custom_hooks,
 train_dataloader) = deim_changes(_base_, max_epochs, no_aug_epoch=3)
