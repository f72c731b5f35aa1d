# Copyright (c) OpenMMLab. All rights reserved.
"""oneDNN kernels for CPU inference of the deploy forms, and the fused
RIFormer deploy block built on them.

PyTorch ships oneDNN's fused linear and convolution kernels (the ones
``torch.compile`` emits on CPU) as private ``torch.ops.mkldnn`` operators.
Used eagerly they fuse the activation or the residual add into the GEMM and
take weights pre-packed into oneDNN's blocked layout, which saves a reorder
of every weight on every call. Results equal ``F.linear``/``F.conv2d`` up to
float rounding.

The fast path runs only in plain eager float32 CPU inference: never with
autograd or autocast, and never where the ops would be recorded instead of
run (a TorchScript trace or ONNX export, ``torch.compile``,
``torch.export``, fake tensors, a dispatch mode such as a FLOP counter);
there it computes the same function with the standard ops, which every
exporter and compiler knows.

Switch: the fast path is on unless the environment variable
``MMRIFORMER_ONEDNN`` is ``0`` (also ``false`` or ``off``) when it is first
needed, or :func:`set_onednn_enabled` turns it off. Before its first use
the ops are probed on tiny inputs; if they are missing or fail, or if one
raises later, a warning says so and the standard ops take over for the rest
of the process.
"""
import os
import threading
import warnings
from typing import Callable, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

from ..layers.norm import LayerNorm2d

ENV_VARIABLE = 'MMRIFORMER_ONEDNN'
_OFF_VALUES = ('0', 'false', 'off')
# None until first needed; then whether the fast path is on.
_enabled: Optional[bool] = None
_enabled_lock = threading.Lock()


def set_onednn_enabled(enabled: bool) -> None:
    """Turn the oneDNN fast path on or off for this process.

    Overrides ``MMRIFORMER_ONEDNN``. Turning it on probes the ops again and
    leaves it off (with a warning) if they fail.

    Args:
        enabled (bool): Whether plain eager CPU inference may use oneDNN.
    """
    global _enabled
    with _enabled_lock:
        _enabled = bool(enabled) and _probe()


def onednn_enabled() -> bool:
    """Whether the fast path is on: the switch, then the probe, both
    decided once (the first call) and cached."""
    global _enabled
    if _enabled is None:
        with _enabled_lock:
            if _enabled is None:
                wanted = os.environ.get(ENV_VARIABLE, '1').strip().lower()
                _enabled = wanted not in _OFF_VALUES and _probe()
    return _enabled


def _disable(reason: str) -> None:
    """Turn the fast path off for good, saying why."""
    global _enabled
    _enabled = False
    warnings.warn(
        f'oneDNN fast path of the RIFormer deploy form disabled: '
        f'{reason.rstrip(".")}. '
        f'The standard ops run instead (same results, slower on CPU).',
        RuntimeWarning, stacklevel=3)


def _probe() -> bool:
    """Run each fast op once on tiny inputs against the standard ops.

    Returns:
        bool: Whether all of them exist, run and agree.
    """
    if not torch.backends.mkldnn.is_available():
        return False
    # Normal tensors even when first needed under inference_mode (whose
    # tensors have no version counter), like a model's weights.
    with torch.inference_mode(False), torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(4, 8, generator=gen)
        weight, bias = torch.randn(8, 8, generator=gen), torch.zeros(8)
        image = torch.randn(1, 8, 3, 3, generator=gen)
        # skip_init and a generator of its own: the global RNG is left as
        # it was.
        conv = nn.utils.skip_init(nn.Conv2d, 8, 8, 3, padding=1)
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) / 9)
        conv.bias.zero_()
        try:
            fast = (_fast_linear_gelu(x, weight, bias, PackedWeight()),
                    _fast_linear_add(x, x, weight, bias, PackedWeight()),
                    _fast_conv2d(image, conv, PackedWeight()))
        except Exception as error:  # a missing op or a kernel error alike
            _disable(f'probe raised {type(error).__name__}: {error}')
            return False
        plain = (F.gelu(F.linear(x, weight, bias)),
                 x + F.linear(x, weight, bias), conv(image))
    if not all(torch.allclose(a, b, rtol=1e-4, atol=1e-4)
               for a, b in zip(fast, plain)):
        _disable('probe results differ from the standard ops')
        return False
    return True


def exporting() -> bool:
    """Whether the ops run now are recorded into an exported graph
    (``torch.export``, an ONNX export or a TorchScript trace)."""
    return (torch.compiler.is_exporting() or torch.jit.is_tracing()
            or torch.onnx.is_in_onnx_export())


