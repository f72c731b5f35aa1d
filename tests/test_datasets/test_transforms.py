# Copyright (c) OpenMMLab. All rights reserved.
"""RT-DETR's torchvision augmentations, held to torchvision itself.

The oracle of each test is what the official RT-DETR runs: torchvision's
transforms on an RGB ``tv_tensors.Image`` and ``BoundingBoxes``, under the
same torch seed as our mmdet transform.
"""
import json

import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes, bbox_overlaps
from mmdet.structures.mask import BitmapMasks
from mmengine.dataset import Compose
from torchvision import tv_tensors
from torchvision.transforms import v2

from mmriformer.datasets import RandomIoUCrop, RandomPhotometricDistort

SEEDS = range(20)


def make_results(img, boxes, labels=None, ignore=None):
    """An mmdet results dict as LoadAnnotations leaves it.

    Args:
        img (np.ndarray): (H, W, 3) BGR image.
        boxes (array-like): (N, 4) xyxy boxes.
        labels (array-like, optional): (N, ) labels; 0..N-1 if None.
        ignore (array-like, optional): (N, ) crowd flags; none if None.

    Returns:
        dict: The results dict.
    """
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    n = len(boxes)
    return dict(
        img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2],
        gt_bboxes=HorizontalBoxes(boxes),
        gt_bboxes_labels=np.arange(n) if labels is None else np.asarray(
            labels),
        gt_ignore_flags=np.zeros(n, bool) if ignore is None else np.asarray(
            ignore, bool))


def random_scene(seed, height=80, width=96, n=6):
    """A random BGR image and n random boxes of at least 2 px inside it."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    x1 = rng.uniform(0, width - 4, n)
    y1 = rng.uniform(0, height - 4, n)
    x2 = rng.uniform(x1 + 2, width)
    y2 = rng.uniform(y1 + 2, height)
    return img, np.stack([x1, y1, x2, y2], 1)


def rgb_image(bgr):
    """The (3, H, W) RGB tv_tensors image that torchvision is given."""
    return tv_tensors.Image(
        torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).permute(
            2, 0, 1))


def official_iou_crop(image, boxes, labels, p=0.8):
    """RT-DETR's ``RandomIoUCrop(p)`` then ``SanitizeBoundingBoxes``."""
    sample = dict(image=image, boxes=boxes, labels=labels)
    if torch.rand(1) >= p:  # the official wrapper's skip
        return sample
    return v2.SanitizeBoundingBoxes(min_size=1)(v2.RandomIoUCrop()(sample))


def crop_window(results):
    """(left, top) of the crop, read from the recorded homography."""
    matrix = results.get('homography_matrix')
    if matrix is None:
        return 0, 0
    return int(-matrix[0, 2]), int(-matrix[1, 2])


def test_iou_crop_matches_torchvision():
    transform = RandomIoUCrop()
    cropped = 0
    for seed in SEEDS:
        img, boxes = random_scene(seed)
        results = make_results(img.copy(), boxes)
        torch.manual_seed(seed)
        ours = transform(results)
        torch.manual_seed(seed)
        theirs = official_iou_crop(
            rgb_image(img),
            tv_tensors.BoundingBoxes(torch.as_tensor(boxes).float(),
                                     format='XYXY',
                                     canvas_size=img.shape[:2]),
            torch.arange(len(boxes)))
        assert torch.equal(rgb_image(ours['img']), theirs['image'])
        assert ours['img_shape'] == tuple(theirs['image'].shape[1:])
        assert torch.equal(ours['gt_bboxes'].tensor,
                           theirs['boxes'].as_subclass(torch.Tensor))
        assert ours['gt_bboxes_labels'].tolist() == theirs['labels'].tolist()
        cropped += ours['img'].shape != img.shape
    # Both the crop and the skip (prob and the "keep" option) were compared.
    assert 0 < cropped < len(SEEDS)


def crowded_scene():
    """A 200 x 200 image: one large box among 30 boxes of 4 x 4 px."""
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 196, (30, 2))
    small = np.concatenate([corners, corners + 4], 1)
    boxes = np.concatenate([[[20, 20, 180, 180]], small])
    return np.zeros((200, 200, 3), np.uint8), boxes


