# Copyright (c) OpenMMLab. All rights reserved.
"""DEIM's mosaic: layout, boxes on their content, sources, identity."""
import random

import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from torchvision import tv_tensors
from torchvision.transforms import v2

from mmriformer.datasets import DEIMMosaic

# (height, width) and integer xyxy boxes of four scenes; the image of scene
# k is black with its boxes filled with COLOURS[k], its labels 10k, 10k+1.
SCENES = [
    ((40, 60), [[5, 5, 25, 30], [30, 10, 55, 35]]),
    ((50, 50), [[10, 10, 40, 25]]),
    ((64, 48), [[4, 8, 40, 30], [10, 36, 30, 60]]),
    ((30, 90), [[20, 4, 70, 26], [75, 5, 88, 28]]),
]
COLOURS = [60, 120, 180, 240]
# Each scene resized to shorter side 32, as torchvision's Resize(32) does.
RESIZED = [(32, 48), (32, 32), (42, 32), (32, 96)]
CANVAS = (2 * 42, 2 * 96)


def painted(k):
    """The results dict of scene ``k``, as LoadAnnotations leaves it."""
    (height, width), boxes = SCENES[k]
    img = np.zeros((height, width, 3), np.uint8)
    for x1, y1, x2, y2 in boxes:
        img[y1:y2, x1:x2] = COLOURS[k]
    n = len(boxes)
    return dict(
        img=img, img_shape=(height, width), ori_shape=(height, width),
        gt_bboxes=HorizontalBoxes(torch.tensor(boxes, dtype=torch.float32)),
        gt_bboxes_labels=10 * k + np.arange(n),
        gt_ignore_flags=np.array([False] * (n - 1) + [True]))


def mosaic_of_scenes(**kwargs):
    """The mosaic of the four scenes, scene 0 first, from mix_results."""
    results = painted(0)
    results['mix_results'] = [painted(k) for k in (1, 2, 3)]
    mosaic = DEIMMosaic(output_size=32, fill_value=0, use_cache=False,
                        **kwargs)
    return mosaic(results)


def scene_of(label):
    return int(label) // 10


def test_layout_without_affine():
    out = mosaic_of_scenes(translation_range=(0, 0), scaling_range=(1, 1))
    assert out['img'].shape == CANVAS + (3, )
    assert out['img_shape'] == CANVAS
    np.testing.assert_array_equal(out['gt_bboxes_labels'],
                                  [0, 1, 10, 20, 21, 30, 31])
    np.testing.assert_array_equal(
        out['gt_ignore_flags'],
        [False, True, True, False, True, False, True])
    # Quadrant corners in reading order, each scene scaled to its size.
    corners = [(0, 0), (0, 96), (42, 0), (42, 96)]
    expected = []
    for ((height, width), boxes), (new_h, new_w), (top, left) in zip(
            SCENES, RESIZED, corners):
        scale = np.array([new_w / width, new_h / height] * 2)
        expected.append(np.array(boxes) * scale + [left, top, left, top])
    np.testing.assert_allclose(out['gt_bboxes'].numpy(),
                               np.concatenate(expected), atol=1e-4)
    assert 'mix_results' in out  # left for MultiImageMixDataset to drop


def box_contents(img, boxes, labels, margin=2):
    """Check every box of at least 2 * margin + 2 px against the image.

    Inside (shrunk by ``margin``), a box fully in the image is mostly its
    scene's colour and has no other scene's colour; outside all boxes
    (grown by ``margin``) the image is black.
    """
    height, width = img.shape[:2]
    values = img[..., 0].astype(int)
    covered = np.zeros((height, width), bool)
    checked = 0
    for (x1, y1, x2, y2), label in zip(boxes, labels):
        covered[max(int(y1) - margin, 0):int(np.ceil(y2)) + margin,
                max(int(x1) - margin, 0):int(np.ceil(x2)) + margin] = True
        inner = values[int(np.ceil(y1)) + margin:int(y2) - margin,
                       int(np.ceil(x1)) + margin:int(x2) - margin]
        if inner.size == 0 or x1 <= 0 or y1 <= 0 or x2 >= width or \
                y2 >= height:
            continue
        colour = COLOURS[scene_of(label)]
        others = set(COLOURS) - {colour}
        assert (inner == colour).mean() > 0.4
        assert not np.isin(inner, list(others)).any()
        checked += 1
    assert not values[~covered].any()
    return checked


