# Copyright (c) OpenMMLab. All rights reserved.
"""The command line of detector_complexity.py, and the D-FINE README's
figures it prints; what it computes is tested in
tests/test_analysis/test_complexity.py."""
import json
from pathlib import Path

import pytest
from helpers import run

from mmriformer.analysis import PAPER, paper_figures
from mmriformer.analysis.complexity import format_paper

ROOT = Path(__file__).parents[2]
TOOL = ROOT / 'tools/analysis_tools/detector_complexity.py'
CONFIG = ROOT / 'configs/rtdetr_riformer_s12.py'
DFINE_N = ROOT / 'configs/dfine/dfine_hgnetv2_n_coco.py'


def test_cli_writes_json_and_replaces_files_only_with_force(tmp_path):
    notes = tmp_path / 'notes.json'
    notes.write_text('{"mine": 1}')
    refused = run(TOOL, CONFIG, '--out', notes, cwd=ROOT)
    assert refused.returncode != 0
    assert f'error: {notes} exists and is not replaced; give another ' \
        'path, or --force' in refused.stderr
    assert notes.read_text() == '{"mine": 1}'

    out = notes
    done = run(TOOL, CONFIG, '--size', '128', '--out', out, '--force',
               cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert 'train form' in done.stdout
    results = json.loads(out.read_text())
    assert len(results) == 1 and results[0]['size'] == 128
    assert set(results[0]['params']) == {'train'}
    assert results[0]['macs']['train']['macs'] > 0


def test_dfine_paper_table_names_the_configs():
    """The README's table (params in M, GFLOPs at 640): one row per D-FINE
    config, and only those."""
    assert PAPER == {
        'dfine_hgnetv2_n_coco.py': ('D-FINE-N', 4, 7),
        'dfine_hgnetv2_s_coco.py': ('D-FINE-S', 10, 25),
        'dfine_hgnetv2_m_coco.py': ('D-FINE-M', 19, 57),
        'dfine_hgnetv2_l_coco.py': ('D-FINE-L', 31, 91),
        'dfine_hgnetv2_x_coco.py': ('D-FINE-X', 62, 202),
    }
    assert {p.name for p in (ROOT / 'configs/dfine').glob('dfine_hgnetv2_*')
            } == set(PAPER)
    assert paper_figures(str(CONFIG)) is None


@pytest.mark.slow
def test_cli_prints_dfine_paper_figures(tmp_path):
    """D-FINE-N at 640: the README's figures beside the measured ones and
    their ratios; at another size they are not compared."""
    out = tmp_path / 'dfine_n.json'
    done = run(TOOL, DFINE_N, '--out', out, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    [result] = json.loads(out.read_text())
    assert result['paper'] == dict(model='D-FINE-N', params_m=4, gflops=7)
    params = result['params']['train'] / 1e6 / 4
    macs = result['macs']['train']['macs'] / 1e9 / 7
    assert (f'paper (D-FINE-N, D-FINE README, 640x640): 4 M params, 7 GFLOPs;'
            f' measured / paper: params {params:.2f}, GMACs / GFLOPs '
            f'{macs:.2f}') in done.stdout
    # D-FINE-N has 3.78 M parameters; its GMACs are about half the
    # README's GFLOPs (calflops counts a multiply-add as two).
    assert abs(params - 1) < 0.1 and 0.45 < macs < 0.65
    result['size'] = 320
    assert format_paper(result).endswith('; not compared at 320x320')
