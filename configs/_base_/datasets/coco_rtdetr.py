# COCO-format detection data with RT-DETR's augmentation: photometric
# distortion and IoU crop (p 0.8) with torchvision's semantics (our
# transforms call torchvision's), zoom-out, flip and a fixed 640x640 resize;
# multi-scale (13 sizes, 480..800) happens per batch in the data
# preprocessor. An image whose boxes are all filtered is kept without boxes,
# as officially (mmdet's keep_empty=True would swap in another image).
_base_ = 'mmdet::_base_/datasets/coco_detection.py'

data_root = 'data/coco/'
image_size = (640, 640)
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomPhotometricDistort', p=0.5),
    dict(type='Expand', mean=[0, 0, 0], to_rgb=True, ratio_range=(1, 4),
         prob=0.5),
    dict(type='RandomIoUCrop', prob=0.8),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scale=image_size, keep_ratio=False),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=False),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=image_size, keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor'))
]

# CheckedCocoDataset: CocoDataset that counts and logs the boxes it skips.
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    batch_sampler=None,
    dataset=dict(type='CheckedCocoDataset', data_root=data_root,
                 pipeline=train_pipeline,
                 filter_cfg=dict(filter_empty_gt=False)))
val_dataloader = dict(
    batch_size=4,
    dataset=dict(type='CheckedCocoDataset', data_root=data_root,
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
