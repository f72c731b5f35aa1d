# Copyright (c) OpenMMLab. All rights reserved.
"""D-FINE's weighting function W(n): the grid of edge offsets that the
edge distributions of Fine-grained Distribution Refinement (FDR) live on,
the integral of a distribution over it, and the two-neighbour soft label
of an offset on it."""
from typing import Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .precision import at_least_float32


def weighting_function(reg_max: int, up: Union[float, Tensor],
                       reg_scale: Union[float, Tensor]) -> Tensor:
    """D-FINE's non-uniform weighting function W(n), n = 0 .. reg_max.

    With ``a = |up| * |reg_scale|``, ``h = reg_max // 2`` and
    ``s = (a + 1) ** (2 / (reg_max - 2))``::

        W(h) = 0
        W(h + i) = s ** i - 1,  W(h - i) = -(s ** i - 1)   for 0 < i < h
        W(0) = -2 * a,          W(reg_max) = 2 * a

    so the inner values grow geometrically from fine steps near 0 to
    ``W(reg_max - 1) = a`` and the two end bins catch everything up to
    ``2 * a``. Offsets are in units of the reference box's side divided by
    ``reg_scale`` (see :func:`box_to_distance`).

    Args:
        reg_max (int): Number of intervals; the grid has ``reg_max + 1``
            values. Even and at least 4 (D-FINE uses 32).
        up (float | Tensor): Upper bound factor ``a / reg_scale``; a number
            or a one-element tensor (D-FINE's frozen parameter, 0.5).
        reg_scale (float | Tensor): Curvature; a number or a one-element
            tensor (D-FINE uses 4, 8 for its X model).

    Returns:
        Tensor: W of shape (reg_max + 1, ), increasing, in the dtype and
        on the device of ``up * reg_scale`` (the default dtype if both are
        numbers).
    """
    if reg_max < 4 or reg_max % 2:
        raise ValueError(f'reg_max must be even and at least 4, got '
                         f'{reg_max}; D-FINE uses 32')
    # One element whatever mix of numbers and (1, ) tensors comes in.
    bound = torch.as_tensor(up * reg_scale).abs().reshape(())
    step = (bound + 1)**(2 / (reg_max - 2))
    exponents = torch.arange(1,
                             reg_max // 2,
                             dtype=bound.dtype,
                             device=bound.device)
    right = step**exponents - 1
    ends = (2 * bound).reshape(1)
    return torch.cat([-ends, -right.flip(0), bound.new_zeros(1), right, ends])


def distribution_integral(corners: Tensor, project: Tensor) -> Tensor:
    """Expected edge offsets of edge distributions: ``sum_n Pr(n) W(n)``.

    Args:
        corners (Tensor): Logits of the four edge distributions (left, top,
            right, bottom), shape (..., 4 * (reg_max + 1)), the four
            distributions one after another.
        project (Tensor): W of shape (reg_max + 1, ), from
            :func:`weighting_function`.

    Returns:
        Tensor: Offsets of shape (..., 4) in W's units, in the dtype of
        ``corners`` (at least float32).
    """
    bins = project.numel()
    if corners.shape[-1] != 4 * bins:
        raise ValueError(
            f'corners must end in 4 * (reg_max + 1) = {4 * bins} logits for '
            f'a W of {bins} values, got shape {tuple(corners.shape)}')
    corners = at_least_float32(corners)
    probs = F.softmax(corners.unflatten(-1, (4, bins)), dim=-1)
    return probs @ project.to(probs)


def distance_to_bins(distance: Tensor, project: Tensor) -> Tensor:
    """Fractional bin positions of edge offsets on the grid W.

    An offset ``d`` with ``W(i) <= d < W(i + 1)`` lies at ``i + r``, with
    ``r = (d - W(i)) / (W(i + 1) - W(i))``: the two-neighbour soft label
    puts ``1 - r`` on bin ``i`` and ``r`` on bin ``i + 1``, and its
    integral over W is ``d`` again. Offsets outside W's range lie at 0
    (``d < W(0)``) or ``reg_max`` (``d >= W(reg_max)``): all mass on the
    end bin, as D-FINE's ``translate_gt`` does.

    Unlike D-FINE, which keeps the left bin and ``r`` apart in float32,
    the position holds both in the dtype of ``distance``: in float32 ``r``
    is kept to 2e-6 (half the spacing of float32 below 32), in float64 to
    4e-15.

    Args:
        distance (Tensor): Offsets in W's units, any shape, e.g. (N, 4)
            from :func:`box_to_distance`.
        project (Tensor): W of shape (reg_max + 1, ), increasing.

    Returns:
        Tensor: Positions in [0, reg_max], the shape of ``distance``, in
        its dtype (at least float32), without gradient.
    """
    distance = at_least_float32(distance.detach())
    project = project.detach().to(distance)
    reg_max = project.numel() - 1
    # Index of the last W value <= d: -1 below the grid, reg_max at or
    # above its end.
    left = torch.searchsorted(project, distance.contiguous(), right=True) - 1
    left = left.clamp(0, reg_max - 1)
    low, high = project[left], project[left + 1]
    # The clamp sends offsets beyond either end onto that end's bin.
    frac = ((distance - low) / (high - low)).clamp(0, 1)
    return left + frac
