# Copyright (c) OpenMMLab. All rights reserved.
"""What the CPU allows: OpenVINO's multiply-adds per second on dense 3x3
convolutions, the work it runs best, and each OpenVINO backend's share.

A detector doing ``M`` MACs per image cannot run faster than ``M`` over the
ceiling of its precision, however its graph is written. That floor tells
what faster kernels could still win from what only fewer MACs can. On 2
cores of an AMD EPYC (Zen 4) the stack below reached 110 GMAC/s in f32 and
220 in bf16: more than 1x1 convolutions (104, 201) and 2048-square matrix
products (94, 214) in the same run.
"""
import statistics
from typing import Dict, List, Tuple

import numpy as np
import torch

from ..deployment.openvino_detector import compile_on_cpu, import_optional
from .benchmark import OPENVINO_BACKENDS, align_columns
from .timing import time_runners

# The stack: convolutions of 256 channels on an 80 x 80 map, the size of
# the RT-DETR neck's stride-8 level at 640.
CHANNELS = 256
SIDE = 80
LAYERS = 4


def conv_stack(channels: int = CHANNELS,
               side: int = SIDE,
               layers: int = LAYERS,
               seed: int = 0) -> Tuple[object, int]:
    """A float IR of ``layers`` chained 3x3 convolutions, padded to keep
    the size, with variance-preserving random weights.

    Args:
        channels (int): Input and output channels of each convolution.
        side (int): Height and width of the input.
        layers (int): Convolutions in the chain.
        seed (int): Seed of the weights.

    Returns:
        tuple[openvino.Model, int]: The IR, input (1, channels, side, side),
        and its MACs.
    """
    ov = import_optional('openvino')
    ops = import_optional('openvino.opset13')
    rng = np.random.default_rng(seed)
    image = ops.parameter([1, channels, side, side], np.float32, name='x')
    features = image
    fan_in = channels * 3 * 3
    for _ in range(layers):
        weight = rng.standard_normal(
            (channels, channels, 3, 3)) / np.sqrt(fan_in)
        features = ops.convolution(features,
                                   ops.constant(weight.astype(np.float32)),
                                   [1, 1], [1, 1], [1, 1], [1, 1])
    macs = layers * side * side * channels * fan_in
    return ov.Model([features], [image]), macs


def openvino_ceiling(precision: str,
                     num_threads: int,
                     warmup: int = 3,
                     repeats: int = 10) -> float:
    """MACs per second of OpenVINO on :func:`conv_stack`.

    Args:
        precision (str): ``'f32'``, ``'bf16'`` or ``'int8'`` (the stack
            quantised by NNCF, calibrated on its random input).
        num_threads (int): Threads of the computation.
        warmup (int): Untimed calls. Defaults to 3.
        repeats (int): Timed calls; the median counts. Defaults to 10.

    Returns:
        float: MACs per second.

    Raises:
        ValueError: The CPU cannot compute in ``precision``.
    """
    model, macs = conv_stack()
    shape = tuple(model.inputs[0].get_shape())
    image = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    if precision == 'int8':
        nncf = import_optional('nncf')
        model = nncf.quantize(model, nncf.Dataset([image]), subset_size=1)
    request = compile_on_cpu(model, precision, num_threads,
                             'the convolution stack').create_infer_request()
    # The runner ignores time_runners' images: the stack has its own input.
    times = time_runners({precision: lambda _: request.infer([image])},
                         torch.empty(0), warmup, repeats)[precision]
    return macs / statistics.median(times)


def format_ceiling(rows: List[dict], ceilings: Dict[str, float]) -> str:
    """A table of the OpenVINO rows' MACs per second against the ceiling
    of their precision, and the time the ceiling allows (the floor).

    Args:
        rows (list[dict]): Rows of :func:`benchmark_config` with ``macs``
            (per image); the others are left out.
        ceilings (dict[str, float]): MACs per second of each precision
            (:func:`openvino_ceiling`).

    Returns:
        str: The table, one line per row under a header.
    """
    head = ('model', 'backend', 'batch', 'size', 'GMACs', 'median ms',
            'GMAC/s', 'ceiling GMAC/s', 'of ceiling', 'floor ms')
    lines = []
    for r in rows:
        ceiling = ceilings.get(OPENVINO_BACKENDS.get(r['backend']))
        if ceiling is None or 'macs' not in r:
            continue
        macs = r['macs'] * r['batch_size']
        rate = macs / (r['median_ms'] / 1e3)
        lines.append(
            (r['model'], r['backend'], str(r['batch_size']), str(r['size']),
             f'{r["macs"] / 1e9:.2f}', f'{r["median_ms"]:.1f}',
             f'{rate / 1e9:.1f}', f'{ceiling / 1e9:.1f}',
             f'{rate / ceiling:.0%}', f'{macs / ceiling * 1e3:.1f}'))
    return align_columns(head, lines)