def test_iou_crop_needs_one_box_unlike_min_iou_random_crop():
    img, boxes = crowded_scene()
    ours = RandomIoUCrop(prob=1, sampler_options=(0.7, 1.0))
    # mmdet draws among (1, 0.7, 0): 1 keeps the image, 0 takes any crop.
    theirs = TRANSFORMS.build(
        dict(type='MinIoURandomCrop', min_ious=(0.7, ), min_crop_size=0.3))
    ours_cropped, mmdet_modes, mmdet_alone_modes = 0, [], []
    for seed in range(10):
        torch.manual_seed(seed)
        out = ours(make_results(img.copy(), boxes))
        if out['img'].shape != img.shape:
            ours_cropped += 1
            left, top = crop_window(out)
            height, width = out['img_shape']
            window = torch.tensor([[left, top, left + width, top + height]],
                                  dtype=torch.float32)
            ious = bbox_overlaps(torch.as_tensor(boxes).float(), window)
            # The large box alone meets the IoU, and it is kept.
            assert ious[0] >= 0.7 and (ious[1:] < 0.7).all()
            assert 0 in out['gt_bboxes_labels']
        np.random.seed(seed)
        if theirs(make_results(img.copy(), boxes))['img'].shape != img.shape:
            mmdet_modes.append(theirs.mode)
        # Without the small boxes, mmdet crops at IoU 0.7 too.
        out = theirs(make_results(img.copy(), boxes[:1]))
        if out['img'].shape != img.shape:
            mmdet_alone_modes.append(theirs.mode)
    assert ours_cropped >= 5
    # Every box must meet mmdet's IoU: it crops this image at IoU 0 only.
    assert set(mmdet_modes) == {0}
    assert 0.7 in mmdet_alone_modes


def test_iou_crop_keeps_instances_aligned():
    transform = RandomIoUCrop(prob=1)
    cropped = 0
    for seed in SEEDS:
        img, boxes = random_scene(seed, n=8)
        boxes = np.round(boxes)  # integer boxes, to compare with masks
        n = len(boxes)
        masks = np.zeros((n, ) + img.shape[:2], np.uint8)
        for i, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
            masks[i, y1:y2, x1:x2] = 1
        seg_map = np.random.default_rng(seed).integers(
            0, 5, img.shape[:2], dtype=np.uint8)
        ignore = np.arange(n) % 3 == 0
        results = make_results(img.copy(), boxes, labels=10 + np.arange(n),
                               ignore=ignore)
        results.update(gt_masks=BitmapMasks(masks, *img.shape[:2]),
                       gt_seg_map=seg_map, gt_instances_ids=np.arange(n))
        torch.manual_seed(seed)
        out = transform(results)
        if out['img'].shape == img.shape:
            continue
        cropped += 1
        left, top = crop_window(out)
        height, width = out['img_shape']
        assert (out['img'] == img[top:top + height, left:left + width]).all()
        assert (out['gt_seg_map'] == seg_map[top:top + height,
                                             left:left + width]).all()
        index = out['gt_instances_ids']
        assert (out['gt_bboxes_labels'] == 10 + index).all()
        assert (out['gt_ignore_flags'] == ignore[index]).all()
        expected = boxes[index] - [left, top, left, top]
        expected = expected.clip(0, [width, height, width, height])
        np.testing.assert_allclose(out['gt_bboxes'].numpy(), expected)
        assert out['gt_masks'].masks.shape == (len(index), height, width)
        for mask, (x1, y1, x2, y2) in zip(out['gt_masks'].masks,
                                          expected.astype(int)):
            assert mask.sum() == (x2 - x1) * (y2 - y1)
            assert mask[y1:y2, x1:x2].all()
        # Crowd boxes too are kept if and only if their centre is inside.
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2 - [left, top]
        inside = ((centres > 0) & (centres < [width, height])).all(1)
        assert set(index) == set(np.flatnonzero(inside))
    assert cropped >= 10


def test_iou_crop_grayscale_image():
    img, boxes = random_scene(3)
    crops = []
    for pixels in (img, img[..., 0]):
        torch.manual_seed(1)
        crops.append(RandomIoUCrop(prob=1)(make_results(pixels.copy(),
                                                        boxes))['img'])
    assert crops[1].shape == crops[0].shape[:2] != img.shape[:2]
    assert (crops[1] == crops[0][..., 0]).all()


def test_iou_crop_without_boxes_to_steer_keeps_the_image():
    img, boxes = random_scene(0, n=8)
    transform = RandomIoUCrop(prob=1)
    for seed in range(5):
        torch.manual_seed(seed)
        # Only crowd boxes: the official dataset has none, so no crop.
        out = transform(make_results(img.copy(), boxes,
                                     ignore=np.ones(len(boxes))))
        assert out['img'].shape == img.shape
        assert torch.equal(out['gt_bboxes'].tensor,
                           torch.as_tensor(boxes).float())
        # No boxes at all: neither a crop nor an endless search.
        out = transform(make_results(img.copy(), np.zeros((0, 4))))
        assert out['img'].shape == img.shape
        assert out['gt_bboxes'].shape == (0, 4)


