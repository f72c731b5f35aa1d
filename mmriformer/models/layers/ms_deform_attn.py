# Copyright (c) OpenMMLab. All rights reserved.
"""Multi-scale deformable attention in plain PyTorch, as RT-DETR uses it.

The sampling is :func:`torch.nn.functional.grid_sample`. No compiled
``mmcv.ops`` kernel is used, so the module runs on any device and exports
to ONNX (opset >= 16, where GridSample was added).
"""
import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor, nn

SpatialShapes = Sequence[Tuple[int, int]]


def multi_scale_deformable_attn(value: Tensor, spatial_shapes: SpatialShapes,
                                sampling_locations: Tensor,
                                attention_weights: Tensor) -> Tensor:
    """Bilinearly sample each level at the given points and sum the samples.

    ``spatial_shapes`` holds Python ints, not a tensor. Splitting ``value``
    into levels and viewing each as an image needs the sizes on the host;
    reading them from a tensor would sync the device on every call (and
    every decoder layer). Build it from the feature maps, whose
    ``shape[-2:]`` are already ints: ``[tuple(f.shape[-2:]) for f in feats]``.
    A tensor is refused with a TypeError.

    Sampling follows ``align_corners=False``: (0, 0) is the top-left corner
    of the top-left pixel and (1, 1) the bottom-right corner of the
    bottom-right pixel, so pixel (i, j) has its centre at
    ((j + 0.5) / W, (i + 0.5) / H). Anything outside the map reads zero.

    Args:
        value (Tensor): Values of all levels, flattened row-major per level
            and concatenated, shape (N, L, num_heads, head_dim) with
            L = sum(H * W).
        spatial_shapes (Sequence[Tuple[int, int]]): (H, W) of each level, in
            the order the levels are concatenated in ``value``.
        sampling_locations (Tensor): Normalised (x, y) points, shape
            (N, Lq, num_heads, num_levels, num_points, 2).
        attention_weights (Tensor): Weight of each sample, shape
            (N, Lq, num_heads, num_levels, num_points).

    Returns:
        Tensor: The weighted sums, heads concatenated, shape
        (N, Lq, num_heads * head_dim).
    """
    if isinstance(spatial_shapes, Tensor):
        raise TypeError('spatial_shapes must be a sequence of (H, W) Python '
                        'ints, not a tensor (reading it would sync the '
                        'device); use [tuple(f.shape[-2:]) for f in feats]')
    num_batch, num_value, num_heads, head_dim = value.shape
    _, num_query, _, num_levels, num_points, _ = sampling_locations.shape
    level_sizes = [height * width for height, width in spatial_shapes]
    if len(level_sizes) != num_levels or sum(level_sizes) != num_value:
        raise ValueError(
            f'spatial_shapes {list(spatial_shapes)} do not match value of '
            f'length {num_value} and {num_levels} sampled levels')

    # grid_sample's [-1, 1] spans the same outer pixel edges as [0, 1].
    grids = 2 * sampling_locations - 1
    samples = []
    for level, (level_value, (height, width)) in enumerate(
            zip(value.split(level_sizes, dim=1), spatial_shapes)):
        # (N, H*W, heads, dim) -> (N*heads, dim, H, W): one image per head.
        level_value = level_value.permute(0, 2, 3, 1)
        level_value = level_value.reshape(num_batch * num_heads, head_dim,
                                          height, width)
        # (N, Lq, heads, points, 2) -> (N*heads, Lq, points, 2)
        level_grid = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        # -> (N*heads, dim, Lq, points)
        samples.append(
            F.grid_sample(
                level_value,
                level_grid,
                mode='bilinear',
                padding_mode='zeros',
                align_corners=False))
    # (N, Lq, heads, levels, points) -> (N*heads, 1, Lq, levels*points)
    weights = attention_weights.transpose(1, 2)
    weights = weights.reshape(num_batch * num_heads, 1, num_query,
                              num_levels * num_points)
    # (N*heads, dim, Lq, levels*points) -> (N*heads, dim, Lq)
    output = (torch.stack(samples, dim=-2).flatten(-2) * weights).sum(-1)
    return output.view(num_batch, num_heads * head_dim,
                       num_query).transpose(1, 2)


