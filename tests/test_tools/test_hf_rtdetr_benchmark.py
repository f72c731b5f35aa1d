# Copyright (c) OpenMMLab. All rights reserved.
"""tools/analysis_tools/hf_rtdetr_benchmark.py, run in the oracle venv of
:mod:`mmriformer.testing.oracle` (where HF transformers and OpenVINO live)
at a tiny size: its rows, read back as peer rows, and openvino-f32's
agreement check with eager PyTorch.

Without the oracle venv (no package index to build it from) these tests
fail with the reason; they never skip.
"""
import json
import re
from pathlib import Path

import pytest

from mmriformer.analysis import ROW_KEYS, format_table, load_peer_rows
from mmriformer.testing.oracle import OracleUnavailable, run_in_oracle

ROOT = Path(__file__).parents[2]
TOOL = ROOT / 'tools/analysis_tools/hf_rtdetr_benchmark.py'
# HF's R18vd selects 300 queries among the encoder's tokens: 336 at 128 px.
SIZE = 128


def run_tool(tmp_path, *args) -> str:
    """The tool's output; a failure raises :class:`OracleUnavailable`."""
    return run_in_oracle(str(TOOL), [str(a) for a in args], cwd=str(tmp_path))


@pytest.mark.slow
def test_openvino_f32_agrees_with_eager_and_rows_are_peer_rows(tmp_path):
    out = tmp_path / 'hf.json'
    try:
        log = run_tool(tmp_path, '--sizes', SIZE, '--backends', 'pytorch',
                       'openvino-f32', 'openvino-int8', '--warmup', 0,
                       '--repeats', 2, '--out', out)
    except OracleUnavailable as error:
        pytest.fail(f'The HF transformers oracle is unavailable, so the '
                    f'benchmark cannot run: {error}')
    # Checked before timing, and not vacuously: nearly all of the 300
    # detections have their own partner, few are near-ties at the cut
    # (the perturbed random weights spread the scores).
    matched = re.search(r'openvino-f32 equals pytorch fp32: (\d+) '
                        r'detections matched', log)
    assert matched and int(matched[1]) >= 250, log
    # int8 as ours: the rest quantised, our float modules' counterparts
    # not. R18vd's 3 decoder layers have 3 sampling-offset, 3 attention-
    # weight, 3 class and 9 box-MLP linears; the encoder's heads 1 and 3.
    counts = re.search(r'openvino-int8: (\d+) of (\d+) matrix products and '
                       r'convolutions in int8', log)
    assert counts, log
    int8, products = int(counts[1]), int(counts[2])
    assert products // 2 < int8 <= products - 22, log
    rows = json.loads(out.read_text())
    assert [r['backend'] for r in rows] == [
        'pytorch', 'openvino-f32', 'openvino-int8']
    for row in rows:
        assert set(ROW_KEYS) <= set(row)
        assert (row['dtype'], row['size'], len(row['times_ms'])) == (
            'fp32', SIZE, 2)
        assert row['environment']['openvino'] == '2026.4.1'
        assert row['environment']['nncf'] == '3.4.0'
    ours = dict(rows[1], model='ours', peer=False)
    table = format_table([ours] + load_peer_rows(str(out))).splitlines()
    # Ours against HF's eager row and against HF's openvino-f32 row.
    assert table[1].split()[-2:] == [
        f'{rows[0]["median_ms"] / ours["median_ms"]:.2f}x', '1.00x'
    ]


@pytest.mark.parametrize('args, message', [
    (('--dtype', 'bf16'), '--backends openvino-f32 computes in the precision '
     "of its name (--dtype is PyTorch's autocast); use --dtype fp32"),
    (('--device', 'cuda'), '--backends openvino-f32 runs on the CPU only; '
     'use --device cpu'),
])
def test_openvino_settings_it_cannot_run(tmp_path, args, message):
    with pytest.raises(OracleUnavailable, match=re.escape(message)):
        run_tool(tmp_path, '--backends', 'openvino-f32', *args)