def onednn_usable(x: Tensor) -> bool:
    """Whether the oneDNN inference kernels may run on ``x`` now.

    Only in plain eager float32 CPU inference: not under a compiler or an
    exporter (checked first, so that ``torch.compile`` folds this to False
    without tracing the rest), a TorchScript trace, a tensor subclass (fake
    or functional tensors) or a dispatch mode (``make_fx``, FLOP counters),
    which would record or miss the private ops; not with autograd, which
    they lack, nor under autocast, whose dtype they would ignore.

    Args:
        x (Tensor): The op's input.

    Returns:
        bool: Whether the fast path may run.
    """
    if torch.compiler.is_compiling() or exporting():
        return False
    return (type(x) is Tensor and x.device.type == 'cpu'
            and x.dtype == torch.float32 and not torch.is_grad_enabled()
            and not torch.is_autocast_enabled('cpu')
            and not is_in_torch_dispatch_mode() and onednn_enabled())


def _fast_or_plain(x: Tensor, fast: Callable[[], Tensor],
                   plain: Callable[[], Tensor]) -> Tensor:
    """``fast()`` where :func:`onednn_usable` allows it on the input ``x``,
    else ``plain()``; ``plain()`` for good if the oneDNN op raises.

    An error that ``plain()`` raises too (a bad input) propagates and
    leaves the fast path on.
    """
    if not onednn_usable(x):
        return plain()
    try:
        return fast()
    except RuntimeError as error:
        out = plain()
        _disable(f'{type(error).__name__}: {error}')
        return out


class PackedWeight:
    """A oneDNN-packed copy of a weight, rebuilt when the weight changes.

    The key holds the weight's storage and version counter, so an optimizer
    step, ``load_state_dict`` or ``.to()`` invalidates the copy. Key and
    copy live in one attribute, replaced at once, so threads sharing the
    module never pair a key with another key's copy (two may pack the same
    weight, once each). It is never saved, copied or pickled: a copy of the
    module starts empty.
    """

    def __init__(self) -> None:
        self.entry: Optional[Tuple[tuple, Tensor]] = None

    def get(self, weight: Tensor, extra_key: Sequence,
            pack: Callable[[], Tensor]) -> Tensor:
        """Return the packed weight, packing it if ``weight`` changed.

        Args:
            weight (Tensor): The module's weight.
            extra_key (Sequence): What else the packing depends on.
            pack (Callable[[], Tensor]): Packs ``weight``.

        Returns:
            Tensor: The packed weight.
        """
        key = (weight.data_ptr(), weight._version, *extra_key)
        entry = self.entry
        if entry is None or entry[0] != key:
            entry = (key, pack())
            self.entry = entry
        return entry[1]

    def __deepcopy__(self, memo) -> 'PackedWeight':
        return PackedWeight()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()


def _packed_linear_weight(x: Tensor, weight: Tensor,
                          cache: PackedWeight) -> Tensor:
    """``weight`` packed for oneDNN's linear kernels, from ``cache``."""
    return cache.get(
        weight, (), lambda: torch.ops.mkldnn._reorder_linear_weight(
            weight, x.shape[0]))


def _fast_linear_gelu(x: Tensor, weight: Tensor, bias: Tensor,
                      cache: PackedWeight) -> Tensor:
    packed = _packed_linear_weight(x, weight, cache)
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, 'gelu', [],
                                              'none')


def _fast_linear_add(x: Tensor, residual: Tensor, weight: Tensor,
                     bias: Tensor, cache: PackedWeight) -> Tensor:
    packed = _packed_linear_weight(x, weight, cache)
    return torch.ops.mkldnn._linear_pointwise.binary(x, residual, packed,
                                                     bias, 'add')


def _fast_conv2d(x: Tensor, conv: nn.Conv2d, cache: PackedWeight) -> Tensor:
    args = (list(conv.padding), list(conv.stride), list(conv.dilation), 1)
    packed = cache.get(
        conv.weight, tuple(x.shape),
        lambda: torch.ops.mkldnn._reorder_convolution_weight(
            conv.weight, *args, list(x.shape)))
    return torch.ops.mkldnn._convolution_pointwise(x, packed, conv.bias,
                                                   *args, 'none', [], '')


def linear_gelu(x: Tensor, weight: Tensor, bias: Tensor,
                cache: PackedWeight) -> Tensor:
    """``gelu(x @ weight.T + bias)``.

    Args:
        x (Tensor): Input of shape (M, K).
        weight (Tensor): Weight of shape (N, K).
        bias (Tensor): Bias of shape (N, ).
        cache (PackedWeight): Packed copy of ``weight``.

    Returns:
        Tensor: Output of shape (M, N).
    """
    def plain() -> Tensor:
        return F.gelu(F.linear(x, weight, bias))

    return _fast_or_plain(
        x, lambda: _fast_linear_gelu(x, weight, bias, cache), plain)