@MODELS.register_module()
class MSDeformableAttention(nn.Module):
    """RT-DETR's multi-scale deformable attention around reference boxes.

    Each query predicts, per head, ``num_points`` offsets on each of
    ``num_levels`` feature levels and a softmax weight for each of these
    ``num_levels * num_points`` samples. Offsets are measured relative to the
    query's reference box (Deformable DETR's two-stage form).

    Args:
        embed_dims (int): Channels of queries and values. Defaults to 256.
        num_heads (int): Attention heads; must divide ``embed_dims``.
            Defaults to 8.
        num_levels (int): Feature levels sampled. Defaults to 3.
        num_points (int): Points sampled per head and level. Defaults to 4.
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 num_levels: int = 3,
                 num_points: int = 4) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible '
                             f'by num_heads ({num_heads})')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.num_points = num_points
        self.head_dims = embed_dims // num_heads
        num_samples = num_heads * num_levels * num_points
        self.sampling_offsets = nn.Linear(embed_dims, num_samples * 2)
        self.attention_weights = nn.Linear(embed_dims, num_samples)
        self.value_proj = nn.Linear(embed_dims, embed_dims)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        self.init_weights()

    def init_weights(self) -> None:
        """Initialise as RT-DETR (and Deformable DETR) do.

        The offsets start input-independent: head h points in direction
        2*pi*h/num_heads, scaled so its larger component is 1, and point p
        (1-based) lies p steps out, so the last point of each head starts on
        the edge of the reference box. All samples start equally weighted.
        """
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.num_heads) * (2 * math.pi / self.num_heads)
        directions = torch.stack([angles.cos(), angles.sin()], dim=-1)
        directions = directions / directions.abs().amax(-1, keepdim=True)
        steps = torch.arange(1, self.num_points + 1, dtype=torch.float32)
        # (heads, levels, points, 2), the layout of the Linear's output.
        grid = directions[:, None, None, :] * steps[None, None, :, None]
        grid = grid.expand(-1, self.num_levels, -1, -1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for proj in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)

    def forward(self,
                query: Tensor,
                reference_points: Tensor,
                value: Tensor,
                spatial_shapes: SpatialShapes,
                value_mask: Optional[Tensor] = None) -> Tensor:
        """Attend from each query to points around its reference box.

        Args:
            query (Tensor): Queries, with their position embedding already
                added, shape (N, Lq, embed_dims).
            reference_points (Tensor): Reference boxes (cx, cy, w, h)
                normalised to [0, 1], shape (N, Lq, 4).
            value (Tensor): Flattened multi-level features, shape
                (N, L, embed_dims).
            spatial_shapes (Sequence[Tuple[int, int]]): (H, W) of each level
                as Python ints; see :func:`multi_scale_deformable_attn`.
            value_mask (Tensor, optional): Bool, shape (N, L); **True marks a
                valid token** (RT-DETR's convention, the opposite of a
                key_padding_mask). False tokens are zeroed before sampling.
                Defaults to None (all valid).

        Returns:
            Tensor: Shape (N, Lq, embed_dims).
        """
        num_batch, num_query, _ = query.shape
        value = self.value_proj(value)
        if value_mask is not None:
            value = value.masked_fill(~value_mask[..., None], 0)
        value = value.unflatten(-1, (self.num_heads, self.head_dims))

        sample_shape = (num_batch, num_query, self.num_heads, self.num_levels,
                        self.num_points)
        offsets = self.sampling_offsets(query).view(*sample_shape, 2)
        weights = self.attention_weights(query)
        weights = weights.view(num_batch, num_query, self.num_heads, -1)
        weights = weights.softmax(-1).view(sample_shape)

        # An offset of num_points moves a point by half the box size, i.e.
        # from the centre to the box edge.
        centres = reference_points[:, :, None, None, None, :2]
        half_sizes = reference_points[:, :, None, None, None, 2:] * 0.5
        locations = centres + offsets / self.num_points * half_sizes

        output = multi_scale_deformable_attn(value, spatial_shapes, locations,
                                             weights)
        return self.output_proj(output)
