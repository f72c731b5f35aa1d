# D-FINE-L (Peterande/D-FINE configs/dfine/dfine_hgnetv2_l_coco.yml): the
# base's model and optimizer (HGNetV2-B4, stem and BatchNorms frozen,
# 6 decoder layers; lr 2.5e-4, backbone 1.25e-5, weight decay 1.25e-4),
# 80 epochs, strong augmentation and multi-scale (640 drawn 4 times in 14)
# until epoch 72.
# Not reproduced (see configs/dfine/dfine_hgnetv2_s_coco.py): the reload
# with EMA decay 0.9999 at epoch 72.
_base_ = '../_base_/dfine_hgnetv2_coco.py'
from mmriformer.utils.dfine_recipe import dfine_schedule  # noqa: E402

max_epochs = 80
stop_epoch = 72
train_cfg = dict(max_epochs=max_epochs)
batch_augments, custom_hooks = dfine_schedule(
    _base_, stop_epoch, base_size_repeat=4)

model = dict(data_preprocessor=dict(batch_augments=batch_augments))
