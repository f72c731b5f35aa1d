# Copyright (c) OpenMMLab. All rights reserved.
import copy
import json
import os
import shutil
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import run
from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS
from mmengine.config import Config

from mmriformer.datasets import CheckedCocoDataset, skip_reason
from mmriformer.datasets.coco import missing_files
from mmriformer.testing import logged_messages

ROOT = Path(__file__).parents[2]
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


# The COCO configs without COCO, and copies of the tiny detector's data
# (tests/conftest.py) with one problem each.


def dataset_cfg(tiny, root, loader='train_dataloader', **kwargs):
    cfg = copy.deepcopy(tiny['cfg'][loader]['dataset'])
    cfg.update(data_root=str(root) + '/', **kwargs)
    return cfg


def build_dataset(cfg):
    return DATASETS.build(cfg)


def copy_data(tiny, tmp_path, edit=None):
    """A copy of the tiny set; ``edit`` changes the train annotations."""
    root = tmp_path / 'data'
    shutil.copytree(tiny['data'], root)
    ann = root / 'annotations/train.json'
    if edit is not None:
        coco = json.loads(ann.read_text())
        edited = edit(coco)
        ann.write_text(edited if isinstance(edited, str) else json.dumps(
            coco if edited is None else edited))
    return root


def test_no_dataset_at_data_root(tiny, tmp_path, monkeypatch):
    """The COCO configs without COCO: where, in which layout, and how to
    retarget (the train and the val/test datasets)."""
    cfg = Config.fromfile(ROOT / 'configs/rtdetr_riformer_s24.py')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as error:
        build_dataset(cfg.train_dataloader.dataset)
    assert str(error.value) == (
        f'Annotation file data/coco/annotations/instances_train2017.json '
        f'does not exist (relative to {tmp_path}), nor does data_root='
        f'data/coco/: CheckedCocoDataset reads COCO data laid out as '
        f'data/coco/annotations/instances_train2017.json (annotations) and '
        f'data/coco/train2017/ (images); put the data there, or retarget the '
        f'config with --cfg-options train_dataloader.dataset.data_root=DIR/ '
        f'(plus train_dataloader.dataset.ann_file=... and '
        f'train_dataloader.dataset.data_prefix.img=... if your file and '
        f'folder names differ; a top-level data_root=... does not reach the '
        f'dataloaders).')
    with pytest.raises(FileNotFoundError, match=(
            r'instances_val2017\.json does not exist .* --cfg-options '
            r'val_dataloader\.dataset\.data_root=DIR/ test_dataloader\.'
            r'dataset\.data_root=DIR/ val_evaluator\.ann_file=DIR/'
            r'annotations/instances_val2017\.json test_evaluator\.ann_file='
            r'DIR/annotations/instances_val2017\.json')):
        build_dataset(cfg.test_dataloader.dataset)
    # annotations there but no image folder
    (tmp_path / 'data/coco/annotations').mkdir(parents=True)
    shutil.copy(tiny['data'] / 'annotations/train.json',
                tmp_path / 'data/coco/annotations/instances_train2017.json')
    with pytest.raises(FileNotFoundError, match=r'^Image folder '
                       r'data/coco/train2017/ does not exist'):
        build_dataset(cfg.train_dataloader.dataset)


def test_no_dataset_with_the_train_tool(tmp_path):
    """``tools/train.py configs/rtdetr_riformer_s24.py`` without COCO: the
    traceback ends in the message above, nothing is downloaded."""
    proc = run(ROOT / 'tools/train.py',
               ROOT / 'configs/rtdetr_riformer_s24.py',
               '--work-dir', tmp_path / 'work_dir', '--cfg-options',
               'model.backbone.init_cfg=None', cwd=tmp_path)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('FileNotFoundError: Annotation file data/coco/'
                           'annotations/instances_train2017.json does not '
                           'exist'), last
    assert 'train_dataloader.dataset.data_root=DIR/' in last


