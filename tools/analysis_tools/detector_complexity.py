# Copyright (c) OpenMMLab. All rights reserved.
"""Parameters, MACs and CPU speed of RT-DETR detectors built from configs,
beside the D-FINE README's figures for the D-FINE configs.

What is counted and how: :mod:`mmriformer.analysis.complexity`.

Example::

    python tools/analysis_tools/detector_complexity.py \\
        configs/rtdetr_riformer_s12.py configs/rtdetr_riformer_s24.py \\
        --size 640 --deploy --benchmark --repeats 10 --out complexity.json
"""
import argparse
import json
import sys

from mmengine.config import DictAction

from mmriformer.analysis import analyze, check_complexity_paths, format_result


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Parameters, GMACs and CPU speed of RT-DETR configs.')
    parser.add_argument('configs', nargs='+', help='config files')
    parser.add_argument('--size', type=int, default=640,
                        help='side of the square input')
    parser.add_argument('--deploy', action='store_true',
                        help='also measure the deploy (folded) form')
    parser.add_argument('--benchmark', action='store_true',
                        help='time the deploy form on the CPU at batch 1')
    parser.add_argument('--repeats', type=int, default=10,
                        help='timed runs of the benchmark (median)')
    parser.add_argument('--out', help='write the results as JSON here')
    parser.add_argument('--force', action='store_true',
                        help='replace --out if it exists')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of every config, e.g. '
        'model.num_queries=100')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    try:
        check_complexity_paths(args.configs, args.out, args.force)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f'error: {error}')
    results = []
    for config in args.configs:
        result = analyze(config, args.size, args.deploy, args.benchmark,
                         args.repeats, args.cfg_options)
        print(format_result(result), flush=True)
        results.append(result)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=2)
        print(f'Wrote {args.out}')


if __name__ == '__main__':
    main()
