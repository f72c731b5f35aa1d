# Copyright (c) OpenMMLab. All rights reserved.
import json
import sys
from pathlib import Path

import openvino
import pytest
import torch

from mmriformer.analysis import benchmark
from mmriformer.analysis import (BACKENDS, OPENVINO_BACKENDS, ROW_KEYS,
                                 BackendMismatch, analyze, backend_missing,
                                 benchmark_config, build_forms,
                                 check_backends_agree, check_benchmark_paths,
                                 check_device, format_table, load_peer_rows,
                                 resolve_backends, torch_runner)

ROOT = Path(__file__).parents[2]
CONFIG = str(ROOT / 'configs/demo/rtdetr_riformer_s12_shapes.py')
# The demo model needs more encoder tokens (144 at 96 px) than queries (100).
SIZE = 96
# Every backend but openvino-bf16 on a CPU without bf16 instructions.
RUNNABLE = [b for b in BACKENDS if not backend_missing(b, 'cpu', 'fp32')]


def test_every_backend_batch_and_size_in_rows_and_table(monkeypatch,
                                                        tmp_path):
    """The float32 exports (onnxruntime, openvino-f32) are held to the
    agreement check, and pass it; onnxruntime-int8, openvino-bf16 and
    openvino-int8 are not."""
    checked = []

    def check(outputs, image_size):
        checked.append(list(outputs))
        check_backends_agree(outputs, image_size)

    monkeypatch.setattr(benchmark, 'check_backends_agree', check)
    rows = benchmark_config(CONFIG, RUNNABLE, sizes=[SIZE],
                            batch_sizes=[1, 2], warmup=0, repeats=2,
                            with_macs=True)
    assert checked == [['pytorch-train', 'pytorch-deploy', 'onnxruntime',
                        'openvino-f32']] * 2
    assert [(r['backend'], r['batch_size'], r['size']) for r in rows] == [
        (backend, batch, SIZE) for batch in (1, 2) for backend in RUNNABLE
    ]
    for row in rows:
        assert set(ROW_KEYS) <= set(row)
        assert len(row['times_ms']) == 2
        assert row['p90_ms'] >= row['median_ms'] > 0
        assert row['images_per_s'] == pytest.approx(
            row['batch_size'] * 1e3 / row['median_ms'])
        assert row['environment']['threads'] == torch.get_num_threads()
        assert openvino.__version__.startswith(row['environment']['openvino'])
    # The MACs of the form each backend runs, counted on a model of its own.
    deploy_macs = analyze(CONFIG, SIZE, deploy=True)['macs']['deploy']['macs']
    assert {r['backend']: r.get('macs') for r in rows} == {
        b: deploy_macs if BACKENDS[b] == 'deploy' else None for b in RUNNABLE}
    peer = dict(model='peer', backend='pytorch', device='cpu', dtype='fp32',
                batch_size=2, size=96, median_ms=1e4, p90_ms=1e4,
                images_per_s=2e-4)
    (tmp_path / 'peer.json').write_text(json.dumps([peer]))
    table = format_table(rows + load_peer_rows(str(tmp_path / 'peer.json')))
    assert 'peer [peer]' in table and 'images/s' in table
    # Speed-ups only against the peer's device, dtype, batch and size.
    speedups = [line.split()[-1] for line in table.splitlines()
                if line.endswith('x')]
    assert len(speedups) == len(RUNNABLE)
    # An existing file, even an earlier result, is replaced only with force.
    (tmp_path / 'bench.json').write_text(json.dumps(rows))
    with pytest.raises(ValueError, match='exists and is not replaced'):
        check_benchmark_paths([CONFIG], [], str(tmp_path / 'bench.json'))
    check_benchmark_paths([CONFIG], [], str(tmp_path / 'bench.json'),
                          force=True)


def test_table_compares_an_engine_with_the_peer_in_that_engine(tmp_path):
    def row(model, backend, dtype, median_ms, size=640):
        return dict(model=model, backend=backend, device='cpu', dtype=dtype,
                    batch_size=1, size=size, median_ms=median_ms,
                    p90_ms=median_ms, images_per_s=1e3 / median_ms)

    # As hf_rtdetr_benchmark.py writes them: OpenVINO's precision is in the
    # backend's name, its dtype (PyTorch's autocast) fp32.
    (tmp_path / 'peer.json').write_text(json.dumps([
        row('hf', 'pytorch', 'fp32', 500.),
        row('hf', 'pytorch', 'bf16', 300.),
        row('hf', 'openvino-f32', 'fp32', 400.),
        row('hf', 'openvino-bf16', 'fp32', 200.),
    ]))
    ours = [
        row('ours', 'pytorch-deploy', 'fp32', 250.),
        row('ours', 'pytorch-deploy', 'bf16', 150.),
        row('ours', 'openvino-f32', 'fp32', 200.),
        row('ours', 'openvino-bf16', 'fp32', 100.),
        row('ours', 'openvino-f32', 'fp32', 50., size=320),
    ]
    head, *lines = format_table(
        ours + load_peer_rows(str(tmp_path / 'peer.json'))).splitlines()
    same = head.index('vs peer same backend')
    # Each row of ours: (vs the peer's eager row, vs its row of our backend).
    cells = [(line[:same].split()[-1], line[same:].strip())
             for line in lines[:len(ours)]]
    assert cells == [
        ('2.00x', ''),  # eager fp32 HF, 500 ms
        ('2.00x', ''),  # eager bf16 HF, 300 ms
        ('2.50x', '2.00x'),  # and HF in OpenVINO f32, 400 ms
        ('5.00x', '2.00x'),  # and HF in OpenVINO bf16, 200 ms
        ('20.00', ''),  # no peer at 320: its images/s, no speed-up
    ]
    assert not any(line.endswith('x') for line in lines[len(ours):])


