# The CPU demo with DEIM's recipe (mmriformer/utils/deim_recipe.py): the
# RT-DETR demo's model, data (the same 1000 training images), seed and batch
# of 8, with MAL, the union of matchings, Dense O2O and FlatCosineLR, in
# half its iterations: 4 epochs of 125 iterations instead of 8; and, beside
# the decoder, Co-DETR's auxiliary ATSS head (mmriformer/utils/
# co_detr_recipe.py), unused in prediction. Its mAP after 500 iterations,
# with and without the auxiliary head (--cfg-options model.aux_head=None),
# against the RT-DETR demo's after 1000: docs/training.md.
_base_ = './rtdetr_riformer_s12_shapes.py'
from mmriformer.utils.co_detr_recipe import atss_aux_head  # noqa: E402
from mmriformer.utils.deim_recipe import deim_changes  # noqa: E402

# DEIM's schedule shrunk to 4 epochs, its stages kept in order (R18: clean
# to epoch 4, mosaic and mixup to 4 + 120 // 2 = 64, clean from 117 of
# 120): a clean first epoch (start_epoch 1; from epoch 0 the mosaic and
# mixup slow the start from scratch: mAP 0.195 at 500), mosaic and mixup
# in epoch 1 (flat_epoch 2, the lr's flat end too), the strong
# augmentation without the mosaic in epoch 2, the last epoch clean at the
# minimum lr (no_aug_epoch 1, the 3 of 120 rounded up to a whole epoch).
max_epochs = 4
train_cfg = dict(max_epochs=max_epochs)
(model, optim_wrapper, param_scheduler, custom_hooks,
 train_dataloader) = deim_changes(
     _base_,
     max_epochs,
     no_aug_epoch=1,
     start_epoch=1,
     flat_epoch=2,
     # DEIM doubles RT-DETRv2's lr (1e-4 to 2e-4): the demo's 1e-3 doubled.
     lr=2e-3,
     # The RT-DETR demo warms up over 100 of its 1000 iterations; the same
     # tenth of this run.
     warmup_iter=50,
     # Half the input size, as DEIM's 320 for 640.
     mosaic_size=112,
     # The demo trains at one size.
     multi_scale=False,
     # It validates once, at its end, as the RT-DETR demo: no best state
     # before the last epoch to go back to.
     reload_best_stage1=False)
# From scratch, 500 iterations of one-to-one matching give the backbone and
# encoder too few positives; the ATSS head's one-to-many assignment gives
# each object several.
model['aux_head'] = atss_aux_head(
    num_classes=_base_.num_classes,
    in_channels=_base_.embed_dims,
    num_decoder_layers=_base_.model.decoder.num_layers)
