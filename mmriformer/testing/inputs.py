# Copyright (c) OpenMMLab. All rights reserved.
"""Input builders shared by the tests."""
from typing import List, Optional, Sequence, Tuple

import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from torch import Tensor


def make_det_samples(shapes: Sequence[Tuple[int, int]],
                     boxes: Sequence[Sequence],
                     labels: Optional[Sequence[Tensor]] = None
                     ) -> List[DetDataSample]:
    """DetDataSamples with ground truth for unpadded, unscaled images.

    Args:
        shapes (Sequence[tuple[int, int]]): (H, W) of each image.
        boxes (Sequence): Per image, a list of (x1, y1, x2, y2) boxes in
            pixels; empty for an image without objects.
        labels (Sequence[Tensor], optional): Per image, the labels of its
            boxes. Defaults to cycling 0, 1, 2.

    Returns:
        list[DetDataSample]: One sample per image.
    """
    samples = []
    for i, ((h, w), image_boxes) in enumerate(zip(shapes, boxes)):
        sample = DetDataSample(metainfo=dict(
            img_shape=(h, w), batch_input_shape=(h, w), ori_shape=(h, w),
            scale_factor=(1., 1.), pad_shape=(h, w)))
        image_boxes = torch.tensor(
            image_boxes, dtype=torch.float32).reshape(-1, 4)
        image_labels = torch.arange(len(image_boxes)) % 3 \
            if labels is None else labels[i]
        sample.gt_instances = InstanceData(
            bboxes=image_boxes, labels=image_labels)
        samples.append(sample)
    return samples


def random_queries(spatial_shapes: Sequence[Tuple[int, int]],
                   num_batch: int,
                   num_query: int,
                   embed_dims: int,
                   seed: int,
                   dtype: torch.dtype = torch.float32
                   ) -> Tuple[Tensor, Tensor, Tensor]:
    """Random decoder inputs: queries, their boxes and a memory.

    Args:
        spatial_shapes (Sequence[tuple[int, int]]): (H, W) of each level.
        num_batch (int): Batch size N.
        num_query (int): Queries Q.
        embed_dims (int): Channels C.
        seed (int): Seed of the generator.
        dtype (torch.dtype): Dtype of the results.

    Returns:
        tuple[Tensor, Tensor, Tensor]: Queries (N, Q, C); boxes (N, Q, 4) as
        normalised (cx, cy, w, h), well inside the image; memory (N, L, C)
        with L the number of pixels over all levels.
    """
    gen = torch.Generator().manual_seed(seed)
    query = torch.randn(num_batch, num_query, embed_dims, generator=gen)
    centres = torch.rand(num_batch, num_query, 2, generator=gen) * .6 + .2
    sizes = torch.rand(num_batch, num_query, 2, generator=gen) * .3 + .1
    memory = torch.randn(num_batch, sum(h * w for h, w in spatial_shapes),
                         embed_dims, generator=gen)
    return tuple(t.to(dtype) for t in (query, torch.cat([centres, sizes], -1),
                                       memory))