def test_missing_inputs_and_peer_files_of_another_schema(tmp_path):
    with pytest.raises(ValueError, match='nope.py does not exist; check'):
        check_benchmark_paths([str(tmp_path / 'nope.py')], [], None)
    (tmp_path / 'old.json').write_text(json.dumps([dict(model='peer')]))
    with pytest.raises(ValueError, match='expected a JSON list of rows with '
                       'model, backend, device'):
        load_peer_rows(str(tmp_path / 'old.json'))


def test_backends_that_disagree_are_an_error():
    models = build_forms(CONFIG, ['train', 'deploy'])
    images = torch.rand(1, 3, SIZE, SIZE)
    runners = {f'pytorch-{form}': torch_runner(model, 'cpu', 'fp32')
               for form, model in models.items()}
    outputs = {name: run(images) for name, run in runners.items()}
    check_backends_agree(outputs, (SIZE, SIZE))
    with torch.no_grad():  # a fold that went wrong in one block
        models['deploy'].backbone.network[2][0].mlp.fc2.bias += 0.5
    outputs['pytorch-deploy'] = runners['pytorch-deploy'](images)
    with pytest.raises(BackendMismatch,
                       match='pytorch-deploy does not predict what '
                       'pytorch-train predicts on image 0: '):
        check_backends_agree(outputs, (SIZE, SIZE))


@pytest.mark.parametrize('device, cuda_graphs, message', [
    ('cuda', False, 'CUDA is not available here'),
    ('cpu', True, '--cuda-graphs needs --device cuda'),
])
def test_devices_this_machine_cannot_run(monkeypatch, device, cuda_graphs,
                                         message):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(ValueError, match=message):
        check_device(device, cuda_graphs)


@pytest.mark.parametrize('backend, dtype', [('onnxruntime', 'bf16'),
                                            ('onnxruntime-int8', 'fp16')])
def test_onnxruntime_in_half_precision_is_an_error(backend, dtype):
    with pytest.raises(ValueError, match=f'--backends {backend} cannot run: '
                       f'the ONNX export is float32'):
        resolve_backends([backend], 'cpu', dtype)


def test_default_backends():
    assert resolve_backends(None, 'cpu', 'bf16') == (
        ['pytorch-train', 'pytorch-deploy'],
        'onnxruntime left out: the ONNX export is float32.')
    assert resolve_backends(None, 'cpu', 'fp32') == (
        ['pytorch-train', 'pytorch-deploy', 'onnxruntime'], None)
    assert resolve_backends(['onnxruntime', 'pytorch-deploy', 'onnxruntime'],
                            'cpu', 'fp32') == (
                                ['onnxruntime', 'pytorch-deploy'], None)


@pytest.mark.parametrize('backend, device, dtype, message', [
    ('openvino-f32', 'cuda', 'fp32',
     'OpenVINO runs on the CPU only; use --device cpu'),
    ('openvino-bf16', 'cpu', 'bf16', 'an OpenVINO backend computes in the '
     r"precision of its name \(--dtype is PyTorch's autocast\); use --dtype "
     'fp32'),
])
def test_openvino_on_cuda_or_under_autocast_is_an_error(
        backend, device, dtype, message):
    with pytest.raises(ValueError,
                       match=f'--backends {backend} cannot run: {message}'):
        resolve_backends([backend], device, dtype)


def test_unknown_backend_is_an_error():
    with pytest.raises(ValueError, match='--backends openvino-fp16 is not a '
                       'backend; give some of pytorch-train, '):
        resolve_backends(['openvino-fp16'], 'cpu', 'fp32')


def test_openvino_missing_or_a_cpu_without_bf16(monkeypatch):
    """Each backend runs only where its runtime and its precision are;
    openvino-int8 also needs NNCF."""
    class CoreWithoutBF16:

        def get_property(self, device, name):
            return ['FP32', 'INT8']

    monkeypatch.setattr(openvino, 'Core', CoreWithoutBF16)
    assert resolve_backends(['openvino-f32'], 'cpu', 'fp32') == (
        ['openvino-f32'], None)
    with pytest.raises(ValueError, match='--backends openvino-bf16 cannot '
                       r'run: this CPU cannot compute in bf16 \(it has '
                       r'neither AVX512-BF16 nor AMX\); leave openvino-bf16 '
                       'out.'):
        resolve_backends(['openvino-bf16'], 'cpu', 'fp32')
    monkeypatch.setitem(sys.modules, 'nncf', None)  # import fails
    assert resolve_backends(['openvino-f32'], 'cpu', 'fp32') == (
        ['openvino-f32'], None)
    with pytest.raises(ValueError, match='--backends openvino-int8 cannot '
                       'run: nncf is not installed; install the optional '
                       'requirements'):
        resolve_backends(['openvino-int8'], 'cpu', 'fp32')
    monkeypatch.setitem(sys.modules, 'openvino', None)
    with pytest.raises(ValueError, match='--backends openvino-f32 cannot '
                       'run: openvino is not installed; install the optional '
                       'requirements'):
        resolve_backends(['openvino-f32'], 'cpu', 'fp32')
