# Copyright (c) OpenMMLab. All rights reserved.
import hashlib
import json
import multiprocessing
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
from mmdet.registry import DATASETS
from mmengine.registry import DefaultScope
from pycocotools.coco import COCO

from mmriformer.datasets import (ShapesSettings, SyntheticShapesDataset,
                                 generate_shapes_dataset)
from mmriformer.datasets.synthetic_shapes import (classification, generation,
                                                  write_shape_classification)
from mmriformer.testing import started_together

SMALL = dict(num_images=20, image_size=(128, 128), min_size=16, max_size=64)
# A split whose annotation file and pixels are pinned below, as drawn by the
# code that made existing caches and figures. If a change of the drawing is
# meant, bump GENERATOR_VERSION and the hashes.
PINNED = dict(num_images=4, image_size=(96, 64), seed=5, min_size=12,
              max_size=48)
PINNED_CLASSES = ('ellipse', 'hexagon', 'ring', 'star', 'cross')
ANNOTATIONS_SHA256 = ('3c917adf373450b2839c7e86634779c0'
                      '49c23c5fd453821a2a2257ea035f5563')
PIXELS_SHA256 = ('4ec7ac5210f17061ace40202bb7be6ed'
                 'bc84fabc54df810e3b21f7b979ebb55a')


def _generate(root, seed=0, **kwargs):
    return generate_shapes_dataset(
        str(root), 'train', seed=seed, **{
            **SMALL,
            **kwargs
        })


def _read_bytes(path):
    with open(path, 'rb') as f:
        return f.read()


def _pixels(root, split='train'):
    folder = osp.join(root, split)
    return [
        cv2.imread(osp.join(folder, name))
        for name in sorted(os.listdir(folder))
    ]


def _mtimes(root):
    return {
        osp.join(folder, name): os.stat(osp.join(folder, name)).st_mtime_ns
        for folder, _, names in os.walk(root) for name in names
    }


def test_same_seed_same_dataset(tmp_path):
    ann_a = _generate(tmp_path / 'a')
    ann_b = _generate(tmp_path / 'b')
    ann_c = _generate(tmp_path / 'c', seed=1)
    assert _read_bytes(ann_a) == _read_bytes(ann_b)
    pixels_a, pixels_b = _pixels(tmp_path / 'a'), _pixels(tmp_path / 'b')
    assert len(pixels_a) == SMALL['num_images']
    for image_a, image_b in zip(pixels_a, pixels_b):
        np.testing.assert_array_equal(image_a, image_b)
    assert _read_bytes(ann_a) != _read_bytes(ann_c)
    assert not np.array_equal(pixels_a[0], _pixels(tmp_path / 'c')[0])


def test_valid_coco_annotations(tmp_path):
    classes = ('star', 'circle', 'cross')
    ann_file = _generate(tmp_path, classes=classes)
    assert ann_file == osp.join(tmp_path, 'annotations', 'train.json')
    coco = COCO(ann_file)
    cats = coco.loadCats(coco.getCatIds())
    assert [(c['id'], c['name']) for c in cats] == [(1, 'star'),
                                                    (2, 'circle'),
                                                    (3, 'cross')]
    images = coco.loadImgs(coco.getImgIds())
    assert len(images) == SMALL['num_images']
    num_empty = 0
    for img in images:
        image = cv2.imread(osp.join(tmp_path, 'train', img['file_name']))
        assert image.shape == (img['height'], img['width'], 3)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img['id']]))
        num_empty += not anns
        for ann in anns:
            x, y, w, h = ann['bbox']
            assert w > 0 and h > 0 and ann['area'] > 0
            assert x >= 0 and y >= 0
            assert x + w <= img['width'] and y + h <= img['height']
            assert ann['iscrowd'] == 0
    # empty_ratio=0.1 of 20 images
    assert num_empty == 2
    used = {ann['category_id'] for ann in coco.dataset['annotations']}
    assert used == {1, 2, 3}


def test_idempotent(tmp_path):
    _generate(tmp_path)
    before = _mtimes(tmp_path)
    _generate(tmp_path)
    assert _mtimes(tmp_path) == before