def linear_add(x: Tensor, residual: Tensor, weight: Tensor, bias: Tensor,
               cache: PackedWeight) -> Tensor:
    """``residual + x @ weight.T + bias``.

    Args:
        x (Tensor): Input of shape (M, K).
        residual (Tensor): Added term of shape (M, N).
        weight (Tensor): Weight of shape (N, K).
        bias (Tensor): Bias of shape (N, ).
        cache (PackedWeight): Packed copy of ``weight``.

    Returns:
        Tensor: Output of shape (M, N), as ``residual``.
    """
    def plain() -> Tensor:
        # Not addmm(residual, ...): an exported Gemm then keeps a constant
        # bias, which onnxruntime's quantiser needs.
        return residual + F.linear(x, weight, bias)

    return _fast_or_plain(
        x, lambda: _fast_linear_add(x, residual, weight, bias, cache), plain)


def conv2d(x: Tensor, conv: nn.Conv2d, cache: PackedWeight) -> Tensor:
    """``conv(x)`` with a packed weight, for a plain (groups=1) conv.

    Args:
        x (Tensor): Input of shape (N, C_in, H, W).
        conv (nn.Conv2d): The convolution.
        cache (PackedWeight): Packed copy of ``conv.weight``.

    Returns:
        Tensor: ``conv(x)``, of shape (N, C_out, H_out, W_out).
    """
    if conv.groups != 1 or isinstance(conv.padding, str):
        return conv(x)
    return _fast_or_plain(x, lambda: _fast_conv2d(x, conv, cache),
                          lambda: conv(x))


def fused_norm_kind(norm: nn.Module, act: nn.Module) -> Optional[str]:
    """Which fused deploy path a RIFormer block can take, if any.

    Args:
        norm (nn.Module): The block's deploy norm (``norm_reparam``).
        act (nn.Module): The MLP's activation.

    Returns:
        str | None: ``'gn'`` for GroupNorm with one group, ``'ln'`` for LN2d,
        None otherwise. The fused path computes the exact GELU, so other
        activations take None too.
    """
    if not isinstance(act, nn.GELU) or act.approximate != 'none':
        return None
    if isinstance(norm, nn.GroupNorm) and norm.num_groups == 1:
        return 'gn'
    if isinstance(norm, LayerNorm2d):
        return 'ln'
    return None


def riformer_block_fused(x: Tensor, kind: str, norm_reparam: nn.Module,
                         norm2: nn.Module, fc1: nn.Conv2d, fc2: nn.Conv2d,
                         packed_fc1: PackedWeight,
                         packed_fc2: PackedWeight) -> Tensor:
    """A deploy-form RIFormer block on channels-last memory.

    Computes ``y = x + norm_reparam(x)``, then
    ``y + fc2(gelu(fc1(norm2(y))))``.
    The norms run as native kernels on the channels-last (N, C, H, W) view;
    the 1x1 convolutions run as GEMMs on the (N * H * W, C) token view of the
    same memory, so no layout conversion happens. Without autograd on CPU,
    oneDNN fuses GELU into fc1 and the residual add into fc2, with
    pre-packed weights.

    Args:
        x (Tensor): Input of shape (N, C, H, W).
        kind (str): ``'gn'`` or ``'ln'``, from :func:`fused_norm_kind`.
        norm_reparam (nn.Module): The folded first norm (with affine).
        norm2 (nn.Module): The affine-free second norm.
        fc1 (nn.Conv2d): The MLP's first 1x1 conv, C -> hidden.
        fc2 (nn.Conv2d): The MLP's second 1x1 conv, hidden -> C.
        packed_fc1 (PackedWeight): Packed-weight cache of ``fc1``.
        packed_fc2 (PackedWeight): Packed-weight cache of ``fc2``.

    Returns:
        Tensor: Output of shape (N, C, H, W), channels-last.
    """
    x = x.contiguous(memory_format=torch.channels_last)
    n, c, h, w = x.shape
    if kind == 'gn':
        y = x + F.group_norm(x, 1, norm_reparam.weight, norm_reparam.bias,
                             norm_reparam.eps)
        z = F.group_norm(y, 1, None, None, norm2.eps)
    else:
        tokens = x.permute(0, 2, 3, 1)
        y = tokens + F.layer_norm(tokens, (c, ), norm_reparam.weight,
                                  norm_reparam.bias, norm_reparam.eps)
        z = F.layer_norm(y, (c, ), None, None, norm2.eps)
        y, z = y.permute(0, 3, 1, 2), z.permute(0, 3, 1, 2)
    y = y.permute(0, 2, 3, 1).reshape(-1, c)
    z = z.permute(0, 2, 3, 1).reshape(-1, c)
    hidden = linear_gelu(z, fc1.weight.view(fc1.out_channels, c), fc1.bias,
                         packed_fc1)
    out = linear_add(hidden, y, fc2.weight.view(c, fc2.in_channels),
                     fc2.bias, packed_fc2)
    return out.view(n, h, w, c).permute(0, 3, 1, 2)
