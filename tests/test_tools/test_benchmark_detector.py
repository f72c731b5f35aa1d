# Copyright (c) OpenMMLab. All rights reserved.
"""The command line of benchmark_detector.py; what it measures is tested in
tests/test_analysis/test_benchmark.py."""
import json
from pathlib import Path

from helpers import run

ROOT = Path(__file__).parents[2]
TOOL = ROOT / 'tools/analysis_tools/benchmark_detector.py'
CONFIG = ROOT / 'configs/demo/rtdetr_riformer_s12_shapes.py'


def test_cli_table_json_and_errors(tmp_path):
    refused = run(TOOL, CONFIG, '--backends', 'onnxruntime', '--dtype',
                  'bf16', cwd=ROOT)
    assert refused.returncode != 0
    assert 'error: --backends onnxruntime cannot run: the ONNX export is ' \
        'float32.' in refused.stderr

    peer = tmp_path / 'peer.json'
    peer.write_text(json.dumps([dict(
        model='peer', backend='pytorch', device='cpu', dtype='fp32',
        batch_size=1, size=96, median_ms=1e4, p90_ms=1e4,
        images_per_s=1e-4)]))
    out = tmp_path / 'bench.json'
    done = run(TOOL, CONFIG, '--backends', 'pytorch-train', 'pytorch-deploy',
               '--sizes', 96, '--warmup', 0, '--repeats', 1, '--peer-json',
               peer, '--out', out, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert 'pytorch-deploy' in done.stdout and 'peer [peer]' in done.stdout
    assert f'Wrote {out}' in done.stdout
    rows = json.loads(out.read_text())
    assert [r['backend'] for r in rows] == ['pytorch-train', 'pytorch-deploy']


def test_cli_ceiling():
    refused = run(TOOL, CONFIG, '--backends', 'pytorch-deploy', '--ceiling',
                  cwd=ROOT)
    assert refused.returncode != 0
    assert 'error: --ceiling is the ceiling of OpenVINO; add an OpenVINO ' \
        'backend' in refused.stderr

    done = run(TOOL, CONFIG, '--backends', 'pytorch-deploy', 'openvino-f32',
               '--sizes', 96, '--warmup', 0, '--repeats', 1, '--ceiling',
               cwd=ROOT)
    assert done.returncode == 0, done.stderr
    ceiling = done.stdout.split('ceiling GMAC/s')[1].splitlines()
    assert [line.split()[:4] for line in ceiling[1:]] == [
        ['rtdetr_riformer_s12_shapes', 'openvino-f32', '1', '96']]
