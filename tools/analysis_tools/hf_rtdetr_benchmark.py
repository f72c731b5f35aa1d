# Copyright (c) OpenMMLab. All rights reserved.
"""Images/s and latency of HF transformers' RT-DETR, as a peer of
``benchmark_detector.py``.

HF transformers cannot live in our environment, so this runs in one that
has torch and transformers, e.g. the oracle venv of
:mod:`mmriformer.testing.oracle` (``python -c "from mmriformer.testing.
oracle import ensure_oracle_venv; print(ensure_oracle_venv())"`` builds it
and prints its Python). It imports only the standard library, torch,
transformers and ``mmriformer/testing/hf_rtdetr_oracle.py`` (by path), whose
``build_model`` gives ``RTDetrForObjectDetection`` in an official layout
(R18vd by default) with random weights; nothing is downloaded.

Each timed call is what ``benchmark_detector.py`` times of ours: random
``[0, 1]`` RGB images to the top-k detections of each image (the model,
eager, then HF's ``post_process_object_detection``). Warm-up calls first,
then the median and 90th percentile of the timed calls. The JSON written
with ``--out`` is a list of rows in ``benchmark_detector.py``'s schema
(:data:`mmriformer.analysis.ROW_KEYS`), for its ``--peer-json``.

Example (2 CPU cores, then ours beside it)::

    ~/.cache/mmriformer/oracle-venv-<key>/bin/python \\
        tools/analysis_tools/hf_rtdetr_benchmark.py --sizes 640 320 \\
        --out work_dirs/hf_rtdetr.json
    python tools/analysis_tools/benchmark_detector.py \\
        configs/rtdetr_riformer_s12.py --sizes 640 320 \\
        --peer-json work_dirs/hf_rtdetr.json
"""
import argparse
import importlib.util
import json
import math
import os
import os.path as osp
import platform
import statistics
import time
from contextlib import nullcontext

import torch

# By path: importing it as mmriformer.testing.hf_rtdetr_oracle would run
# mmriformer/__init__.py, which imports mmdet, and this venv has no mmdet.
ORACLE = osp.join(osp.dirname(osp.abspath(__file__)), '..', '..',
                  'mmriformer', 'testing', 'hf_rtdetr_oracle.py')
DTYPES = {
    'fp32': torch.float32,
    'fp16': torch.float16,
    'bf16': torch.bfloat16
}


def load_oracle():
    """``hf_rtdetr_oracle`` as a module, without importing mmriformer."""
    spec = importlib.util.spec_from_file_location('hf_rtdetr_oracle',
                                                  ORACLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--variant', default='r18vd',
                        help="an official layout, e.g. 'r18vd', 'r50vd'")
    parser.add_argument('--batch-sizes', nargs='+', type=int, default=[1])
    parser.add_argument('--sizes', nargs='+', type=int, default=[640],
                        help='sides of the square inputs')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--dtype', choices=tuple(DTYPES), default='fp32',
                        help='fp16/bf16 run under autocast')
    parser.add_argument('--seed', type=int, default=0,
                        help='of the random weights and images')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--out', help='write the rows as JSON here')
    parser.add_argument('--force', action='store_true',
                        help='replace --out if it exists')
    args = parser.parse_args()
    # The tools' output rule (mmriformer.utils.cli_checks.check_output_file,
    # which the oracle venv cannot import), checked before the work.
    if args.out and not osp.isdir(osp.dirname(osp.abspath(args.out))):
        parser.error(f'the folder of --out {args.out} does not exist; '
                     f'create it or give another path')
    if args.out and osp.exists(args.out) and not args.force:
        parser.error(f'{args.out} exists and is not replaced; give another '
                     f'path, or --force to replace it')
    return args


def summarize(times_s: list, batch_size: int) -> dict:
    """Median and 90th percentile (nearest rank) latency in ms, and
    images/s; as :func:`mmriformer.analysis.benchmark.summarize`, which
    this environment cannot import."""
    ms = sorted(t * 1e3 for t in times_s)
    median = statistics.median(ms)
    return dict(median_ms=median, p90_ms=ms[math.ceil(0.9 * len(ms)) - 1],
                images_per_s=batch_size * 1e3 / median,
                times_ms=[t * 1e3 for t in times_s])


def main() -> None:
    args = parse_args()
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('error: --device cuda: CUDA is not available here.')
    import transformers
    from transformers.models.rt_detr.image_processing_pil_rt_detr import \
        RTDetrImageProcessorPil
    oracle = load_oracle()
    model = oracle.build_model(args.variant)
    oracle.perturb_(model, seed=args.seed)
    model = model.to(args.device).eval()
    processor = RTDetrImageProcessorPil()
    autocast = nullcontext() if args.dtype == 'fp32' else torch.autocast(
        args.device, DTYPES[args.dtype])
    cuda = args.device == 'cuda'

    def detect(images):
        with torch.inference_mode(), autocast:
            outputs = model(pixel_values=images)
            # threshold -1 keeps all top-k detections, as ours returns.
            return processor.post_process_object_detection(
                outputs, threshold=-1.0,
                target_sizes=[images.shape[-2:]] * len(images))

    env = dict(torch=torch.__version__,
               transformers=transformers.__version__,
               threads=torch.get_num_threads(),
               cpu=platform.processor() or platform.machine(),
               cpu_count=os.cpu_count(), python=platform.python_version())
    if cuda:
        env['gpu'] = torch.cuda.get_device_name()
    rows = []
    for size in args.sizes:
        for batch_size in args.batch_sizes:
            gen = torch.Generator().manual_seed(args.seed)
            images = torch.rand(batch_size, 3, size, size,
                                generator=gen).to(args.device)
            for _ in range(args.warmup):
                detect(images)
            times = []
            for _ in range(args.repeats):
                if cuda:
                    torch.cuda.synchronize()
                start = time.perf_counter()
                detect(images)
                if cuda:
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
            row = dict(model=f'hf_rtdetr_{args.variant}', backend='pytorch',
                       device=args.device, dtype=args.dtype,
                       batch_size=batch_size, size=size, seed=args.seed,
                       warmup=args.warmup, environment=env,
                       **summarize(times, batch_size))
            rows.append(row)
            print(f'{row["model"]} {args.device} {args.dtype} batch '
                  f'{batch_size} {size}x{size}: median '
                  f'{row["median_ms"]:.1f} ms, p90 {row["p90_ms"]:.1f} ms, '
                  f'{row["images_per_s"]:.2f} images/s', flush=True)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(rows, f, indent=2)
        print(f'Wrote {args.out}')


if __name__ == '__main__':
    main()
