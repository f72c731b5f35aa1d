# Copyright (c) OpenMMLab. All rights reserved.
"""Images/s and latency of RT-DETR detectors, per config and backend.

Backends, the agreement check and the timing:
:mod:`mmriformer.analysis.benchmark`. ``--out`` writes a JSON list of rows
(``ROW_KEYS``, the settings, every call's time and the environment).
``--peer-json`` adds the rows of such a list written by another tool (e.g.
``tools/analysis_tools/hf_rtdetr_benchmark.py``: HF transformers' RT-DETR,
run in an environment of its own) to the table, with the speed-up of each
of our rows over the peer's eager row (``pytorch``) of the same device,
dtype, batch and size, and for a backend the peer ran too (``openvino-f32``,
``-bf16``, ``-int8``) over its row of that backend. ``--ceiling`` adds a
table of the OpenVINO rows' MACs per second against what OpenVINO reaches
on dense convolutions in the same precision
(:mod:`mmriformer.analysis.ceiling`) and the time that allows.

Example::

    python tools/analysis_tools/benchmark_detector.py \\
        configs/rtdetr_riformer_s12.py configs/rtdetr_riformer_s24.py \\
        --sizes 640 320 --batch-sizes 1 --repeats 20 \\
        --peer-json work_dirs/hf_rtdetr.json --out work_dirs/bench.json
"""
import argparse
import json
import sys
from typing import List, Optional

import onnxruntime
import torch
from mmengine.config import DictAction

from mmriformer.analysis import (BACKENDS, DTYPES, OPENVINO_BACKENDS,
                                 BackendMismatch, benchmark_config,
                                 check_benchmark_paths, check_device,
                                 format_ceiling, format_table, load_peer_rows,
                                 openvino_ceiling, resolve_backends)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', help='config files')
    parser.add_argument('--backends', nargs='+', choices=tuple(BACKENDS),
                        help='default: pytorch-train, pytorch-deploy, and '
                        'onnxruntime when it can run (onnxruntime-int8 and '
                        'openvino-f32, -bf16, -int8 only on request; '
                        "OpenVINO runs on the CPU with PyTorch's threads, "
                        'bf16 needs a CPU with bf16 instructions)')
    parser.add_argument('--batch-sizes', nargs='+', type=int, default=[1])
    parser.add_argument('--sizes', nargs='+', type=int, default=[640],
                        help='sides of the square inputs')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--dtype', choices=tuple(DTYPES), default='fp32',
                        help='autocast of the PyTorch backends; the '
                        'onnxruntime and OpenVINO ones need fp32')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the PyTorch backends')
    parser.add_argument('--cuda-graphs', action='store_true',
                        help='replay the PyTorch backends as CUDA graphs')
    parser.add_argument('--checkpoint',
                        help='weights (train form); default: random')
    parser.add_argument('--seed', type=int, default=0,
                        help='of the random weights and images')
    parser.add_argument('--warmup', type=int, default=3,
                        help='untimed calls of each backend')
    parser.add_argument('--repeats', type=int, default=20,
                        help='timed calls of each backend')
    parser.add_argument('--peer-json', nargs='+', default=[],
                        help="peers' figures to print in the same table")
    parser.add_argument('--ceiling', action='store_true',
                        help="also time OpenVINO on dense convolutions in "
                        "each OpenVINO backend's precision, and show each "
                        "OpenVINO row's MACs per second against it")
    parser.add_argument('--out', help='write the figures as JSON here')
    parser.add_argument('--force', action='store_true',
                        help='replace --out if it exists')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of every config, e.g. '
        'model.num_queries=100')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    # Errors only: its notes on loading an export (constants it leaves
    # unfolded) would bury the table.
    onnxruntime.set_default_logger_severity(3)
    try:
        check_device(args.device, args.cuda_graphs)
        backends, note = resolve_backends(args.backends, args.device,
                                          args.dtype)
        check_benchmark_paths(args.configs, args.peer_json, args.out,
                              args.force)
        peers = [r for path in args.peer_json for r in load_peer_rows(path)]
        precisions = [OPENVINO_BACKENDS[b] for b in backends
                      if b in OPENVINO_BACKENDS]
        if args.ceiling and not precisions:
            raise ValueError('--ceiling is the ceiling of OpenVINO; add an '
                             'OpenVINO backend, e.g. --backends openvino-f32.')
    except ValueError as error:
        sys.exit(f'error: {error}')
    if note:
        print(note)
    rows = []
    for config in args.configs:
        try:
            rows += benchmark_config(
                config, backends, args.sizes, args.batch_sizes, args.device,
                args.dtype, args.compile, args.cuda_graphs, args.checkpoint,
                args.seed, args.warmup, args.repeats, args.cfg_options,
                with_macs=args.ceiling)
        except BackendMismatch as error:
            sys.exit(f'error: {config}: {error}')
    print(format_table(rows + peers))
    if args.ceiling:
        # The OpenVINO backends' threads (see benchmark_config).
        ceilings = {
            p: openvino_ceiling(p, torch.get_num_threads(), args.warmup)
            for p in precisions
        }
        print(format_ceiling(rows, ceilings))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(rows, f, indent=2)
        print(f'Wrote {args.out}')


if __name__ == '__main__':
    main()
