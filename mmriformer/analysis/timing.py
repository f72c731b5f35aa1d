# Copyright (c) OpenMMLab. All rights reserved.
"""Timing calls and summarising their times, for the detector benchmarks.

It imports only the standard library and torch, so that
``tools/analysis_tools/hf_rtdetr_benchmark.py`` loads it by path in the
oracle venv, which cannot import mmriformer (mmdet).
"""
import math
import statistics
import time
from typing import Callable, Dict, List, Sequence

import torch
from torch import Tensor


def time_runners(runners: Dict[str, Callable[[Tensor], object]],
                 images: Tensor, warmup: int,
                 repeats: int) -> Dict[str, List[float]]:
    """Seconds per call of each runner, interleaved across runners.

    Args:
        runners (dict[str, Callable]): The backends.
        images (Tensor): Their input.
        warmup (int): Untimed calls of each first.
        repeats (int): Timed calls of each.

    Returns:
        dict[str, list[float]]: The times, in call order.
    """
    cuda = images.device.type == 'cuda'
    for run in runners.values():
        for _ in range(warmup):
            run(images)
    times = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            run(images)
            if cuda:
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return times


def summarize(times: Sequence[float], batch_size: int) -> dict:
    """Median and 90th percentile latency (ms) and images/s of a backend.

    Args:
        times (Sequence[float]): Seconds per call.
        batch_size (int): Images per call.

    Returns:
        dict: ``median_ms``, ``p90_ms`` (nearest rank), ``images_per_s``
        and every call's ``times_ms``.
    """
    ms = sorted(t * 1e3 for t in times)
    median = statistics.median(ms)
    p90 = ms[math.ceil(0.9 * len(ms)) - 1]  # nearest rank
    return dict(median_ms=median, p90_ms=p90,
                images_per_s=batch_size * 1e3 / median,
                times_ms=[t * 1e3 for t in times])
