# Copyright (c) OpenMMLab. All rights reserved.
from typing import Optional

import torch
from torch import Tensor


def build_2d_sincos_position_embedding(
        w: int,
        h: int,
        embed_dim: int = 256,
        temperature: float = 10000.,
        device: Optional[torch.device] = None,
        dtype: torch.dtype = torch.float32) -> Tensor:
    """Fixed 2D sin-cos position embedding of an h x w feature map.

    With ``pos_dim = embed_dim // 4`` and
    ``omega_k = 1 / temperature ** (k / pos_dim)``, the token at row ``y``
    and column ``x`` (row-major, the order of ``feat.flatten(2)``) gets
    ``[sin(y * omega), cos(y * omega), sin(x * omega), cos(x * omega)]``.

    On square maps this is exactly RT-DETR's embedding: there the first
    half is named after ``w``, but its ``meshgrid(..., indexing='ij')``
    followed by a flatten makes it run over rows. On non-square maps the
    reference order is scrambled (a token's two coordinates come from
    ``divmod(index, h)``); here each token keeps its true row and column.

    Args:
        w (int): Width of the feature map.
        h (int): Height of the feature map.
        embed_dim (int): Channels; must be divisible by 4. Defaults to 256.
        temperature (float): Frequency base. Defaults to 10000.
        device (torch.device, optional): Where to build it. Defaults to
            None (the CPU).
        dtype (torch.dtype): Precision it is computed in. Defaults to
            float32; float64 for float64 models, whose references (HF's
            D-FINE) compute it in float64.

    Returns:
        Tensor: Embedding of shape (1, h * w, embed_dim), in ``dtype``.
    """
    if embed_dim % 4 != 0:
        raise ValueError(f'embed_dim={embed_dim} must be divisible by 4 for '
                         f'a 2D sin-cos position embedding.')
    pos_dim = embed_dim // 4
    omega = torch.arange(pos_dim, dtype=dtype, device=device)
    omega = 1. / temperature**(omega / pos_dim)
    grid_y, grid_x = torch.meshgrid(
        torch.arange(h, dtype=dtype, device=device),
        torch.arange(w, dtype=dtype, device=device),
        indexing='ij')  # (h, w) each, so flatten() is row-major
    out_rows = grid_y.flatten()[:, None] * omega[None]
    out_cols = grid_x.flatten()[:, None] * omega[None]
    return torch.cat(
        [out_rows.sin(),
         out_rows.cos(),
         out_cols.sin(),
         out_cols.cos()],
        dim=1)[None]
