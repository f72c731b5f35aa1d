# The CPU demo: RT-DETR-RIFormer-S12 trained from scratch on the embedded
# synthetic shapes set (made on first use under data/shapes/). Same RIFormer,
# hybrid encoder, decoder, losses and pipeline code as the COCO configs;
# only the input size, the widths, the number of queries and the schedule
# shrink so that it learns on 2 CPU cores in minutes.
_base_ = '../rtdetr_riformer_s12.py'
# The shapes the dataset draws by default, defined once in the package.
# mmengine allows the import in a config only after `_base_`.
from mmriformer.datasets.synthetic_shapes import \
    DEFAULT_CLASSES as classes  # noqa: E402

data_root = 'data/shapes/'
num_classes = len(classes)
image_size = (256, 256)  # of the generated images
input_size = (224, 224)  # what the model sees
embed_dims = 128

model = dict(
    num_queries=100,
    # From scratch, no pretraining statistics to match: RT-DETR's [0, 1]
    # pixels, as the demo's recorded figures were made with.
    data_preprocessor=dict(
        mean=[0, 0, 0], std=[255, 255, 255], batch_augments=None),
    backbone=dict(
        arch=dict(_delete_=True, layers=[2, 2, 6, 2],
                  embed_dims=[32, 64, 160, 256],
                  layer_scale_init_value=1e-2),
        drop_path_rate=0.,
        init_cfg=None),  # trained from scratch: nothing to download
    neck=dict(in_channels=[64, 160, 256], embed_dims=embed_dims,
              num_heads=4, feedforward_channels=512, expansion=0.5,
              depth_mult=0.34),
    decoder=dict(
        num_layers=3,
        layer_cfg=dict(embed_dims=embed_dims, num_heads=4,
                       feedforward_channels=512)),
    bbox_head=dict(num_classes=num_classes, embed_dims=embed_dims),
    test_cfg=dict(max_per_img=100))

dataset_type = 'SyntheticShapesDataset'
metainfo = dict(classes=classes)
# The COCO pipelines at the demo's input size. Zoom-out and IoU crop are
# left out: they make a short schedule learn much slower.
train_pipeline = [
    dict(step, scale=input_size) if step['type'] == 'Resize' else step
    for step in _base_.train_pipeline
    if step['type'] not in ('Expand', 'RandomIoUCrop')
]
test_pipeline = [
    dict(step, scale=input_size) if step['type'] == 'Resize' else step
    for step in _base_.test_pipeline
]

train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(
        type=dataset_type, data_root=data_root, metainfo=metainfo,
        ann_file='annotations/train.json', data_prefix=dict(img='train/'),
        num_images=1000, image_size=image_size, seed=0,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(
        type=dataset_type, data_root=data_root, metainfo=metainfo,
        ann_file='annotations/val.json', data_prefix=dict(img='val/'),
        num_images=100, image_size=image_size, seed=1,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/val.json')
test_evaluator = val_evaluator

max_epochs = 8
train_cfg = dict(max_epochs=max_epochs, val_interval=4)
optim_wrapper = dict(
    optimizer=dict(lr=1e-3),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=1.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0,
         end=max_epochs, eta_min=1e-5)
]
custom_hooks = [
    dict(type='NumClassCheckHook'),
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=1e-3,
         gamma=200, update_buffers=True, priority=49),
    dict(type='ReseedHook')
]
default_hooks = dict(logger=dict(interval=10))
auto_scale_lr = dict(base_batch_size=8)
