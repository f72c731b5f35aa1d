# Copyright (c) OpenMMLab. All rights reserved.
"""Helpers for tests and benchmarks: random weights, output comparison, log
capture, shared inputs, a guard against host syncs and racing processes."""
import logging
from contextlib import contextmanager
from typing import Iterator, List, Sequence, Tuple, Union

import torch
from mmengine.logging import MMLogger
from torch import nn

from .host_sync import HostSyncError, forbid_host_sync
from .inputs import make_det_samples, random_queries
from .presnet_layout import official_presnet_state
from .processes import started_together

__all__ = [
    'randomize_', 'max_rel_diff', 'assert_float64_close',
    'assert_float32_error_within', 'logged_messages', 'EPS32',
    'HostSyncError', 'forbid_host_sync', 'make_det_samples', 'random_queries',
    'official_presnet_state', 'started_together'
]


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter a random, non-trivial value of sane magnitude.

    Layer scales start at 1e-5, which would make any two models look equal;
    here they are drawn around 0.3 so every block changes the output.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.split('.')[-1]
            if 'layer_scale' in leaf:
                p.copy_(torch.rand(p.shape, generator=gen) * 0.5 + 0.05)
            elif 'affine.weight' in name or (leaf == 'weight'
                                             and p.dim() == 1):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
            elif leaf == 'bias':
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in**0.5)
        for name, b in model.named_buffers():
            if name.endswith('running_var'):
                b.copy_(torch.rand(b.shape, generator=gen) + 0.5)
            elif name.endswith('running_mean'):
                b.copy_(torch.randn(b.shape, generator=gen) * 0.1)
    return model


def max_rel_diff(outs_a, outs_b) -> float:
    """Largest |a - b| over the largest |a|, across paired outputs."""
    worst = 0.
    for a, b in zip(outs_a, outs_b, strict=True):
        assert a.shape == b.shape
        worst = max(worst, ((a - b).abs().max() / a.abs().max()).item())
    return worst


EPS32 = torch.finfo(torch.float32).eps  # 1.2e-7

Outputs = Union[torch.Tensor, Sequence[torch.Tensor]]


def _as_list(outs: Outputs) -> List[torch.Tensor]:
    return [outs] if isinstance(outs, torch.Tensor) else list(outs)


def assert_float64_close(expected: Outputs, got: Outputs,
                         rel_tol: float = 1e-10) -> float:
    """Assert that two float64 computations of one function agree.

    For comparing forms that round differently (folded and unfolded weights,
    our module and a reference implementation, fused and plain ops). Each
    output of ``got`` must be within ``rel_tol`` times the largest magnitude
    of the matching output of ``expected`` (see :func:`max_rel_diff`).

    Why 1e-10: float64 rounding grows about linearly with the operations an
    output depends on; even a 48-block backbone (dot products of a few
    thousand terms, norms over ~1e5 values) stays near 1e3 * eps64 = 2e-13,
    and the tests measure 2e-14 at most. A real bug (a missing bias, a scale
    applied twice, a stale weight) changes outputs by 1e-3 of their scale or
    more, so the bound is orders of magnitude from both.

    Args:
        expected (Tensor | Sequence[Tensor]): Float64 reference output(s).
        got (Tensor | Sequence[Tensor]): Float64 output(s) to check, paired
            with ``expected``.
        rel_tol (float): Largest error allowed, relative to each output's
            scale. Defaults to 1e-10.

    Returns:
        float: The measured error, ``max_rel_diff(expected, got)``.
    """
    expected, got = _as_list(expected), _as_list(got)
    dtypes = {t.dtype for t in expected + got}
    assert dtypes == {torch.float64}, (
        f'compare float64 outputs only, got {dtypes}; float32 rounding is '
        f'not bounded by rel_tol={rel_tol}')
    err = max_rel_diff(expected, got)
    assert err <= rel_tol, f'relative error {err:.3g} > {rel_tol:.3g}'
    return err


def assert_float32_error_within(
        reference: Outputs,
        got: Outputs,
        baseline: Outputs,
        factor: float = 8.,
        floor: float = 4.,
        max_baseline: float = 1e3 * EPS32) -> Tuple[float, float]:
    """Assert a float32 path is about as accurate as another float32 path.

    For paths that only run in float32 (oneDNN kernels, a tool that loads
    images as float32). ``reference`` is a float64 computation of the same
    function; ``got`` (the path under test) and ``baseline`` (plain ops) are
    float32 computations of it. Errors are :func:`max_rel_diff` against the
    reference. ``got``'s error must be at most ``factor`` times
    ``baseline``'s plus ``floor * EPS32``.

    Why this bound: the float32 error of a deep computation depends on the
    kernels a machine picks (vector width, blocking, FMA), so no fixed
    tolerance holds everywhere; but two float32 paths through the same
    arithmetic on the same machine err alike (the tests measure ratios of
    0.8 to 1.7). ``factor`` 8 leaves room for that, the floor covers a
    baseline that happens to be near exact, and a real bug (errors of 1e-3
    or more, i.e. ~1e4 * EPS32) still exceeds the bound by orders of
    magnitude.
    ``max_baseline`` (~1000 units in the last place of the output scale,
    a hundred times what float32 rounding gives here) checks the reference
    itself: a baseline error beyond it means the reference computes
    something else, and the bound would be vacuous.

    Args:
        reference (Tensor | Sequence[Tensor]): Float64 output(s).
        got (Tensor | Sequence[Tensor]): Float32 output(s) under test.
        baseline (Tensor | Sequence[Tensor]): Float32 output(s) of another
            path of the same computation.
        factor (float): Allowed ratio of the errors. Defaults to 8.
        floor (float): Always allowed error, in units of ``EPS32``.
            Defaults to 4.
        max_baseline (float): Largest error allowed to ``baseline``.
            Defaults to ``1e3 * EPS32``.

    Returns:
        tuple[float, float]: ``got``'s error and the bound it met.
    """
    reference = _as_list(reference)
    assert all(t.dtype == torch.float64 for t in reference)

    def error(outs):
        outs = _as_list(outs)
        assert all(t.dtype == torch.float32 for t in outs)
        return max_rel_diff(reference, [t.double() for t in outs])

    got_err, base_err = error(got), error(baseline)
    assert base_err <= max_baseline, (
        f'baseline error {base_err:.3g} > {max_baseline:.3g}: the float64 '
        f'reference does not compute the same function')
    bound = factor * base_err + floor * EPS32
    assert got_err <= bound, (
        f'error {got_err:.3g} > {bound:.3g} = {factor} * baseline error '
        f'{base_err:.3g} + {floor} * eps32')
    return got_err, bound


@contextmanager
def logged_messages() -> Iterator[List[str]]:
    """Collect the messages of mmengine's current logger in a list."""
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
