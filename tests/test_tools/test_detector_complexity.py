# Copyright (c) OpenMMLab. All rights reserved.
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine.analysis import FlopAnalyzer
from torch import nn

ROOT = Path(__file__).parents[2]
TOOL = ROOT / 'tools/analysis_tools/detector_complexity.py'
CONFIG = str(ROOT / 'configs/rtdetr_riformer_s12.py')
# Substrings of the ops that carry the MACs; none may go uncounted.
HEAVY_OPS = ('mm', 'conv', 'linear', 'einsum', 'attention', 'mkldnn')


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('detector_complexity',
                                                  TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def model(tool):
    return tool.build_detector(CONFIG)


def test_analyze_train_and_deploy(tool, model):
    result = tool.analyze(CONFIG, size=256, deploy=True, benchmark=True,
                          repeats=1)
    params = result['params']
    assert params['train'] == sum(p.numel() for p in model.parameters()) > 0
    assert 0 < params['deploy'] < params['train']
    for form in ('train', 'deploy'):
        stats = result['macs'][form]
        assert stats['macs'] > 0
        assert sum(stats['parts'].values()) == stats['macs']
        # backbone, hybrid encoder, query selection, decoder and head
        assert all(stats['parts'][name] > 0
                   for name in tool.PARTS.values())
        heavy = [op for op in stats['uncounted_ops']
                 if any(s in op for s in HEAVY_OPS)]
        assert not heavy
    # folding removes the neck's parallel branches
    assert result['macs']['deploy']['macs'] < result['macs']['train']['macs']
    report = tool.format_result(result)
    assert f'{result["images_per_s"]:.2f} images/s' in report
    assert 'GMACs (mmengine counts a multiply-add as one flop' in report
    assert 'images/s' in report and 'not counted' in report


def test_macs_grow_with_input_area(tool, model):
    small = tool.count_macs(model, 256)
    large = tool.count_macs(model, 512)
    # The backbone and encoder scale with the area; the decoder works on
    # a fixed number of queries, so the total grows a little less.
    for part in ('backbone', 'hybrid encoder'):
        ratio = large['parts'][part] / small['parts'][part]
        assert ratio == pytest.approx(4, rel=0.03)
    assert 3 < large['macs'] / small['macs'] < 4


def test_sdpa_handle(tool):

    class Attention(nn.Module):

        def forward(self, q, k, v):
            return F.scaled_dot_product_attention(q, k, v)

    q, k, v = torch.rand(2, 3, 5, 8), torch.rand(2, 3, 7, 8), torch.rand(
        2, 3, 7, 4)
    analyzer = FlopAnalyzer(Attention(), (q, k, v))
    analyzer.set_op_handle('aten::scaled_dot_product_attention',
                           tool.sdpa_macs)
    # QK^T: 2*3*5*7*8, AV: 2*3*5*7*4
    assert analyzer.total() == 2 * 3 * 5 * 7 * (8 + 4)


def test_cli_writes_json(tool, tmp_path, monkeypatch, capsys):
    out = tmp_path / 'complexity.json'
    monkeypatch.setattr(sys, 'argv', [
        str(TOOL), CONFIG, '--size', '128', '--out',
        str(out)
    ])
    tool.main()
    assert 'train form' in capsys.readouterr().out
    results = json.loads(out.read_text())
    assert len(results) == 1 and results[0]['size'] == 128
    assert set(results[0]['params']) == {'train'}
    assert results[0]['macs']['train']['macs'] > 0
    tool.check_paths([CONFIG], str(out))  # an earlier result may be replaced


def test_cli_checks_paths_first(tool, tmp_path, monkeypatch):
    out = tmp_path / 'notes.json'
    out.write_text('{"mine": 1}')
    for argv, message in (
            ([str(tmp_path / 'nope.py')],
             rf'error: Config {tmp_path}/nope\.py does not exist; check the '
             rf'path\.'),
            ([CONFIG, '--out', str(tmp_path)],
             rf'error: --out {tmp_path} is a folder; give a file path'),
            ([CONFIG, '--out', str(out)],
             rf'error: --out {out} exists and was not written by this tool; '
             rf'it is not overwritten')):
        monkeypatch.setattr(sys, 'argv', [str(TOOL), *argv])
        with pytest.raises(SystemExit, match=message):
            tool.main()
    assert out.read_text() == '{"mine": 1}'