def test_boxes_on_their_content_without_affine():
    out = mosaic_of_scenes(translation_range=(0, 0), scaling_range=(1, 1))
    checked = box_contents(out['img'], out['gt_bboxes'].numpy(),
                           out['gt_bboxes_labels'])
    assert checked == 7


@pytest.mark.parametrize('seed', range(10))
def test_boxes_on_their_content_with_affine(seed):
    torch.manual_seed(seed)
    out = mosaic_of_scenes(rotation_range=10)
    assert out['img_shape'] == CANVAS
    boxes = out['gt_bboxes'].numpy()
    assert len(boxes) == 7
    assert (boxes >= 0).all()
    assert (boxes[:, [2, 3]] <= [CANVAS[1], CANVAS[0]]).all()
    box_contents(out['img'], boxes, out['gt_bboxes_labels'])


def test_affine_is_torchvision_random_affine():
    """Under one torch seed, the canvas moves as torchvision moves it."""
    torch.manual_seed(0)
    plain = mosaic_of_scenes(translation_range=(0, 0), scaling_range=(1, 1))
    torch.manual_seed(1)
    out = mosaic_of_scenes(rotation_range=10, translation_range=(0.2, 0.1),
                           scaling_range=(0.6, 1.4))
    torch.manual_seed(1)
    img, boxes = v2.RandomAffine(
        degrees=10, translate=(0.2, 0.1), scale=(0.6, 1.4), fill=0)(
            tv_tensors.Image(torch.from_numpy(plain['img']).permute(2, 0, 1)),
            tv_tensors.BoundingBoxes(plain['gt_bboxes'].tensor, format='XYXY',
                                     canvas_size=CANVAS))
    np.testing.assert_array_equal(out['img'], img.permute(1, 2, 0).numpy())
    torch.testing.assert_close(out['gt_bboxes'].tensor,
                               boxes.as_subclass(torch.Tensor))


def test_max_size_caps_the_longer_side():
    out = mosaic_of_scenes(max_size=40, translation_range=(0, 0),
                           scaling_range=(1, 1))
    # torchvision: the longest side becomes 40, the shorter side follows.
    # (40, 60) -> (26, 40), (50, 50) -> (32, 32), (64, 48) -> (40, 30),
    # (30, 90) -> (13, 40).
    assert out['img_shape'] == (2 * 40, 2 * 40)


def test_probability_zero_is_identity():
    results = painted(0)
    expected = painted(0)
    out = DEIMMosaic(probability=0, use_cache=False)(results)
    np.testing.assert_array_equal(out['img'], expected['img'])
    assert out['img_shape'] == expected['img_shape']
    torch.testing.assert_close(out['gt_bboxes'].tensor,
                               expected['gt_bboxes'].tensor)
    np.testing.assert_array_equal(out['gt_bboxes_labels'],
                                  expected['gt_bboxes_labels'])


@pytest.mark.parametrize('seed', range(20))
def test_probability_draws_as_deim(seed):
    """Applied when ``random.random() <= probability``, as in DEIM."""
    random.seed(seed)
    applies = random.random() <= 0.5
    random.seed(seed)
    out = DEIMMosaic(output_size=16, probability=0.5)(painted(0))
    assert (out['img_shape'] != SCENES[0][0]) == applies


def test_cache_source():
    mosaic = DEIMMosaic(output_size=16, max_cached_images=3,
                        random_pop=False)
    assert mosaic.get_indexes(range(10)) == []
    for k in range(4):
        out = mosaic(painted(k))
        assert len(mosaic.cache) == min(k + 1, 3)
        # The transformed scene comes first; the others are from the cache.
        assert scene_of(out['gt_bboxes_labels'][0]) == k
        assert {scene_of(label)
                for label in out['gt_bboxes_labels']} <= set(
                    range(max(k - 2, 0), k + 1))
    # Oldest popped first: scenes 1, 2, 3 are left.
    assert [scene_of(entry['labels'][0])
            for entry in mosaic.cache] == [1, 2, 3]


def test_cache_random_pop_keeps_the_newest():
    mosaic = DEIMMosaic(output_size=16, max_cached_images=2)
    random.seed(0)
    for k in range(4):
        mosaic(painted(k))
        assert scene_of(mosaic.cache[-1]['labels'][0]) == k
        assert len(mosaic.cache) == min(k + 1, 2)