def test_iou_crop_zero_remaining_boxes_keeps_the_crop():
    img = np.zeros((80, 96, 3), np.uint8)
    # Narrower than 1 px: the crop may keep its centre, sanitizing drops it.
    transform = RandomIoUCrop(prob=1)
    emptied = 0
    for seed in range(10):
        torch.manual_seed(seed)
        out = transform(make_results(img.copy(), [[40, 30, 40.5, 50]]))
        if out['img'].shape == img.shape:
            continue
        emptied += 1
        assert out['img_shape'] == out['img'].shape[:2]
        assert out['gt_bboxes'].shape == (0, 4)
        assert out['gt_bboxes_labels'].shape == (0, )
        assert out['gt_ignore_flags'].shape == (0, )
    assert emptied > 0


def test_prob_zero_is_identity():
    img, boxes = random_scene(0)
    results = make_results(img.copy(), boxes)
    out = RandomIoUCrop(prob=0)(results)
    assert (out['img'] == img).all() and 'homography_matrix' not in out
    assert torch.equal(out['gt_bboxes'].tensor,
                       torch.as_tensor(boxes).float())
    assert out['gt_bboxes_labels'].tolist() == list(range(len(boxes)))
    out = RandomPhotometricDistort(p=0)(dict(img=img.copy()))
    assert (out['img'] == img).all()


@pytest.mark.parametrize('transform, kwargs, match', [
    (RandomIoUCrop, dict(min_scale=0.8, max_scale=0.5), 'min_scale'),
    (RandomIoUCrop, dict(max_scale=1.5), 'max_scale'),
    (RandomIoUCrop, dict(min_aspect_ratio=2, max_aspect_ratio=1),
     'aspect_ratio'),
    (RandomIoUCrop, dict(prob=1.5), 'prob'),
    (RandomIoUCrop, dict(trials=0), 'trials'),
    (RandomIoUCrop, dict(sampler_options=(0.3, 0.5)), 'value >= 1'),
    (RandomIoUCrop, dict(min_size=0.5), 'min_size'),
    (RandomPhotometricDistort, dict(brightness=(1.2, 0.8)), 'brightness'),
    (RandomPhotometricDistort, dict(contrast=(-0.5, 1)), 'contrast'),
    (RandomPhotometricDistort, dict(hue=(-0.6, 0)), 'hue'),
    (RandomPhotometricDistort, dict(p=-0.1), 'p must'),
])
def test_bad_arguments_raise(transform, kwargs, match):
    with pytest.raises(ValueError, match=match):
        transform(**kwargs)


def test_bad_inputs_raise():
    img, boxes = random_scene(0)
    results = make_results(img, boxes)
    del results['gt_bboxes']
    with pytest.raises(KeyError, match='LoadAnnotations'):
        RandomIoUCrop()(results)
    with pytest.raises(TypeError, match='uint8'):
        RandomPhotometricDistort()(dict(img=img.astype(np.float32)))


def test_photometric_distort_matches_torchvision_in_rgb():
    transform = RandomPhotometricDistort()
    oracle = v2.RandomPhotometricDistort(p=0.5)
    changed = 0
    for seed in SEEDS:
        img, _ = random_scene(seed, 24, 32)
        torch.manual_seed(seed)
        ours = transform(dict(img=img.copy()))['img']
        torch.manual_seed(seed)
        theirs = oracle(rgb_image(img))
        assert ours.dtype == np.uint8 and ours.shape == img.shape
        assert torch.equal(rgb_image(ours), theirs)
        changed += not (ours == img).all()
    assert changed > 0


def test_photometric_distort_channel_order_matters():
    # Giving torchvision the BGR image as if RGB would shift hue the wrong
    # way; the RGB round trip is what makes the test above pass.
    transform = RandomPhotometricDistort(p=1)
    oracle = v2.RandomPhotometricDistort(p=1)
    img, _ = random_scene(0, 24, 32)
    torch.manual_seed(0)
    ours = transform(dict(img=img.copy()))['img']
    torch.manual_seed(0)
    naive = oracle(tv_tensors.Image(torch.from_numpy(img).permute(2, 0, 1)))
    assert not torch.equal(torch.from_numpy(ours).permute(2, 0, 1), naive)