def test_changed_parameters_regenerate(tmp_path):
    ann_file = _generate(tmp_path)
    first = _read_bytes(ann_file)
    _generate(tmp_path, seed=1, num_images=10)
    with open(ann_file) as f:
        info = json.load(f)['info']['generator']
    assert info['seed'] == 1 and info['num_images'] == 10
    assert _read_bytes(ann_file) != first
    # Images of the old, longer split are removed.
    assert len(os.listdir(tmp_path / 'train')) == 10
    # A missing image also triggers regeneration.
    os.remove(tmp_path / 'train' / '000003.jpg')
    _generate(tmp_path, seed=1, num_images=10)
    assert osp.isfile(tmp_path / 'train' / '000003.jpg')


def _racing_draws(monkeypatch, module, draw, make_split):
    """Call ``make_split`` in three processes at once; return how many of
    them called ``module.<draw>``, i.e. drew the split."""
    num_draws = multiprocessing.get_context('fork').Value('i', 0)
    original = getattr(module, draw)

    def counted(*args):
        with num_draws.get_lock():
            num_draws.value += 1
        return original(*args)

    monkeypatch.setattr(module, draw, counted)
    with started_together(make_split):
        pass
    return num_draws.value


def test_concurrent_generation(tmp_path, monkeypatch):
    reference = _generate(tmp_path / 'reference')
    # The lock lets exactly one process draw; the others find it done.
    assert _racing_draws(monkeypatch, generation, '_write_images',
                         lambda: _generate(tmp_path / 'shared')) == 1
    ann_file = osp.join(tmp_path, 'shared', 'annotations', 'train.json')
    with open(ann_file) as f:
        json.load(f)
    assert _read_bytes(ann_file) == _read_bytes(reference)
    for image_a, image_b in zip(
            _pixels(tmp_path / 'reference'), _pixels(tmp_path / 'shared')):
        np.testing.assert_array_equal(image_a, image_b)
    assert sorted(os.listdir(tmp_path / 'shared' / 'annotations')) == [
        'train.json'
    ]


def test_build_dataset_with_pipeline(tmp_path):
    classes = ('ring', 'triangle', 'square', 'star')
    cfg = dict(
        type='SyntheticShapesDataset',
        data_root=str(tmp_path),
        ann_file='annotations/val.json',
        data_prefix=dict(img='val/'),
        metainfo=dict(classes=classes),
        num_images=8,
        image_size=(128, 96),
        min_size=16,
        max_size=64,
        seed=3,
        filter_cfg=dict(filter_empty_gt=True),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='Resize', scale=(64, 64), keep_ratio=True),
            dict(type='PackDetInputs')
        ])
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = DATASETS.build(cfg)
    assert isinstance(dataset, SyntheticShapesDataset)
    assert dataset.metainfo['classes'] == classes
    assert osp.isfile(tmp_path / 'annotations' / 'val.json')
    assert 0 < len(dataset) <= 8
    sample = dataset[0]
    assert tuple(sample['inputs'].shape) == (3, 48, 64)
    instances = sample['data_samples'].gt_instances
    assert len(instances) > 0
    assert instances.labels.max() < len(classes)
    assert (instances.bboxes.tensor[:, 2:] <= 64).all()


def test_dataset_needs_split_layout(tmp_path):
    with pytest.raises(ValueError, match='annotations/<split>.json'):
        SyntheticShapesDataset(
            data_root=str(tmp_path),
            ann_file='annotations/train.json',
            data_prefix=dict(img='images/'),
            num_images=2)


