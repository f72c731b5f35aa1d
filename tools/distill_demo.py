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
from typing import Dict, List

import cv2
import torch
from mmengine.runner import find_latest_checkpoint

from mmriformer.analysis.curves import (mim_train, plot_curves,
                                        validation_curve)
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


def train(name: str, work: str, options: List[str]) -> float:
    """``mim train mmpretrain`` one config into ``work/name``; returns the
    seconds it took."""
    return mim_train('mmpretrain', osp.join(ROOT, CONFIGS[name]),
                     osp.join(work, name), options)


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
    seconds['teacher'] = train('teacher', work, teacher_options)
    teacher_ckpt = find_latest_checkpoint(osp.join(work, 'teacher'))
    seconds['plain'] = train('plain', work, student_options)
    seconds['imitation'] = train(
        'imitation', work,
        student_options + [f'model.teacher_checkpoint={teacher_ckpt}'])

    epochs = {
        name: validation_curve(osp.join(work, name), 'accuracy/top1')
        for name in CONFIGS
    }
    curves = {name: [top1 for _, top1 in run] for name, run in epochs.items()}
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
    plot_curves(
        epochs,
        osp.join(work, 'curves.png'),
        xlabel='epoch',
        ylabel='val top-1 (%)',
        title='RIFormer: module imitation vs labels only')

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
