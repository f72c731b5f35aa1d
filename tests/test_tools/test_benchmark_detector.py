# Copyright (c) OpenMMLab. All rights reserved.
import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parents[2]
TOOL = ROOT / 'tools/analysis_tools/benchmark_detector.py'
CONFIG = str(ROOT / 'configs/demo/rtdetr_riformer_s12_shapes.py')
# The demo model needs more encoder tokens (144 at 96 px) than queries (100).
SIZE = 96


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('benchmark_detector',
                                                  TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_form_batch_and_size_in_json_and_table(tool, tmp_path, capsys):
    out = tmp_path / 'bench.json'
    peer = dict(model='peer', form='eager', device='cpu', dtype='fp32',
                batch_size=2, size=96, median_ms=1e4, p90_ms=1e4,
                images_per_s=2e-4)
    (tmp_path / 'peer.json').write_text(json.dumps([peer]))
    tool.main([
        CONFIG, '--sizes', str(SIZE), '--batch-sizes', '1', '2',
        '--warmup', '0', '--repeats', '2', '--out', str(out),
        '--peer-json', str(tmp_path / 'peer.json'), '--forms', *tool.FORMS
    ])
    rows = json.loads(out.read_text())
    assert [(r['form'], r['batch_size'], r['size']) for r in rows] == [
        (form, batch, SIZE) for batch in (1, 2) for form in tool.FORMS
    ]
    for row in rows:
        assert set(tool.ROW_KEYS) <= set(row)
        assert len(row['times_ms']) == 2
        assert row['p90_ms'] >= row['median_ms'] > 0
        assert row['images_per_s'] == pytest.approx(
            row['batch_size'] * 1e3 / row['median_ms'])
        assert row['environment']['threads'] == torch.get_num_threads()
    table = capsys.readouterr().out
    assert 'peer [peer]' in table and 'images/s' in table
    # Speed-ups only against the peer's device, dtype, batch and size.
    speedups = [line.split()[-1] for line in table.splitlines()
                if line.endswith('x')]
    assert len(speedups) == len(tool.FORMS)
    # A second run may replace its own results, not another file.
    (tmp_path / 'other.json').write_text('{"a": 1}')
    with pytest.raises(SystemExit, match='is not an earlier result'):
        tool.main([CONFIG, '--out', str(tmp_path / 'other.json')])


def test_forms_that_disagree_are_an_error(tool):
    models = tool.build_forms(CONFIG, ['train', 'deploy'])
    images = torch.rand(1, 3, SIZE, SIZE)
    runners = {form: tool.torch_runner(model, 'cpu', 'fp32')
               for form, model in models.items()}
    outputs = {form: run(images) for form, run in runners.items()}
    tool.check_forms_agree(outputs, (SIZE, SIZE))
    with torch.no_grad():  # a fold that went wrong in one block
        models['deploy'].backbone.network[2][0].mlp.fc2.bias += 0.5
    outputs['deploy'] = runners['deploy'](images)
    with pytest.raises(tool.FormMismatch,
                       match='The deploy form does not predict what the '
                       'train form predicts on image 0: '):
        tool.check_forms_agree(outputs, (SIZE, SIZE))


@pytest.mark.parametrize('argv, message', [
    (['--device', 'cuda'], 'CUDA is not available here'),
    (['--cuda-graphs'], '--cuda-graphs needs --device cuda'),
    (['--forms', 'onnxruntime', '--dtype', 'bf16'],
     'onnxruntime cannot run: the ONNX export is float32'),
    (['--forms', 'onnxruntime-int8', '--dtype', 'fp16'],
     'onnxruntime-int8 cannot run: the ONNX export is float32'),
])
def test_settings_this_machine_cannot_run(tool, monkeypatch, argv, message):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(SystemExit, match=message):
        tool.main([CONFIG, *argv])
