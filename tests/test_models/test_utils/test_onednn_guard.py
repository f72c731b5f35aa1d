# Copyright (c) OpenMMLab. All rights reserved.
"""The oneDNN fast path runs in plain eager CPU inference only, can be
switched off, falls back when its ops fail and is safe across threads."""
import copy
import sys
import threading
import time
import warnings

import onnxruntime
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from mmriformer.models import RIFormer
from mmriformer.models.utils import onednn
from mmriformer.testing import assert_float32_error_within, randomize_

STAGES = (2, 4, 6)
# The private ops the fast path calls; the overloads hang off the packets.
FAST_OPS = ('_linear_pointwise', '_convolution_pointwise')


class OpSpy:
    """Counts the calls of a ``torch.ops.mkldnn`` op and its overloads,
    which it runs unchanged (or replaces by ``raise_`` when given)."""

    def __init__(self, op, counter: list, raise_=None) -> None:
        self.op, self.counter, self.raise_ = op, counter, raise_

    def __call__(self, *args, **kwargs):
        self.counter.append(self.op)
        if self.raise_ is not None:
            raise self.raise_
        return self.op(*args, **kwargs)

    def __getattr__(self, name: str):
        # Overloads (``.binary``) are ops too; exporters also list them
        # through methods such as ``op_overloads()``, which are not calls.
        attr = getattr(self.op, name)
        if isinstance(attr, torch._ops.OpOverload):
            return OpSpy(attr, self.counter, self.raise_)
        return attr


@pytest.fixture(autouse=True)
def undecided(monkeypatch):
    """Each test decides the switch afresh; the module's state is restored
    afterwards."""
    monkeypatch.setattr(onednn, '_enabled', None)
    monkeypatch.delenv(onednn.ENV_VARIABLE, raising=False)


@pytest.fixture
def fast_calls(monkeypatch):
    """The list of fast-op calls made while the test runs (the probe's
    included: clear it after the first use)."""
    calls = []
    for name in FAST_OPS:
        op = getattr(torch.ops.mkldnn, name)
        monkeypatch.setattr(torch.ops.mkldnn, name, OpSpy(op, calls))
    return calls


def failing_ops(monkeypatch) -> None:
    for name in FAST_OPS:
        op = getattr(torch.ops.mkldnn, name)
        monkeypatch.setattr(
            torch.ops.mkldnn, name,
            OpSpy(op, [], raise_=RuntimeError('simulated kernel error')))


@pytest.fixture(scope='module')
def backbone():
    model = randomize_(RIFormer(arch='s12', out_indices=STAGES), seed=1)
    model.switch_to_deploy()
    return model.eval()


@pytest.fixture(scope='module')
def image():
    return torch.randn(1, 3, 96, 64,
                       generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope='module')
def reference(backbone, image):
    """Float64 outputs of the deploy backbone (standard ops only)."""
    with torch.no_grad():
        return copy.deepcopy(backbone).double()(image.double())


def infer(model, x):
    with torch.no_grad():
        return model(x)


def test_fast_path_runs_and_equals_standard_ops(backbone, image, reference,
                                                fast_calls):
    assert onednn.onednn_enabled() and len(fast_calls) == 3  # the probe
    fast_calls.clear()
    fast = infer(backbone, image)
    # Two GEMMs per block (12 blocks in s12) and one per patch embed (4).
    num_fast = len(fast_calls)
    assert num_fast == 2 * 12 + 4
    onednn.set_onednn_enabled(False)
    plain = infer(backbone, image)
    assert len(fast_calls) == num_fast
    assert_float32_error_within(reference, fast, plain)
    onednn.set_onednn_enabled(True)  # probes again
    fast_calls.clear()
    infer(backbone, image)
    assert len(fast_calls) == num_fast


def test_first_use_under_inference_mode(backbone, image, reference,
                                        fast_calls):
    """inference_mode's tensors have no version counter; the probe and the
    packed weights' keys must not need one."""
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with torch.inference_mode():
            fast = backbone(image)
    assert len(fast_calls) == 3 + 2 * 12 + 4  # the probe, then the model
    onednn.set_onednn_enabled(False)
    assert_float32_error_within(reference, fast, infer(backbone, image))


@pytest.mark.parametrize('value', ['0', 'off', 'False'])
def test_environment_variable_turns_it_off(backbone, image, fast_calls,
                                           monkeypatch, value):
    monkeypatch.setenv(onednn.ENV_VARIABLE, value)
    infer(backbone, image)
    assert not fast_calls and not onednn.onednn_enabled()
    onednn.set_onednn_enabled(True)  # the function overrides it
    infer(backbone, image)
    assert fast_calls


