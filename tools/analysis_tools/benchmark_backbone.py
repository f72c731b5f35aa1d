# Copyright (c) OpenMMLab. All rights reserved.
"""Images/s of RIFormer backbones: our train form, mmpretrain's deploy form
and our deploy form, side by side in one process.

All three share the same random weights and input; each gets a warm-up, then
the timed runs are interleaved (A, B, C, A, B, C, ...) so that drifts in the
machine's speed hit all of them alike, and the median is reported. The
outputs are checked to be equal before anything is timed.

Example::

    python tools/analysis_tools/benchmark_backbone.py --archs s12 s24 \\
        --sizes 224 640 --out work_dirs/benchmark_backbone.json
"""
import argparse
import copy
import json
import os
import platform
import statistics
import time

import torch

from mmriformer.models import RIFormer, switch_to_deploy
from mmriformer.testing import max_rel_diff, randomize_

OUT_INDICES = (2, 4, 6)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--archs', nargs='+', default=['s12', 's24'])
    parser.add_argument('--sizes', nargs='+', type=int, default=[224, 640])
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument(
        '--devices', nargs='+', default=None,
        help='default: cpu, plus cuda when available')
    parser.add_argument('--out', help='write the figures as JSON here')
    return parser.parse_args()


def build_models(arch: str, device: str) -> dict:
    """Three backbones with the same random weights, in eval mode."""
    from mmpretrain.models.backbones import RIFormer as MMPretrainRIFormer
    theirs = randomize_(
        MMPretrainRIFormer(arch=arch, out_indices=list(OUT_INDICES)))
    ours = RIFormer(arch=arch, out_indices=OUT_INDICES)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    theirs.switch_to_deploy()
    ours_deploy = switch_to_deploy(copy.deepcopy(ours))
    models = {
        'ours (train form)': ours,
        'mmpretrain (deploy form)': theirs,
        'ours (deploy form)': ours_deploy,
    }
    return {k: m.to(device).eval() for k, m in models.items()}


def sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize(device)


def benchmark(arch: str, size: int, device: str, batch_size: int,
              repeats: int, warmup: int) -> dict:
    """Time the three forms of one arch at one input size."""
    models = build_models(arch, device)
    x = torch.randn(batch_size, 3, size, size, device=device)
    times = {name: [] for name in models}
    with torch.inference_mode():
        outputs = {name: model(x) for name, model in models.items()}
        reference = outputs['ours (train form)']
        errors = {
            name: max_rel_diff(reference, out)
            for name, out in outputs.items()
        }
        for _ in range(warmup):
            for model in models.values():
                model(x)
        for _ in range(repeats):
            for name, model in models.items():
                sync(device)
                start = time.perf_counter()
                model(x)
                sync(device)
                times[name].append(time.perf_counter() - start)
    result = dict(arch=arch, size=size, device=device, batch_size=batch_size,
                  out_indices=list(OUT_INDICES), forms={})
    for name, samples in times.items():
        median = statistics.median(samples)
        result['forms'][name] = dict(
            median_ms=median * 1e3,
            images_per_s=batch_size / median,
            max_rel_diff_vs_train=errors[name])
    base = result['forms']['mmpretrain (deploy form)']['images_per_s']
    result['speedup_vs_mmpretrain_deploy'] = \
        result['forms']['ours (deploy form)']['images_per_s'] / base
    return result


def main():
    args = parse_args()
    devices = args.devices or (['cpu', 'cuda']
                               if torch.cuda.is_available() else ['cpu'])
    env = dict(torch=torch.__version__, threads=torch.get_num_threads(),
               cpu=platform.processor() or platform.machine(),
               cores=os.cpu_count())
    print(f'torch {env["torch"]}, {env["threads"]} threads, out_indices '
          f'{OUT_INDICES}, batch {args.batch_size}, median of '
          f'{args.repeats} interleaved runs')
    results = []
    header = f'{"arch":5} {"size":>5} {"device":6} {"form":26} ' \
             f'{"ms":>9} {"img/s":>9} {"rel.diff":>9}'
    print(header)
    for device in devices:
        for arch in args.archs:
            for size in args.sizes:
                r = benchmark(arch, size, device, args.batch_size,
                              args.repeats, args.warmup)
                results.append(r)
                for name, f in r['forms'].items():
                    print(f'{arch:5} {size:5d} {device:6} {name:26} '
                          f'{f["median_ms"]:9.2f} {f["images_per_s"]:9.2f} '
                          f'{f["max_rel_diff_vs_train"]:9.1e}')
                print(f'{"":19}ours deploy / mmpretrain deploy: '
                      f'{r["speedup_vs_mmpretrain_deploy"]:.2f}x')
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(dict(env=env, results=results), f, indent=2)
        print(f'Wrote {args.out}')


if __name__ == '__main__':
    main()
