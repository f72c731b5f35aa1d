# Copyright (c) OpenMMLab. All rights reserved.
"""DEIM's recipe against RT-DETR's, on the CPU demo.

1. ``mim train mmdet`` of the RT-DETR demo
   (``configs/demo/rtdetr_riformer_s12_shapes.py``, 8 epochs), of the DEIM
   demo (``deim_riformer_s12_shapes.py``, 4 epochs) and of the DEIM demo
   without its auxiliary head (``model.aux_head=None``): the same model,
   data (drawn into ``data/shapes`` of the working directory, no download),
   seed and batch, each validated after every epoch;
2. writes ``summary.json`` (mAP of every epoch with its iteration, the
   seconds of each run) and ``curves.png`` (mAP against iterations) to
   ``--work-dir`` and prints the figures.

Example::

    python tools/deim_demo.py --work-dir work_dirs/deim_demo
"""
import argparse
import json
import math
import os.path as osp
from typing import Dict, List, Tuple

from mmengine.config import DictAction

from mmriformer.analysis.curves import (mim_train, plot_curves,
                                        validation_curve)
from mmriformer.apis import load_config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEIM = 'configs/demo/deim_riformer_s12_shapes.py'
# Each run's config and its own options.
RUNS = {
    'RT-DETR': ('configs/demo/rtdetr_riformer_s12_shapes.py', {}),
    'DEIM': (DEIM, {}),
    'DEIM-no-aux': (DEIM, {'model.aux_head': None}),
}
METRIC = 'coco/bbox_mAP'


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/deim_demo')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='overrides for both runs, e.g. '
        'train_dataloader.dataset.num_images=200')
    return parser.parse_args()


def iterations_per_epoch(config: str, options: dict) -> int:
    """Batches per training epoch of a config: its images over its batch.

    Raises:
        ValueError: The config's dataset does not give ``num_images``.
    """
    loader = load_config(config, options).train_dataloader
    num_images = loader.dataset.get('num_images')
    if num_images is None:
        raise ValueError(f'{config}: the training dataset has no '
                         f'num_images; this tool runs the shapes demos.')
    return math.ceil(num_images / loader.batch_size)


def run(name: str, work: str, options: dict) -> Tuple[List[dict], float]:
    """Train one demo, validating after every epoch.

    Args:
        name (str): The run, a key of :data:`RUNS`.
        work (str): The tool's work directory; the run's is ``name`` in it.
        options (dict): ``--cfg-options`` of every run.

    Returns:
        tuple: ``{'epoch', 'iteration', 'mAP'}`` per validation, and the
        seconds the run took.
    """
    config, own = RUNS[name]
    config = osp.join(ROOT, config)
    options = {**options, **own}
    items = [f'{k}={v}' for k, v in options.items()]
    seconds = mim_train('mmdet', config, osp.join(work, name),
                        items + ['train_cfg.val_interval=1'])
    per_epoch = iterations_per_epoch(config, options)
    points = [
        dict(epoch=epoch, iteration=epoch * per_epoch, mAP=value)
        for epoch, value in validation_curve(osp.join(work, name), METRIC)
    ]
    return points, seconds


def main():
    args = parse_args()
    work = osp.abspath(args.work_dir)
    runs: Dict[str, List[dict]] = {}
    seconds = {}
    for name in RUNS:
        runs[name], seconds[name] = run(name, work, args.cfg_options)
    with open(osp.join(work, 'summary.json'), 'w') as f:
        json.dump(dict(mAP=runs, seconds=seconds,
                       cfg_options=args.cfg_options), f, indent=2)
    plot_curves(
        {
            f'{name} demo': [(p['iteration'], p['mAP']) for p in points]
            for name, points in runs.items()
        },
        osp.join(work, 'curves.png'),
        xlabel='iteration',
        ylabel='val mAP',
        title='RIFormer-S12 demo: DEIM vs RT-DETR recipe')

    print(f'[deim_demo] validation {METRIC} after each epoch:')
    for name, points in runs.items():
        values = ' '.join(f'{p["iteration"]}: {p["mAP"]:.3f}'
                          for p in points)
        print(f'  {name:11s} {values}   ({seconds[name]:.0f} s)')
    print(f'[deim_demo] wrote {osp.join(work, "summary.json")} and '
          f'{osp.join(work, "curves.png")}')


if __name__ == '__main__':
    main()
