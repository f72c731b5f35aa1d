# Copyright (c) OpenMMLab. All rights reserved.
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine.analysis import FlopAnalyzer
from torch import nn

from mmriformer.analysis import (PARTS, analyze, build_detector,
                                 check_complexity_paths, count_macs,
                                 format_result, sdpa_macs)

ROOT = Path(__file__).parents[2]
CONFIG = str(ROOT / 'configs/rtdetr_riformer_s12.py')
# Substrings of the ops that carry the MACs; none may go uncounted.
HEAVY_OPS = ('mm', 'conv', 'linear', 'einsum', 'attention', 'mkldnn')


@pytest.fixture(scope='module')
def model():
    return build_detector(CONFIG)


def test_analyze_train_and_deploy(model):
    result = analyze(CONFIG, size=256, deploy=True, benchmark=True,
                     repeats=1)
    params = result['params']
    assert params['train'] == sum(p.numel() for p in model.parameters()) > 0
    assert 0 < params['deploy'] < params['train']
    for form in ('train', 'deploy'):
        stats = result['macs'][form]
        assert stats['macs'] > 0
        assert sum(stats['parts'].values()) == stats['macs']
        # backbone, hybrid encoder, query selection, decoder and head
        assert all(stats['parts'][name] > 0 for name in PARTS.values())
        heavy = [op for op in stats['uncounted_ops']
                 if any(s in op for s in HEAVY_OPS)]
        assert not heavy
    # folding removes the neck's parallel branches
    assert result['macs']['deploy']['macs'] < result['macs']['train']['macs']
    report = format_result(result)
    assert f'{result["images_per_s"]:.2f} images/s' in report
    assert 'GMACs (mmengine counts a multiply-add as one flop' in report
    assert 'images/s' in report and 'not counted' in report


def test_macs_grow_with_input_area(model):
    small = count_macs(model, 256)
    large = count_macs(model, 512)
    # The backbone and encoder scale with the area; the decoder works on
    # a fixed number of queries, so the total grows a little less.
    for part in ('backbone', 'hybrid encoder'):
        ratio = large['parts'][part] / small['parts'][part]
        assert ratio == pytest.approx(4, rel=0.03)
    assert 3 < large['macs'] / small['macs'] < 4


def test_sdpa_handle():

    class Attention(nn.Module):

        def forward(self, q, k, v):
            return F.scaled_dot_product_attention(q, k, v)

    q, k, v = torch.rand(2, 3, 5, 8), torch.rand(2, 3, 7, 8), torch.rand(
        2, 3, 7, 4)
    analyzer = FlopAnalyzer(Attention(), (q, k, v))
    analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_macs)
    # QK^T: 2*3*5*7*8, AV: 2*3*5*7*4
    assert analyzer.total() == 2 * 3 * 5 * 7 * (8 + 4)


def test_paths_checked_first(tmp_path):
    out = tmp_path / 'notes.json'
    out.write_text('{"mine": 1}')
    for configs, out_path, error, message in (
            ([str(tmp_path / 'nope.py')], None, FileNotFoundError,
             rf'Config {tmp_path}/nope\.py does not exist; check the '
             rf'path\.'),
            ([CONFIG], str(tmp_path), ValueError,
             rf'{tmp_path} is a folder; give the path of the file'),
            ([CONFIG], str(tmp_path / 'no' / 'c.json'), ValueError,
             rf'The folder {tmp_path}/no of .* does not exist'),
            ([CONFIG], str(out), ValueError,
             rf'{out} exists and is not replaced; give another path, or '
             rf'--force')):
        with pytest.raises(error, match=message):
            check_complexity_paths(configs, out_path)
    assert out.read_text() == '{"mine": 1}'
    check_complexity_paths([CONFIG], str(out), force=True)
