# Copyright (c) OpenMMLab. All rights reserved.
"""Precision of the box maths under mixed precision."""
import torch
from torch import Tensor


def at_least_float32(x: Tensor) -> Tensor:
    """``x`` in float32 if it is in a narrower float (float16, bfloat16).

    Under autocast, linear layers return float16/bfloat16. Box logits,
    anchors, sigmoids and losses lose too much there (a box side near the
    image border needs ~1e-5 resolution in logit space), so they are
    computed in float32; float64 stays float64.

    Args:
        x (Tensor): Any floating tensor.

    Returns:
        Tensor: ``x`` or its float32 copy.
    """
    if x.dtype in (torch.float16, torch.bfloat16):
        return x.float()
    return x
