# Copyright (c) OpenMMLab. All rights reserved.
"""Helpers for tests and benchmarks: random weights, output comparison and
log capture."""
import logging
from contextlib import contextmanager
from typing import Iterator, List

import torch
from mmengine.logging import MMLogger
from torch import nn


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