def test_photometric_distort_multiplies_brightness():
    black = np.zeros((16, 16, 3), np.uint8)
    ours = RandomPhotometricDistort(p=1)
    theirs = TRANSFORMS.build(dict(type='PhotoMetricDistortion'))
    mmdet_changed = 0
    for seed in range(5):
        torch.manual_seed(seed)
        # Every step scales or blends with black: black stays black.
        assert (ours(dict(img=black.copy()))['img'] == 0).all()
        np.random.seed(seed)
        mmdet_changed += (theirs(dict(img=black.copy()))['img'] != 0).any()
    # mmdet's distortion adds brightness.
    assert mmdet_changed > 0


def write_image(path, height=100, width=120):
    """A random image file; returns its (H, W, 3) BGR pixels."""
    img = np.random.default_rng(0).integers(0, 256, (height, width, 3),
                                            dtype=np.uint8)
    cv2.imwrite(str(path), img)
    return img


def test_transforms_in_an_mmdet_pipeline(tmp_path):
    write_image(tmp_path / 'img.png')
    pipeline = Compose([
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='RandomPhotometricDistort'),
        dict(type='Expand', mean=[0, 0, 0], to_rgb=True,
             ratio_range=(1, 4), prob=0.5),
        dict(type='RandomIoUCrop'),
        dict(type='RandomFlip', prob=0.5),
        dict(type='Resize', scale=(64, 48), keep_ratio=False),
        dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1),
             keep_empty=False),
        dict(type='PackDetInputs')
    ])
    boxes = [[10, 10, 50, 40], [60, 20, 110, 90], [30, 50, 70, 95],
             [5, 60, 25, 80]]
    shapes = set()
    for seed in range(8):
        torch.manual_seed(seed)
        np.random.seed(seed)
        sample = pipeline(
            dict(img_path=str(tmp_path / 'img.png'), img_id=0,
                 instances=[
                     dict(bbox=box, bbox_label=i % 2, ignore_flag=i == 3)
                     for i, box in enumerate(boxes)
                 ]))
        inputs, data_sample = sample['inputs'], sample['data_samples']
        assert inputs.shape == (3, 48, 64) and inputs.dtype == torch.uint8
        assert data_sample.img_shape == (48, 64)
        for instances in (data_sample.gt_instances,
                          data_sample.ignored_instances):
            assert len(instances.bboxes) == len(instances.labels)
            bboxes = instances.bboxes.tensor
            assert ((bboxes >= 0) & (bboxes <= torch.tensor([64, 48] * 2))
                    ).all()
        shapes.add(data_sample.scale_factor)
    # Crops and expansions gave different image sizes before the Resize.
    assert len(shapes) > 1


def build_coco(root, keep_empty):
    """A COCO dataset whose first image's only box vanishes in Resize."""
    write_image(root / '0.png')
    write_image(root / '1.png')
    coco = dict(
        images=[dict(id=i, file_name=f'{i}.png', width=120, height=100)
                for i in range(2)],
        annotations=[
            dict(id=1, image_id=0, category_id=1, iscrowd=0, area=4,
                 bbox=[50, 50, 2, 2]),
            dict(id=2, image_id=1, category_id=1, iscrowd=0, area=2000,
                 bbox=[10, 10, 50, 40])
        ],
        categories=[dict(id=1, name='a')])
    (root / 'ann.json').write_text(json.dumps(coco))
    return DATASETS.build(
        dict(type='CocoDataset', data_root=str(root), ann_file='ann.json',
             data_prefix=dict(img=''), metainfo=dict(classes=('a', )),
             filter_cfg=dict(filter_empty_gt=False),
             pipeline=[
                 dict(type='LoadImageFromFile'),
                 dict(type='LoadAnnotations', with_bbox=True),
                 dict(type='Resize', scale=(12, 10), keep_ratio=False),
                 dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1),
                      keep_empty=keep_empty),
                 dict(type='PackDetInputs')
             ]))


@pytest.mark.parametrize('keep_empty', [True, False])
def test_filter_annotations_keep_empty(tmp_path, keep_empty):
    # mmdet's keep_empty=True returns None for an image whose boxes were
    # all filtered, and the dataset then draws another image; the official
    # pipeline keeps it without boxes, which keep_empty=False does.
    dataset = build_coco(tmp_path, keep_empty)
    np.random.seed(0)
    data_sample = dataset[0]['data_samples']
    if keep_empty:
        assert data_sample.img_id == 1
    else:
        assert data_sample.img_id == 0
        assert len(data_sample.gt_instances) == 0
