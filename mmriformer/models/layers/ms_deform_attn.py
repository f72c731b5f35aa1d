# Copyright (c) OpenMMLab. All rights reserved.
"""Multi-scale deformable attention in plain PyTorch, as RT-DETR uses it.

Two samplers share one layout: bilinear, with
:func:`torch.nn.functional.grid_sample` (RT-DETR and RT-DETRv2's
default), and nearest-pixel, with an index gather (RT-DETRv2's
"discrete" sampling, for runtimes without GridSample). No compiled
``mmcv.ops`` kernel is used, so the module runs on any device and exports
to ONNX (bilinear needs opset >= 16, where GridSample was added).
"""
import math
from typing import Callable, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor, nn

SpatialShapes = Sequence[Tuple[int, int]]
# (level image (N*heads, dim, H, W), level locations (N*heads, Lq, P, 2))
# -> samples (N*heads, dim, Lq, P)
LevelSampler = Callable[[Tensor, Tensor], Tensor]


def _bilinear_samples(level_value: Tensor, level_locations: Tensor) -> Tensor:
    """Bilinear samples of one level, zero outside the map."""
    # grid_sample's [-1, 1] spans the same outer pixel edges as [0, 1].
    return F.grid_sample(
        level_value,
        2 * level_locations - 1,
        mode='bilinear',
        padding_mode='zeros',
        align_corners=False)


def _nearest_samples(level_value: Tensor, level_locations: Tensor) -> Tensor:
    """RT-DETRv2's pixel of each location; the border pixel outside."""
    batch_heads, head_dim, height, width = level_value.shape
    _, num_query, num_points, _ = level_locations.shape
    x, y = level_locations.unbind(-1)
    # The official round(x * W): clamping before the cast keeps far-away
    # points (and the cast) in range.
    cols = (x * width + 0.5).floor().clamp(0, width - 1).long()
    rows = (y * height + 0.5).floor().clamp(0, height - 1).long()
    index = (rows * width + cols).reshape(batch_heads, 1, -1)
    samples = level_value.flatten(2).gather(
        2, index.expand(-1, head_dim, -1))
    return samples.view(batch_heads, head_dim, num_query, num_points)


def _deformable_attn(value: Tensor, spatial_shapes: SpatialShapes,
                     sampling_locations: Tensor, attention_weights: Tensor,
                     num_points: Optional[Sequence[int]],
                     sample_level: LevelSampler) -> Tensor:
    """Check the layout, sample each level and sum the weighted samples.

    See :func:`multi_scale_deformable_attn` for the arguments;
    ``sample_level`` samples one level.
    """
    if isinstance(spatial_shapes, Tensor):
        raise TypeError('spatial_shapes must be a sequence of (H, W) Python '
                        'ints, not a tensor (reading it would sync the '
                        'device); use [tuple(f.shape[-2:]) for f in feats]')
    if num_points is None:
        if sampling_locations.dim() != 6:
            raise ValueError(
                'without num_points, sampling_locations must have shape '
                '(N, Lq, num_heads, num_levels, num_points, 2), got '
                f'{tuple(sampling_locations.shape)}')
        num_levels, level_points = sampling_locations.shape[3:5]
        num_points = [level_points] * num_levels
        sampling_locations = sampling_locations.flatten(3, 4)
        attention_weights = attention_weights.flatten(3, 4)
    num_batch, num_value, num_heads, head_dim = value.shape
    _, num_query, _, num_samples, _ = sampling_locations.shape
    level_sizes = [height * width for height, width in spatial_shapes]
    if (len(level_sizes) != len(num_points) or sum(level_sizes) != num_value
            or sum(num_points) != num_samples):
        raise ValueError(
            f'spatial_shapes {list(spatial_shapes)} and num_points '
            f'{list(num_points)} do not match value of length {num_value} '
            f'and {num_samples} samples per head')

    # (N, Lq, heads, samples, 2) -> (N*heads, Lq, samples, 2)
    locations = sampling_locations.transpose(1, 2).flatten(0, 1)
    samples = []
    for level_value, level_locations, (height, width) in zip(
            value.split(level_sizes, dim=1),
            locations.split(list(num_points), dim=2), spatial_shapes):
        # (N, H*W, heads, dim) -> (N*heads, dim, H, W): one image per head.
        level_value = level_value.permute(0, 2, 3, 1)
        level_value = level_value.reshape(num_batch * num_heads, head_dim,
                                          height, width)
        samples.append(sample_level(level_value, level_locations))
    # (N, Lq, heads, samples) -> (N*heads, 1, Lq, samples)
    weights = attention_weights.transpose(1, 2)
    weights = weights.reshape(num_batch * num_heads, 1, num_query,
                              num_samples)
    # (N*heads, dim, Lq, samples) -> (N*heads, dim, Lq)
    output = (torch.cat(samples, dim=-1) * weights).sum(-1)
    return output.view(num_batch, num_heads * head_dim,
                       num_query).transpose(1, 2)