def test_dataset_source_draws_three_indices():
    mosaic = DEIMMosaic(use_cache=False)
    random.seed(0)
    indexes = mosaic.get_indexes(range(5))
    random.seed(0)
    assert indexes == random.choices(range(5), k=3)


def test_dataset_source_needs_mix_results():
    with pytest.raises(ValueError, match='MultiImageMixDataset'):
        DEIMMosaic(use_cache=False)(painted(0))


def test_grayscale_images():
    mosaic = DEIMMosaic(output_size=16, fill_value=0)
    results = painted(0)
    results['img'] = results['img'][..., 0]
    out = mosaic(results)
    assert out['img'].ndim == 2
    assert out['img'].shape == out['img_shape']
    assert out['img'].dtype == np.uint8 and out['img'].max() > 0


def test_masks_raise():
    results = painted(0)
    results['gt_masks'] = None
    with pytest.raises(ValueError, match='with_mask=False'):
        DEIMMosaic()(results)


@pytest.mark.parametrize('kwargs, match', [
    (dict(output_size=0), 'output_size'),
    (dict(output_size=32, max_size=32), 'max_size'),
    (dict(rotation_range=-1), 'rotation_range'),
    (dict(translation_range=(0.1, 2)), 'translation_range'),
    (dict(scaling_range=(1.5, 0.5)), 'scaling_range'),
    (dict(scaling_range=(0, 1)), 'scaling_range'),
    (dict(probability=1.5), 'probability'),
    (dict(max_cached_images=0), 'max_cached_images'),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DEIMMosaic(**kwargs)


LOAD = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True)
]


def test_in_multi_image_mix_dataset(shapes_cfg):
    plain = DATASETS.build(dict(shapes_cfg, pipeline=LOAD))
    dataset = DATASETS.build(
        dict(type='MultiImageMixDataset',
             dataset=dict(shapes_cfg, pipeline=LOAD),
             pipeline=[
                 dict(type='DEIMMosaic', output_size=32, use_cache=False,
                      translation_range=(0, 0), scaling_range=(1, 1)),
                 dict(type='PackDetInputs')
             ]))
    random.seed(3)
    others = random.choices(range(len(plain)), k=3)
    random.seed(3)
    out = dataset[2]
    sources = [plain[i] for i in [2] + others]
    np.testing.assert_array_equal(
        out['data_samples'].gt_instances.labels.numpy(),
        np.concatenate([
            s['gt_bboxes_labels'][~s['gt_ignore_flags']] for s in sources
        ]))
    # 48 x 48 images resized to 32 x 32: the quadrants hold them as they
    # are, resized as torchvision resizes.
    img = out['inputs']
    assert img.shape == (3, 64, 64)
    for source, (top, left) in zip(sources, [(0, 0), (0, 32), (32, 0),
                                             (32, 32)]):
        resized = v2.functional.resize(
            torch.from_numpy(source['img']).permute(2, 0, 1), [32, 32])
        torch.testing.assert_close(img[:, top:top + 32, left:left + 32],
                                   resized)


def test_cached_in_random_choice_of_a_dataset_pipeline(shapes_cfg):
    """DEIM's stage of mosaic or zoom-out and IoU crop, per image."""
    branches = [
        [dict(type='DEIMMosaic', output_size=32, rotation_range=10,
              fill_value=0)],
        [dict(type='Expand', mean=[0, 0, 0], ratio_range=(1, 2)),
         dict(type='RandomIoUCrop', prob=0.8)],
    ]
    dataset = DATASETS.build(
        dict(shapes_cfg, pipeline=LOAD + [
            dict(type='RandomChoice', transforms=branches, prob=[0.5, 0.5]),
            dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1),
                 keep_empty=False),
            dict(type='PackDetInputs')
        ]))
    random.seed(0)
    torch.manual_seed(0)
    sizes = {tuple(dataset[i % 6]['inputs'].shape[-2:]) for i in range(12)}
    assert (64, 64) in sizes  # some mosaics
    assert sizes - {(64, 64)}  # some zoom-out and crop
    assert TRANSFORMS.get('DEIMMosaic') is DEIMMosaic
