# Copyright (c) OpenMMLab. All rights reserved.
"""Training runs of the demo tools (``tools/distill_demo.py``,
``tools/deim_demo.py``): ``mim train`` of a config, the validation metric
of each epoch from the run's log, and the curves of several runs in one
picture."""
import glob
import json
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List, Sequence, Tuple

Curve = List[Tuple[int, float]]


def mim_train(codebase: str, config: str, work_dir: str,
              options: Sequence[str] = ()) -> float:
    """Train a config as a user does, with ``mim train``.

    Args:
        codebase (str): ``'mmdet'`` or ``'mmpretrain'``.
        config (str): The config file.
        work_dir (str): The run's work directory.
        options (Sequence[str]): ``--cfg-options`` items, ``'key=value'``.

    Returns:
        float: The seconds the run took.

    Raises:
        subprocess.CalledProcessError: The run failed.
    """
    start = time.time()
    cmd = [
        sys.executable, '-m', 'mim', 'train', codebase, config, '--work-dir',
        work_dir
    ]
    if options:
        cmd += ['--cfg-options', *options]
    print(f'[mim_train] {" ".join(cmd[2:])}', flush=True)
    subprocess.run(cmd, check=True)
    return time.time() - start


def validation_curve(work_dir: str, metric: str) -> Curve:
    """The metric of every validation of the latest run in a work directory.

    Args:
        work_dir (str): The run's work directory.
        metric (str): The logged key, e.g. ``'coco/bbox_mAP'``.

    Returns:
        list[tuple[int, float]]: ``(epoch, value)`` per validation, in
        order.

    Raises:
        FileNotFoundError: No run in ``work_dir`` logged scalars.
        ValueError: The run never logged ``metric``.
    """
    logs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                     'scalars.json')))
    if not logs:
        raise FileNotFoundError(f'No scalars.json of a run in {work_dir}.')
    with open(logs[-1]) as f:
        rows = [json.loads(line) for line in f]
    curve = [(row['step'], row[metric]) for row in rows if metric in row]
    if not curve:
        raise ValueError(f'{logs[-1]} has no {metric!r}; was the run '
                         f'validated?')
    return curve


def plot_curves(curves: Dict[str, Sequence[Tuple[float, float]]], out: str,
                xlabel: str, ylabel: str, title: str) -> None:
    """Draw runs' curves in one picture.

    Args:
        curves (dict[str, Sequence[tuple[float, float]]]): ``(x, y)``
            points of each run, by its label.
        out (str): The image file to write.
        xlabel (str): The x axis' label.
        ylabel (str): The y axis' label.
        title (str): The picture's title.
    """
    # A Figure of its own: no pyplot state or backend set for the process.
    from matplotlib.figure import Figure
    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    for label, points in curves.items():
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker='o', label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
