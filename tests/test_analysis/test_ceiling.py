# Copyright (c) OpenMMLab. All rights reserved.
import math

import numpy as np
import openvino
import pytest
import torch
from mmengine.analysis import FlopAnalyzer
from torch import nn

from mmriformer.analysis import conv_stack, format_ceiling, openvino_ceiling


def test_conv_stack_computes_and_counts_its_convolutions():
    """The IR equals a torch chain of its own weights, and its MACs are
    mmengine's count of that chain."""
    ir, macs = conv_stack(channels=8, side=12, layers=3, seed=1)
    weights = [
        torch.from_numpy(op.get_data().copy()).double()
        for op in ir.get_ordered_ops() if op.get_type_name() == 'Constant'
    ]
    assert [w.shape for w in weights] == [(8, 8, 3, 3)] * 3
    chain = nn.Sequential(*(nn.Conv2d(8, 8, 3, padding=1, bias=False)
                            for _ in weights)).double()
    for conv, weight in zip(chain, weights):
        conv.weight.data = weight
    image = np.random.default_rng(0).standard_normal(
        (1, 8, 12, 12)).astype(np.float32)
    compiled = openvino.Core().compile_model(
        ir, 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})
    got = torch.from_numpy(compiled([image])[0]).double()
    want = chain(torch.from_numpy(image).double())
    # Variance-preserving weights keep the outputs near unit scale; each
    # is a sum of 72 float32 products, three layers deep.
    assert want.std().item() == pytest.approx(1, abs=0.5)
    assert torch.allclose(got, want, rtol=0, atol=1e-4)
    assert macs == FlopAnalyzer(
        chain,
        (torch.from_numpy(image).double(), )).total() == 3 * 12 * 12 * 8 * 72


@pytest.mark.parametrize('precision', ['f32', 'int8'])
def test_openvino_ceiling_runs_in_each_precision(precision):
    rate = openvino_ceiling(precision, num_threads=1, warmup=0, repeats=1)
    assert math.isfinite(rate) and rate > 0


def row(backend, median_ms, batch_size=1, **extra):
    return dict(model='m',
                backend=backend,
                batch_size=batch_size,
                size=64,
                median_ms=median_ms,
                **extra)


def test_format_ceiling_shares_and_floors():
    rows = [
        # 2 images of 2 GMACs in 40 ms: 100 GMAC/s, half of 200.
        row('openvino-f32', 40., batch_size=2, macs=2e9),
        row('openvino-int8', 10., macs=2e9),  # no int8 ceiling given
        row('onnxruntime', 10., macs=2e9),  # not OpenVINO
        row('openvino-bf16', 10.),  # no MACs
    ]
    lines = format_ceiling(rows, {'f32': 200e9, 'bf16': 400e9}).splitlines()
    assert lines[0].split() == [
        'model', 'backend', 'batch', 'size', 'GMACs', 'median', 'ms', 'GMAC/s',
        'ceiling', 'GMAC/s', 'of', 'ceiling', 'floor', 'ms'
    ]
    assert [line.split() for line in lines[1:]] == [[
        'm', 'openvino-f32', '2', '64', '2.00', '40.0', '100.0', '200.0',
        '50%', '20.0'
    ]]