@pytest.mark.parametrize('kwargs, name', [
    (dict(num_images=0), 'num_images'),
    (dict(classes=()), 'classes'),
    (dict(classes=('circle', 'dragon')), 'classes'),
    (dict(image_size=(48, 128)), 'image_size'),
    (dict(image_size=(128, 128, 3)), 'image_size'),
    (dict(min_size=4), 'min_size'),
])
def test_bad_arguments(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        _generate(tmp_path, **kwargs)
    assert not os.listdir(tmp_path)


def test_unwritable_root(tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('')
    root = blocker / 'shapes'
    with pytest.raises(OSError, match='writable') as error:
        _generate(root)
    assert str(root) in str(error.value)


def test_never_overwrites_foreign_annotations(tmp_path):
    ann = tmp_path / 'annotations' / 'train.json'
    ann.parent.mkdir(parents=True)
    ann.write_text('{"images": [], "annotations": [], "categories": []}')
    with pytest.raises(ValueError, match='synthesize=False'):
        _generate(tmp_path)
    assert json.loads(ann.read_text())['images'] == []


def test_drawing_is_pinned(tmp_path):
    SyntheticShapesDataset(
        data_root=str(tmp_path),
        ann_file='annotations/val.json',
        data_prefix=dict(img='val/'),
        metainfo=dict(classes=PINNED_CLASSES),
        **PINNED)
    ann_file = tmp_path / 'annotations' / 'val.json'
    assert hashlib.sha256(ann_file.read_bytes()).hexdigest() == \
        ANNOTATIONS_SHA256
    pixels = hashlib.sha256()
    settings = ShapesSettings(classes=PINNED_CLASSES, **PINNED)
    for image, _ in generation._draw_split('val', settings):
        pixels.update(image.tobytes())
    assert pixels.hexdigest() == PIXELS_SHA256


def test_settings_are_unchecked_without_synthesize(tmp_path):
    _generate(tmp_path)
    dataset = SyntheticShapesDataset(
        data_root=str(tmp_path),
        ann_file='annotations/train.json',
        data_prefix=dict(img='train/'),
        synthesize=False,
        num_images=0)
    assert len(dataset) == SMALL['num_images']


def test_generates_without_fcntl(tmp_path):
    """Where fcntl does not exist (Windows), filelock locks without it."""
    code = ('import sys; sys.modules["fcntl"] = None; '
            'from mmriformer.datasets import generate_shapes_dataset; '
            f'generate_shapes_dataset({str(tmp_path)!r}, "train", 2, '
            'image_size=64, min_size=10, max_size=30)')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(tmp_path / 'train')) == [
        '000000.jpg', '000001.jpg'
    ]


def _classification_files(root):
    return sorted(
        osp.relpath(osp.join(folder, name), root)
        for folder, _, names in os.walk(root) for name in names)


def test_classification_reused_or_redrawn(tmp_path):
    root = str(tmp_path / 'train')
    write_shape_classification(root, 12, ('star', 'ring'))
    before = _mtimes(root)
    write_shape_classification(root, 12, ('star', 'ring'))
    assert _mtimes(root) == before
    # Other settings: the old class folders go, the new ones are drawn.
    write_shape_classification(root, 5, ('cross', 'star'), seed=1)
    files = _classification_files(root)
    files.remove(classification.INFO_FILE)
    assert len(files) == 5
    assert {osp.dirname(f) for f in files} <= {'cross', 'star'}
    with open(osp.join(root, classification.INFO_FILE)) as f:
        assert json.load(f)['classes'] == ['cross', 'star']


def test_classification_leaves_other_folders_alone(tmp_path):
    (tmp_path / 'mine.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='empty or new folder'):
        write_shape_classification(str(tmp_path), 4, ('star', ))
    assert os.listdir(tmp_path) == ['mine.txt']


def test_concurrent_classification(tmp_path, monkeypatch):
    """Concurrent callers: one draws, the others find the split made."""
    reference = str(tmp_path / 'reference')
    write_shape_classification(reference, 30, ('circle', 'cross'))
    shared = str(tmp_path / 'shared')
    assert _racing_draws(
        monkeypatch, classification, '_draw_classes',
        lambda: write_shape_classification(shared, 30,
                                           ('circle', 'cross'))) == 1
    assert _classification_files(shared) == _classification_files(reference)
    for name in _classification_files(reference):
        assert _read_bytes(osp.join(shared, name)) == _read_bytes(
            osp.join(reference, name))
