# Copyright (c) OpenMMLab. All rights reserved.
"""The command line of detector_complexity.py; what it computes is tested
in tests/test_analysis/test_complexity.py."""
import json
from pathlib import Path

from helpers import run

ROOT = Path(__file__).parents[2]
TOOL = ROOT / 'tools/analysis_tools/detector_complexity.py'
CONFIG = ROOT / 'configs/rtdetr_riformer_s12.py'


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
