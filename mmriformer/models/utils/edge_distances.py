# Copyright (c) OpenMMLab. All rights reserved.
"""D-FINE's box encoding: a box as the offsets of its four edges from the
edges of a reference box, in units of the reference's side / reg_scale."""
from typing import Union

import torch
from mmdet.structures.bbox import bbox_xyxy_to_cxcywh
from torch import Tensor

# D-FINE's guard against a reference box of width or height 0.
_EPS = 1e-16


def distance_to_box(points: Tensor, distance: Tensor,
                    reg_scale: Union[float, Tensor]) -> Tensor:
    """Boxes from the edge offsets of reference boxes (D-FINE's
    ``distance2bbox``).

    With the reference ``(cx, cy, w, h)``, ``c = |reg_scale|`` and the
    offsets ``(l, t, r, b)``::

        x1 = cx - (c / 2 + l) * w / c      x2 = cx + (c / 2 + r) * w / c
        y1 = cy - (c / 2 + t) * h / c      y2 = cy + (c / 2 + b) * h / c

    so offsets 0 give the reference box itself and an offset of ``c``
    moves an edge by the reference's full side.

    Args:
        points (Tensor): Reference boxes (cx, cy, w, h), shape (..., 4).
        distance (Tensor): Offsets (left, top, right, bottom) in W's units,
            shape (..., 4), e.g. from :func:`distribution_integral`.
        reg_scale (float | Tensor): D-FINE's ``reg_scale``, a number or a
            one-element tensor.

    Returns:
        Tensor: Boxes (cx, cy, w, h) of shape (..., 4).
    """
    reg_scale = abs(reg_scale)
    centre, size = points[..., :2], points[..., 2:]
    half = 0.5 * reg_scale
    top_left = centre - (half + distance[..., :2]) * (size / reg_scale)
    bottom_right = centre + (half + distance[..., 2:]) * (size / reg_scale)
    return bbox_xyxy_to_cxcywh(torch.cat([top_left, bottom_right], -1))


def box_to_distance(points: Tensor, boxes: Tensor,
                    reg_scale: Union[float, Tensor]) -> Tensor:
    """Edge offsets of boxes from reference boxes, the inverse of
    :func:`distance_to_box` (the first step of D-FINE's ``bbox2distance``).

    The offsets are not clamped: :func:`distance_to_bins` maps those
    beyond W's range onto its end bins.

    Args:
        points (Tensor): Reference boxes (cx, cy, w, h), shape (..., 4).
        boxes (Tensor): Boxes (x1, y1, x2, y2), shape (..., 4), e.g. the
            gt boxes matched to the queries.
        reg_scale (float | Tensor): D-FINE's ``reg_scale``.

    Returns:
        Tensor: Offsets (left, top, right, bottom) of shape (..., 4).
    """
    reg_scale = abs(reg_scale)
    centre, size = points[..., :2], points[..., 2:]
    unit = size / reg_scale + _EPS
    left_top = (centre - boxes[..., :2]) / unit
    right_bottom = (boxes[..., 2:] - centre) / unit
    return torch.cat([left_top, right_bottom], -1) - 0.5 * reg_scale
