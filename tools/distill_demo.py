# Copyright (c) OpenMMLab. All rights reserved.
"""RIFormer's module imitation against plain training, on the CPU.

1. draws the synthetic shape classes (one grey shape per 32x32 image, no
   download) into ``--data-root``;
2. ``mim train mmpretrain`` of the teacher, a PoolFormer
   (``configs/demo/poolformer_tiny_shapes_cls.py``);
3. ``mim train mmpretrain`` of two students of the same RIFormer arch for
   the same number of steps: with labels only
   (``riformer_tiny_shapes_cls.py``) and by module imitation of the teacher
   without labels (``riformer_tiny_distill-poolformer_shapes_cls.py``);
4. loads the imitating student's checkpoint strictly into the plain
   classifier config, reparameterizes it and checks that the deploy form's
   logits equal the train form's (float64);
5. writes ``summary.json`` (top-1 per epoch, times, the deploy check) and
   ``curves.png`` to ``--work-dir`` and prints the figures.
"""
import argparse
import copy
import glob
import json
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List

import cv2
import torch
from mmengine.runner import find_latest_checkpoint

from mmriformer.apis import build_model, load_strict
from mmriformer.datasets.synthetic_shapes import (DEFAULT_CLASSES,
                                                  write_shape_classification)
from mmriformer.models import switch_to_deploy

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = {
    'teacher': 'configs/demo/poolformer_tiny_shapes_cls.py',
    'plain': 'configs/demo/riformer_tiny_shapes_cls.py',
    'imitation': 'configs/demo/riformer_tiny_distill-poolformer_shapes_cls.py',
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/distill_demo')
    parser.add_argument('--data-root', default='data/shapes_cls')
    parser.add_argument('--train-images', type=int, default=3000)
    parser.add_argument('--val-images', type=int, default=600)
    parser.add_argument(
        '--teacher-epochs',
        type=int,
        help='epochs of the teacher (default: its config\'s, 10)')
    parser.add_argument(
        '--epochs',
        type=int,
        help='epochs of each student (default: their config\'s, 5)')
    return parser.parse_args()


def train(name: str, work_dir: str, options: List[str]) -> float:
    """``mim train mmpretrain`` one config; returns the seconds it took."""
    start = time.time()
    cmd = [
        sys.executable, '-m', 'mim', 'train', 'mmpretrain',
        osp.join(ROOT, CONFIGS[name]), '--work-dir', work_dir,
        '--cfg-options', *options
    ]
    print(f'[distill_demo] {name}: {" ".join(cmd[2:])}', flush=True)
    subprocess.run(cmd, check=True)
    return time.time() - start


def top1_curve(work_dir: str) -> List[float]:
    """Validation top-1 of each epoch, from the run's scalar log."""
    logs = sorted(glob.glob(osp.join(work_dir, '*/vis_data/scalars.json')))
    if not logs:
        raise FileNotFoundError(f'No scalars.json of a run in {work_dir}.')
    with open(logs[-1]) as f:
        rows = [json.loads(line) for line in f]
    return [row['accuracy/top1'] for row in rows if 'accuracy/top1' in row]


def deploy_check(checkpoint: str, val_root: str) -> Dict[str, float]:
    """Load a distilled checkpoint into the plain classifier, fold it, and
    compare the logits of both forms on validation images in float64."""
    config = osp.join(ROOT, CONFIGS['plain'])
    model = build_model(config)
    load_strict(model, checkpoint, config)
    model = model.double().eval()
    deployed = switch_to_deploy(copy.deepcopy(model))
    files = sorted(glob.glob(osp.join(val_root, '*', '*.png')))[:64]
    images = torch.stack([
        torch.from_numpy(cv2.imread(f)).permute(2, 0, 1) for f in files
    ])
    with torch.no_grad():
        inputs = model.data_preprocessor({'inputs': images})['inputs']
        train_form = model(inputs.double())
        deploy_form = deployed(inputs.double())
    return dict(
        images=len(files),
        max_abs_diff=float((train_form - deploy_form).abs().max()),
        max_abs_logit=float(train_form.abs().max()))


def plot(curves: Dict[str, List[float]], out: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, values in curves.items():
        ax.plot(range(1, len(values) + 1), values, marker='o', label=name)
    ax.set_xlabel('epoch')
    ax.set_ylabel('val top-1 (%)')
    ax.set_title('RIFormer: module imitation vs labels only')
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main():
    args = parse_args()
    work = osp.abspath(args.work_dir)
    data_root = osp.abspath(args.data_root)
    for split, num, seed in (('train', args.train_images, 0),
                             ('val', args.val_images, 1)):
        write_shape_classification(
            osp.join(data_root, split), num, DEFAULT_CLASSES, seed=seed)
    data_options = {
        'train_dataloader.dataset.data_root': data_root,
        'val_dataloader.dataset.data_root': data_root,
        'test_dataloader.dataset.data_root': data_root,
    }
    options = [f'{k}={v}' for k, v in data_options.items()]

    seconds = {}
    teacher_options, student_options = list(options), list(options)
    if args.teacher_epochs:
        teacher_options.append(f'train_cfg.max_epochs={args.teacher_epochs}')
    if args.epochs:
        student_options.append(f'train_cfg.max_epochs={args.epochs}')
    seconds['teacher'] = train('teacher', osp.join(work, 'teacher'),
                               teacher_options)
    teacher_ckpt = find_latest_checkpoint(osp.join(work, 'teacher'))
    seconds['plain'] = train('plain', osp.join(work, 'plain'),
                             student_options)
    seconds['imitation'] = train(
        'imitation', osp.join(work, 'imitation'),
        student_options + [f'model.teacher_checkpoint={teacher_ckpt}'])

    curves = {name: top1_curve(osp.join(work, name)) for name in CONFIGS}
    deploy = deploy_check(
        find_latest_checkpoint(osp.join(work, 'imitation')),
        osp.join(data_root, 'val'))
    summary = dict(
        top1=curves,
        seconds=seconds,
        deploy=deploy,
        settings=vars(args))
    with open(osp.join(work, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    plot(curves, osp.join(work, 'curves.png'))

    print('[distill_demo] validation top-1 (%) per epoch:')
    for name, values in curves.items():
        print(f'  {name:9s} ' + ' '.join(f'{v:5.1f}' for v in values) +
              f'   ({seconds[name]:.0f} s)')
    print(f'[distill_demo] deploy form of the imitating student: max |logit '
          f'difference| {deploy["max_abs_diff"]:.2e} on {deploy["images"]} '
          f'images (float64)')
    print(f'[distill_demo] wrote {osp.join(work, "summary.json")} and '
          f'{osp.join(work, "curves.png")}')


if __name__ == '__main__':
    main()
