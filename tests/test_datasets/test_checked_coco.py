# Copyright (c) OpenMMLab. All rights reserved.
import json
import os
from collections import Counter

import cv2
import numpy as np
import pytest
import torch
from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

from mmriformer.datasets import CheckedCocoDataset, skip_reason
from mmriformer.datasets.coco import missing_files
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


# Boxes on a 120 x 100 image: bbox, area, other keys, and the reason why
# mmdet's CocoDataset drops the box (None: kept).
EDGE_BOXES = [
    ([10, 10, 30, 30], 900, {}, None),
    ([10.5, 20.25, 1.5, 3.75], 5.6, {}, None),
    ([10, 10, 1, 1], 1, {}, None),
    ([10, 10, 0, 20], 0, {}, 'narrower or shorter than 1 px'),
    ([10, 10, 20, 0], 0, {}, 'narrower or shorter than 1 px'),
    ([10, 10, 0.5, 20], 10, {}, 'narrower or shorter than 1 px'),
    ([10, 10, 20, 0.99], 19.8, {}, 'narrower or shorter than 1 px'),
    ([500, 10, 0, 10], 0, {}, 'narrower or shorter than 1 px'),
    ([110, 90, 30, 30], 900, {}, None),  # partly outside
    ([-5, -5, 20, 20], 400, {}, None),
    ([120, 10, 10, 10], 100, {}, 'outside the image'),  # at the right edge
    ([-10, 10, 10, 10], 100, {}, 'outside the image'),  # at the left edge
    ([10, 100, 10, 10], 100, {}, 'outside the image'),
    ([10, -10, 10, 10], 100, {}, 'outside the image'),
    ([500, 500, 10, 10], 100, {}, 'outside the image'),
    ([10, 10, 20, 20], 0, {}, 'area <= 0'),
    ([10, 10, 20, 20], -1, {}, 'area <= 0'),
    ([10, 10, 20, 20], 0.5, {}, None),  # tiny area
    ([10, 10, 20, 20], 400, dict(iscrowd=1), None),  # kept as ignored
    ([10, 10, 20, 20], 400, dict(ignore=True), 'marked ignore'),
    ([10, 10, 20, 20], 400, dict(category_id=3),
     'category id not among the configured classes'),
    ([10, 10, 20, 20], 400, dict(category_id=9),
     'category id not among the configured classes'),
]


def write_edge_coco(root):
    """A COCO file with one image per box of ``EDGE_BOXES`` (ids 1..N),
    then an image without boxes, a 20 x 20 one and an orphan box."""
    (root / 'img').mkdir(parents=True)
    sizes = [(120, 100)] * (len(EDGE_BOXES) + 1) + [(20, 20)]
    images = []
    for i, (width, height) in enumerate(sizes):
        cv2.imwrite(str(root / f'img/{i}.jpg'),
                    np.zeros((height, width, 3), np.uint8))
        images.append(dict(id=i + 1, file_name=f'{i}.jpg', width=width,
                           height=height))
    annotations = [
        dict(dict(id=i + 1, image_id=i + 1, iscrowd=0, category_id=1,
                  bbox=bbox, area=area), **extra)
        for i, (bbox, area, extra, _) in enumerate(EDGE_BOXES)
    ]
    annotations += [
        dict(id=101, image_id=len(sizes), iscrowd=0, category_id=2,
             bbox=[2, 2, 10, 10], area=100),
        dict(id=102, image_id=999, iscrowd=0, category_id=1,
             bbox=[2, 2, 10, 10], area=100),
    ]
    categories = [dict(id=i + 1, name=n) for i, n in enumerate('abc')]
    (root / 'ann.json').write_text(json.dumps(
        dict(images=images, annotations=annotations, categories=categories)))


def edge_datasets(root, **kwargs):
    """mmdet's CocoDataset and CheckedCocoDataset on the same file."""
    args = dict(data_root=str(root), ann_file='ann.json',
                data_prefix=dict(img='img/'), metainfo=dict(classes=CLASSES),
                pipeline=[], **kwargs)
    return CocoDataset(**args), CheckedCocoDataset(**args)


def test_skip_reason_matches_mmdet(tmp_path):
    write_edge_coco(tmp_path)
    mmdet_dataset, _ = edge_datasets(tmp_path, test_mode=True)
    for i, (bbox, area, extra, reason) in enumerate(EDGE_BOXES):
        ann = dict(dict(bbox=bbox, area=area, category_id=1), **extra)
        assert skip_reason(ann, 120, 100, mmdet_dataset.cat_ids) == reason
        kept = mmdet_dataset.get_data_info(i)['instances']
        assert len(kept) == (reason is None), (bbox, area, extra)


def test_checked_coco_keeps_what_mmdet_keeps(tmp_path):
    write_edge_coco(tmp_path)
    mmdet_dataset, checked = edge_datasets(
        tmp_path, filter_cfg=dict(filter_empty_gt=True, min_size=32))
    infos = [[dataset.get_data_info(i) for i in range(len(dataset))]
             for dataset in (mmdet_dataset, checked)]
    assert infos[0] == infos[1]
    # filter_empty_gt keeps an image with a box of a configured class even
    # if the box is dropped; it leaves out the images with boxes of other
    # classes only, the image without boxes and the 20 x 20 one.
    assert [info['img_id'] for info in infos[0]] == [
        i + 1 for i, (_, _, extra, _) in enumerate(EDGE_BOXES)
        if extra.get('category_id', 1) == 1
    ]
    assert checked.skipped == Counter(
        [reason for *_, reason in EDGE_BOXES if reason] +
        ['image id not among the images'])


def test_missing_files_looks_up_only_unlisted_paths(tmp_path, monkeypatch):
    (tmp_path / 'a/sub').mkdir(parents=True)
    (tmp_path / 'a/1.jpg').write_bytes(b'')
    (tmp_path / '2.jpg').write_bytes(b'')
    monkeypatch.chdir(tmp_path)
    paths = ['a/1.jpg', 'a/3.jpg', 'a/sub', 'b/4.jpg', '2.jpg', 'a//1.jpg']
    looked_up = []
    isfile = os.path.isfile
    monkeypatch.setattr(os.path, 'isfile',
                        lambda path: looked_up.append(path) or isfile(path))
    assert missing_files(paths) == ['a/3.jpg', 'a/sub', 'b/4.jpg']
    assert looked_up == ['a/3.jpg', 'a/sub', 'b/4.jpg']
