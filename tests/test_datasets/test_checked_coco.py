# Copyright (c) OpenMMLab. All rights reserved.
import json

import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS

from mmriformer.datasets import skip_reason
from mmriformer.testing import logged_messages

CLASSES = ('a', 'b')


def write_coco(root, annotations, images=True, categories=CLASSES):
    (root / 'img').mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / 'img/0.jpg'), np.full((100, 120, 3), 128,
                                                 np.uint8))
    coco = dict(
        images=[dict(id=1, file_name='0.jpg', width=120, height=100)]
        if images else [],
        annotations=[
            dict(id=i + 1, image_id=1, iscrowd=0, area=w * h,
                 bbox=[x, y, w, h], category_id=c)
            for i, (x, y, w, h, c) in enumerate(annotations)
        ],
        categories=[dict(id=i + 1, name=n) for i, n in enumerate(categories)])
    (root / 'ann.json').write_text(json.dumps(coco))


def build(root, pipeline=()):
    return DATASETS.build(
        dict(type='CheckedCocoDataset', data_root=str(root),
             ann_file='ann.json', data_prefix=dict(img='img/'),
             metainfo=dict(classes=CLASSES), pipeline=list(pipeline)))


def test_skip_reason():
    def ann(x, y, w, h, c=1):
        return dict(bbox=[x, y, w, h], area=w * h, category_id=c)

    assert skip_reason(ann(10, 10, 20, 20), 100, 100, [1]) is None
    assert skip_reason(ann(90, 90, 30, 30), 100, 100, [1]) is None
    assert skip_reason(ann(150, 10, 20, 20), 100, 100,
                       [1]) == 'outside the image'
    assert skip_reason(ann(10, 10, 0.5, 20), 100, 100,
                       [1]) == 'narrower or shorter than 1 px'
    assert 'category' in skip_reason(ann(10, 10, 20, 20, 7), 100, 100, [1])


def test_skipped_boxes_are_counted_and_logged(tmp_path):
    write_coco(tmp_path, [
        (10, 10, 30, 30, 1),  # kept
        (100, 80, 50, 50, 2),  # partly outside: kept, clipped by Resize
        (20, 20, 0.5, 10, 1),  # degenerate
        (200, 10, 10, 10, 1),  # outside the image
        (10, 10, 10, 10, 9),  # unknown category
    ])
    with logged_messages() as messages:
        dataset = build(tmp_path, [
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='Resize', scale=(60, 50), keep_ratio=False),
            dict(type='PackDetInputs')
        ])
        sample = dataset[0]['data_samples']
    message = ' '.join(messages)
    assert 'skipped 3 boxes' in message
    assert '1 outside the image' in message
    assert '1 narrower or shorter than 1 px' in message
    assert '1 category id not among the configured classes' in message
    boxes = sample.gt_instances.bboxes.tensor
    assert len(boxes) == 2
    # the partly-outside box is clipped to the resized image (60 x 50)
    torch.testing.assert_close(boxes[1], torch.tensor([50., 40., 60., 50.]))


def test_empty_annotation_file(tmp_path):
    write_coco(tmp_path, [], images=False)
    with pytest.raises(ValueError, match='ann.json has no images'):
        build(tmp_path)
    (tmp_path / 'ann.json').write_text('')
    with pytest.raises(ValueError, match='ann.json is not valid COCO JSON'):
        build(tmp_path)


def test_classes_missing_from_annotation_file(tmp_path):
    write_coco(tmp_path, [(10, 10, 30, 30, 1)], categories=('a', 'z'))
    with pytest.raises(ValueError, match='only 1 of the 2 configured'):
        build(tmp_path)


@pytest.mark.parametrize('damage', ['missing', 'deleted', 'corrupt'])
def test_missing_or_corrupt_image_names_the_file(tmp_path, damage):
    write_coco(tmp_path, [(10, 10, 30, 30, 1)])
    image = tmp_path / 'img/0.jpg'
    if damage == 'missing':  # checked when the dataset is built
        image.unlink()
        with pytest.raises(FileNotFoundError,
                           match=r'1 of the 1 images .*0\.jpg'):
            build(tmp_path, [dict(type='LoadImageFromFile')])
        return
    dataset = build(tmp_path, [dict(type='LoadImageFromFile')])
    if damage == 'deleted':  # gone after the dataset was built
        image.unlink()
        error, match = FileNotFoundError, r'0\.jpg \(image id 1 .*\) does not'
    else:
        image.write_bytes(b'not a jpeg')
        error, match = ValueError, r'0\.jpg .* cannot be decoded'
    with pytest.raises(error, match=match):
        dataset[0]