def test_not_used_where_ops_are_recorded_or_grad_is_needed():
    x = torch.randn(4, 8)
    with torch.no_grad():
        assert onednn.onednn_usable(x)
        assert not onednn.onednn_usable(x.double())
        assert not onednn.onednn_usable(torch.empty(4, 8, device='meta'))
        with FakeTensorMode() as mode:
            assert not onednn.onednn_usable(mode.from_tensor(x))
        with torch.autocast('cpu', dtype=torch.bfloat16):
            assert not onednn.onednn_usable(x)
        seen = []
        torch.jit.trace(lambda t: seen.append(onednn.onednn_usable(t)) or t,
                        x, check_trace=False)
        assert seen == [False]
    assert not onednn.onednn_usable(x)  # grad enabled


def test_onnx_export_and_onnxruntime_with_fast_path_on(
        backbone, image, reference, fast_calls, tmp_path):
    """Exported under no_grad (where the fast path would run eagerly):
    the graph holds standard ONNX ops only and runs in onnxruntime."""
    assert onednn.onednn_enabled()
    fast_calls.clear()
    path = tmp_path / 'backbone.onnx'
    with torch.no_grad():
        program = torch.onnx.export(backbone, (image, ), dynamo=True)
    program.save(str(path))
    assert not fast_calls
    domains = {node.domain for node in program.model_proto.graph.node}
    assert domains <= {'', 'ai.onnx'}, domains
    session = onnxruntime.InferenceSession(
        str(path), providers=['CPUExecutionProvider'])
    outs = session.run(None, {session.get_inputs()[0].name: image.numpy()})
    fast = infer(backbone, image)
    assert fast_calls
    assert_float32_error_within(reference, [torch.from_numpy(o)
                                            for o in outs], fast)


def test_torch_compile_fullgraph_with_fast_path_on(backbone, image,
                                                   reference, fast_calls):
    assert onednn.onednn_enabled()
    fast_calls.clear()
    torch._dynamo.reset()
    compiled = torch.compile(backbone, backend='aot_eager', fullgraph=True)
    outs = infer(compiled, image)
    assert not fast_calls
    fast = infer(backbone, image)
    assert fast_calls
    assert_float32_error_within(reference, outs, fast)


def test_failing_probe_turns_it_off_with_a_warning(backbone, image,
                                                   reference, monkeypatch):
    failing_ops(monkeypatch)
    with pytest.warns(RuntimeWarning, match='probe raised RuntimeError: '
                      'simulated kernel error'):
        outs = infer(backbone, image)
    assert not onednn.onednn_enabled()
    with torch.no_grad():
        plain = backbone(image)
    assert_float32_error_within(reference, outs, plain)


def test_op_failing_later_falls_back_once(backbone, image, reference,
                                          monkeypatch):
    fast = infer(backbone, image)  # probed and used
    failing_ops(monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        outs = infer(backbone, image)
        again = infer(backbone, image)
    messages = [str(w.message) for w in caught
                if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and 'simulated kernel error' in messages[0]
    assert not onednn.onednn_enabled()
    assert_float32_error_within(reference, outs, fast)
    assert all(torch.equal(a, b) for a, b in zip(outs, again))


def test_bad_input_raises_and_keeps_fast_path():
    x, weight, bias = torch.randn(4, 8), torch.randn(8, 5), torch.zeros(8)
    with torch.no_grad(), pytest.raises(RuntimeError):
        onednn.linear_gelu(x, weight, bias, onednn.PackedWeight())
    assert onednn.onednn_enabled()


def test_packed_weight_never_pairs_a_key_with_another_copy():
    """Threads asking for different keys get their own packed copy while
    others pack (which releases the GIL) and threads switch often. (Under
    CPython's GIL the stores cannot interleave anyway; the single entry
    keeps this true where they can, e.g. in free-threaded builds.)"""
    cache, weight, errors = onednn.PackedWeight(), torch.zeros(1), []

    def pack(shape):
        time.sleep(1e-4)
        return torch.full((1, ), float(shape))

    def worker(shape):
        for _ in range(200):
            got = cache.get(weight, (shape, ), lambda: pack(shape))
            if got.item() != shape:
                errors.append((shape, got.item()))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker, args=(s, ))
                   for s in (1, 2, 3, 4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors


def test_threads_sharing_a_model_get_correct_outputs(backbone):
    """Two input shapes in four threads, so the patch embeds' packed
    weights (keyed by the input shape) keep being replaced."""
    gen = torch.Generator().manual_seed(3)
    images = [torch.randn(1, 3, 64, 64, generator=gen),
              torch.randn(1, 3, 96, 32, generator=gen)]
    model = copy.deepcopy(backbone)
    references = [infer(copy.deepcopy(model).double(), x.double())
                  for x in images]
    onednn.set_onednn_enabled(False)
    plains = [infer(model, x) for x in images]
    onednn.set_onednn_enabled(True)
    results = [[] for _ in range(4)]

    def worker(i):
        for _ in range(3):
            results[i].append(infer(model, images[i % 2]))

    threads = [threading.Thread(target=worker, args=(i, ))
               for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, outs in enumerate(results):
        assert len(outs) == 3
        for out in outs:
            assert_float32_error_within(references[i % 2], out,
                                        plains[i % 2])
