# Copyright (c) OpenMMLab. All rights reserved.
"""bfloat16 mixed precision on any device."""
from contextlib import contextmanager

import torch
from mmdet.registry import OPTIM_WRAPPERS
from mmengine.optim import OptimWrapper
from torch import nn


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """Mixed precision by ``torch.autocast`` without a loss scaler.

    bfloat16 has float32's exponent range, so gradients do not underflow
    and need no loss scaling. mmengine's ``AmpOptimWrapper`` (float16 with
    a dynamic loss scaler, mmdet's ``--amp``) only runs where CUDA (or an
    NPU, MLU, MUSA) is; this wrapper also runs on CPU. The detector keeps
    anchors, box logits, matching costs and losses in float32 either way.

    Args:
        dtype (str): Autocast dtype; only ``'bfloat16'``, since float16
            needs the loss scaler of ``AmpOptimWrapper``.
        **kwargs: See :class:`mmengine.optim.OptimWrapper`.
    """

    def __init__(self, dtype: str = 'bfloat16', **kwargs) -> None:
        if dtype != 'bfloat16':
            raise ValueError(
                f"AutocastOptimWrapper(dtype={dtype!r}): only 'bfloat16' "
                f"works without loss scaling; for float16 on a GPU use "
                f"optim_wrapper=dict(type='AmpOptimWrapper', "
                f"loss_scale='dynamic') (mmdet's --amp).")
        super().__init__(**kwargs)
        self.cast_dtype = torch.bfloat16

    @contextmanager
    def optim_context(self, model: nn.Module):
        """Gradient accumulation context, plus autocast on the device of
        the model's parameters."""
        device = next(model.parameters()).device.type
        with super().optim_context(model), torch.autocast(
                device_type=device, dtype=self.cast_dtype):
            yield