def multi_scale_deformable_attn(
        value: Tensor,
        spatial_shapes: SpatialShapes,
        sampling_locations: Tensor,
        attention_weights: Tensor,
        num_points: Optional[Sequence[int]] = None) -> Tensor:
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

    The samples come in one of two layouts: the same number of points on
    every level (``num_points`` None), or the points of all levels
    concatenated level by level, with ``num_points`` giving each level's
    count (RT-DETRv2's per-level points).

    Args:
        value (Tensor): Values of all levels, flattened row-major per level
            and concatenated, shape (N, L, num_heads, head_dim) with
            L = sum(H * W).
        spatial_shapes (Sequence[Tuple[int, int]]): (H, W) of each level, in
            the order the levels are concatenated in ``value``.
        sampling_locations (Tensor): Normalised (x, y) points, shape
            (N, Lq, num_heads, num_levels, num_points, 2), or
            (N, Lq, num_heads, sum(num_points), 2) with ``num_points``.
        attention_weights (Tensor): Weight of each sample, shape
            (N, Lq, num_heads, num_levels, num_points), or
            (N, Lq, num_heads, sum(num_points)) with ``num_points``.
        num_points (Sequence[int], optional): Points of each level, for the
            concatenated layout. Defaults to None.

    Returns:
        Tensor: The weighted sums, heads concatenated, shape
        (N, Lq, num_heads * head_dim).
    """
    return _deformable_attn(value, spatial_shapes, sampling_locations,
                            attention_weights, num_points, _bilinear_samples)


def multi_scale_deformable_attn_discrete(
        value: Tensor,
        spatial_shapes: SpatialShapes,
        sampling_locations: Tensor,
        attention_weights: Tensor,
        num_points: Optional[Sequence[int]] = None) -> Tensor:
    """Like :func:`multi_scale_deformable_attn`, reading one pixel a point.

    RT-DETRv2's "discrete" sampling, for deployment where GridSample is
    missing or slow: each point reads pixel (round(y * H), round(x * W)),
    as the official code does (``int(x * W + 0.5)``), so that its
    ``_dsp`` checkpoints give their results here. That is the pixel whose
    top-left corner is nearest, half a pixel right and down of the one
    that holds the point: a point at pixel (i, j)'s top-left corner
    (j / W, i / H) reads what bilinear sampling reads at its centre. A
    point outside the map reads the nearest border pixel (not zero). Each
    axis is clamped to its own size; the official code clamps both to
    ``H - 1``, the same on its square inputs. No gradient reaches
    ``sampling_locations``.

    Args:
        value (Tensor): Shape (N, L, num_heads, head_dim); see
            :func:`multi_scale_deformable_attn`, also for the shapes of
            the two layouts of the samples below.
        spatial_shapes (Sequence[Tuple[int, int]]): (H, W) of each level as
            Python ints.
        sampling_locations (Tensor): Normalised (x, y) points.
        attention_weights (Tensor): Weight of each sample.
        num_points (Sequence[int], optional): Points of each level, for the
            concatenated layout. Defaults to None.

    Returns:
        Tensor: Shape (N, Lq, num_heads * head_dim).
    """
    return _deformable_attn(value, spatial_shapes, sampling_locations,
                            attention_weights, num_points, _nearest_samples)


SAMPLING_METHODS = {
    'default': multi_scale_deformable_attn,
    'discrete': multi_scale_deformable_attn_discrete,
}


@MODELS.register_module()
class MSDeformableAttention(nn.Module):
    """RT-DETR's multi-scale deformable attention around reference boxes.

    Each query predicts, per head, ``num_points[l]`` offsets on feature
    level ``l`` and a softmax weight for each of these ``sum(num_points)``
    samples. Offsets are measured relative to the query's reference box
    (Deformable DETR's two-stage form), in units of half the box size
    divided by the level's points.

    With one int for ``num_points`` and ``method='default'`` this is
    RT-DETR (v1) exactly; a per-level list and ``method='discrete'`` are
    RT-DETRv2's options. A list with the same count everywhere computes the
    same function as that int, with the same parameter layout.
    ``projections=False`` is D-FINE's: the memory is sampled as it is and
    the samples' sum is the output (no ``value_proj`` or ``output_proj``).

    Args:
        embed_dims (int): Channels of queries and values. Defaults to 256.
        num_heads (int): Attention heads; must divide ``embed_dims``.
            Defaults to 8.
        num_levels (int): Feature levels sampled. Defaults to 3.
        num_points (int | Sequence[int]): Points sampled per head on every
            level, or on each level (``num_levels`` counts). Defaults to 4.
        method (str): ``'default'`` samples bilinearly
            (:func:`multi_scale_deformable_attn`); ``'discrete'`` reads the
            nearest pixel (:func:`multi_scale_deformable_attn_discrete`) and
            freezes ``sampling_offsets``, which would get no gradient.
            Defaults to ``'default'``.
        projections (bool): Whether the values and the output pass through
            linear layers (``value_proj``, ``output_proj``), as in RT-DETR;
            D-FINE has neither. Defaults to True.
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 num_levels: int = 3,
                 num_points: Union[int, Sequence[int]] = 4,
                 method: str = 'default',
                 projections: bool = True) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible '
                             f'by num_heads ({num_heads})')
        if isinstance(num_points, int):
            num_points = [num_points] * num_levels
        if len(num_points) != num_levels:
            raise ValueError(f'num_points {list(num_points)} must give one '
                             f'count for each of the {num_levels} levels')
        if method not in SAMPLING_METHODS:
            raise ValueError(f'method must be one of '
                             f'{sorted(SAMPLING_METHODS)}, got {method!r}')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.num_points = tuple(num_points)
        self.method = method
        self.head_dims = embed_dims // num_heads
        num_samples = num_heads * sum(num_points)
        self.sampling_offsets = nn.Linear(embed_dims, num_samples * 2)
        self.attention_weights = nn.Linear(embed_dims, num_samples)
        self.projections = projections
        if projections:
            self.value_proj = nn.Linear(embed_dims, embed_dims)
            self.output_proj = nn.Linear(embed_dims, embed_dims)
        self.init_weights()
        if method == 'discrete':
            self.sampling_offsets.requires_grad_(False)

    def init_weights(self) -> None:
        """Initialise as RT-DETR (and Deformable DETR) do.

        The offsets start input-independent: head h points in direction
        2*pi*h/num_heads, scaled so its larger component is 1, and point p
        (1-based) of a level lies p steps out, so the last point of each
        head and level starts on the edge of the reference box. All samples
        start equally weighted.
        """
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.num_heads) * (2 * math.pi / self.num_heads)
        directions = torch.stack([angles.cos(), angles.sin()], dim=-1)
        directions = directions / directions.abs().amax(-1, keepdim=True)
        steps = torch.cat([
            torch.arange(1, n + 1, dtype=torch.float32)
            for n in self.num_points
        ])
        # (heads, samples, 2), the layout of the Linear's output.
        grid = directions[:, None, :] * steps[None, :, None]
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        if self.projections:
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
        if self.projections:
            value = self.value_proj(value)
        if value_mask is not None:
            value = value.masked_fill(~value_mask[..., None], 0)
        value = value.unflatten(-1, (self.num_heads, self.head_dims))

        sample_shape = (num_batch, num_query, self.num_heads, -1)
        offsets = self.sampling_offsets(query).view(*sample_shape, 2)
        weights = self.attention_weights(query).view(sample_shape)
        weights = weights.softmax(-1)

        # An offset of n (the level's points) moves a point by half the box
        # size, i.e. from the centre to the box edge. Dividing by Python
        # ints rounds as v1 did on every device.
        if len(set(self.num_points)) == 1:
            offsets = offsets / self.num_points[0]
        else:
            offsets = torch.cat([
                level_offsets / level_points for level_offsets, level_points
                in zip(offsets.split(self.num_points, dim=3), self.num_points)
            ], dim=3)
        centres = reference_points[:, :, None, None, :2]
        half_sizes = reference_points[:, :, None, None, 2:] * 0.5
        locations = centres + offsets * half_sizes

        output = SAMPLING_METHODS[self.method](value, spatial_shapes,
                                               locations, weights,
                                               self.num_points)
        return self.output_proj(output) if self.projections else output