@pytest.mark.parametrize('damage', ['missing', 'corrupt', 'truncated'])
def test_missing_or_damaged_image(tiny, tmp_path, damage):
    root = copy_data(tiny, tmp_path)
    image = root / 'train/000001.jpg'
    if damage == 'missing':
        image.unlink()
        with pytest.raises(FileNotFoundError, match=(
                r'^1 of the 4 images of .*train\.json do not exist, e\.g\. '
                r'.*000001\.jpg; put them there, point data_prefix\.img at '
                r'the folder that holds them, or remove them')):
            build_dataset(dataset_cfg(tiny, root))
        return
    data = image.read_bytes()
    image.write_bytes(b'garbage' if damage == 'corrupt' else
                      data[:len(data) // 2])
    dataset = build_dataset(dataset_cfg(tiny, root))
    with pytest.raises(ValueError, match=(
            r'^Image .*000001\.jpg \(image id 2 of .*train\.json\) cannot '
            r'be decoded: it is damaged or not an image; replace it or '
            r'remove it from the annotation file')):
        dataset[1]


def drop_key(kind, key):
    def edit(coco):
        del coco[kind][0][key]
    return edit


@pytest.mark.parametrize('edit, error, message', [
    (lambda coco: '', ValueError, r'train\.json is not valid COCO JSON'),
    (lambda coco: '[]', ValueError, r'train\.json is not COCO \(annotation '
     r'file format .*list.* a COCO file is a JSON object with "images"'),
    (lambda coco: {'annotations': [], 'categories': coco['categories']},
     ValueError, r'train\.json has no images'),
    (drop_key('annotations', 'bbox'), ValueError, r"train\.json: annotation "
     r"1 lacks 'bbox'; COCO images need id, file_name, width, height, "
     r'annotations need id, image_id, category_id, bbox, area and '
     r'categories need id, name'),
    (drop_key('annotations', 'image_id'), ValueError, r'train\.json: an '
     r"image, annotation or category lacks the key 'image_id'; COCO images "
     r'need'),
    (drop_key('annotations', 'area'), ValueError, r"lacks 'area'"),
    (drop_key('images', 'width'), ValueError, r"image 1 lacks 'width'"),
    (lambda coco: coco['annotations'][0].update(bbox=[1, 2, 3]), ValueError,
     r'annotation 1 has bbox=\[1, 2, 3\]; a COCO bbox is a list of 4 '
     r'numbers \[x, y, width, height\]'),
    (lambda coco: coco.update(categories=coco['categories'][:2]),
     ValueError, r'has categories for only 2 of the 6 configured classes'),
], ids=['empty', 'list', 'no_images', 'no_bbox', 'no_image_id', 'no_area',
        'no_width', 'short_bbox', 'classes_missing'])
def test_empty_or_malformed_annotation_file(tiny, tmp_path, edit, error,
                                            message):
    root = copy_data(tiny, tmp_path, edit)
    with pytest.raises(error, match=message):
        build_dataset(dataset_cfg(tiny, root))


def test_unusable_boxes_are_skipped_and_logged(tiny, tmp_path):
    def edit(coco):
        base = dict(coco['annotations'][0], image_id=1)
        coco['annotations'] += [
            dict(base, id=1001, bbox=[500, 500, 10, 10], area=100),
            dict(base, id=1002, bbox=[5, 5, 0, 10], area=0),
            dict(base, id=1003, bbox=[5, 5, 10, 10], area=0),
            dict(base, id=1004, bbox=[5, 5, 10, 10], category_id=77),
            dict(base, id=1005, image_id=999),
            dict(base, id=1006, bbox=[50, 50, 40, 40], area=1600),
        ]

    root = copy_data(tiny, tmp_path, edit)
    num = len(json.loads(
        (tiny['data'] / 'annotations/train.json').read_text())['annotations'])
    with logged_messages() as messages:
        dataset = build_dataset(dataset_cfg(tiny, root))
    assert (f'{root}/annotations/train.json: skipped 5 boxes (1 area <= 0, '
            f'1 category id not among the configured classes, 1 image id '
            f'not among the images, 1 narrower or shorter than 1 px, 1 '
            f'outside the image).') in messages
    # the kept boxes: the file's own and the one partly outside its image
    kept = sum(len(dataset.get_data_info(i)['instances'])
               for i in range(len(dataset)))
    assert kept == num + 1


def test_all_boxes_unusable_is_an_error(tiny, tmp_path):
    def edit(coco):  # e.g. boxes written as normalised [x, y, w, h]
        for ann in coco['annotations']:
            ann['bbox'] = [v / 64 for v in ann['bbox']]
            ann['area'] = ann['bbox'][2] * ann['bbox'][3]

    root = copy_data(tiny, tmp_path, edit)
    with pytest.raises(ValueError, match=(
            r'train\.json: all \d+ boxes are skipped \(\d+ narrower or '
            r'shorter than 1 px\), so nothing is left to learn or evaluate; '
            r'a COCO bbox is \[x, y, width, height\] in pixels')):
        build_dataset(dataset_cfg(tiny, root))


def test_filtered_images_are_logged(tiny, tmp_path):
    def edit(coco):  # image 1 without boxes
        coco['annotations'] = [a for a in coco['annotations']
                               if a['image_id'] != 1]

    root = copy_data(tiny, tmp_path, edit)
    with logged_messages() as messages:
        dataset = build_dataset(dataset_cfg(
            tiny, root, filter_cfg=dict(filter_empty_gt=True, min_size=32)))
    assert len(dataset) == 3
    assert any(m.endswith("filter_cfg={'filter_empty_gt': True, "
                          "'min_size': 32} left out 1 of 4 images (1 "
                          "without boxes of the configured classes).")
               for m in messages), messages
    # a filter that leaves nothing used to fail in mmengine's
    # serialisation ('need at least one array to concatenate')
    with pytest.raises(ValueError, match=(
            r"train\.json: filter_cfg=\{'filter_empty_gt': False, "
            r"'min_size': 100\} leaves none of its 4 images \(4 smaller "
            r'than min_size=100 px\); lower filter_cfg\.min_size')):
        build_dataset(dataset_cfg(
            tiny, root, filter_cfg=dict(filter_empty_gt=False, min_size=100)))
