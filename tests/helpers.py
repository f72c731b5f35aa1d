# Copyright (c) OpenMMLab. All rights reserved.
"""Helpers of the bad-input tests, which check that bad input ends in one
clear error naming the problem and the fix and that nothing a user had is
lost. They run for real on the ``tiny`` detector of ``tests/conftest.py``:
configs built by the registry, checkpoints loaded by mmengine's loader,
datasets on files on disk, the tools as subprocesses.

:func:`assert_same_predictions` compares the outputs of two inference
backends; :class:`EpochStates` records a training run's states."""
import copy
import hashlib
import subprocess
import sys
from pathlib import Path

import torch
from mmengine.hooks import EMAHook, Hook

from mmriformer.apis import build_model


def run(*args, cwd, timeout=600):
    """Run a command with this interpreter; return the finished process."""
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def build(cfg, **overrides):
    return build_model(cfg, {f'model.{k}': v for k, v in overrides.items()})


def assert_same_predictions(ours, reference, out_dir, image_size, classes,
                            count):
    """Check that a run of :mod:`mmriformer.apis.inference` detects what
    ``reference`` detects (:func:`compare_detections`).

    Args:
        ours (list[dict]): What the run returned, as in its
            ``predictions.json``.
        reference (list[dict]): What another backend returned.
        out_dir (Path): The run's output folder, which has a drawing of
            each image in ``vis/``.
        image_size (tuple[int, int]): (H, W) of every image.
        classes (tuple[str]): The class names.
        count (int): Detections per image (the score threshold was 0).
    """
    # Here rather than at the top: conftest.py imports this module, and
    # the deployment package imports onnxruntime.
    from mmriformer.deployment import compare_detections

    def tensors(prediction):
        dets = prediction['detections']
        return dict(scores=torch.tensor([d['score'] for d in dets]),
                    labels=torch.tensor([d['label'] for d in dets]),
                    bboxes=torch.tensor([d['bbox'] for d in dets]))

    assert [p['image'] for p in ours] == [p['image'] for p in reference]
    for mine, theirs in zip(ours, reference, strict=True):
        assert len(mine['detections']) == count
        assert all(d['class'] == classes[d['label']]
                   for d in mine['detections'])
        compare_detections(tensors(mine), tensors(theirs), image_size)
        assert (out_dir / 'vis' / Path(mine['image']).name).is_file()


def tensors(state):
    """The tensors of nested dicts, by sorted key."""
    if isinstance(state, torch.Tensor):
        return [state]
    return [t for key in sorted(state) for t in tensors(state[key])]


def assert_same_tensors(a, b):
    for x, y in zip(tensors(a), tensors(b), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def differs(a, b):
    return any(not torch.equal(x, y)
               for x, y in zip(tensors(a), tensors(b), strict=True))


class EpochStates(Hook):
    """The model's, EMA model's and optimizer's state at the start of each
    epoch (after the hooks before it, a reload included) and at its end, and
    the metrics of each validation."""

    priority = 'VERY_LOW'

    def __init__(self):
        self.starts, self.ends, self.metrics = {}, {}, []

    @staticmethod
    def state(runner):
        [ema] = [h for h in runner.hooks if isinstance(h, EMAHook)]
        return copy.deepcopy(
            dict(model=runner.model.state_dict(),
                 ema=ema.ema_model.state_dict(),
                 optimizer=runner.optim_wrapper.state_dict()['state']))

    def before_train_epoch(self, runner):
        self.starts[runner.epoch] = self.state(runner)

    def after_train_epoch(self, runner):
        # Before the loop counts the epoch.
        self.ends[runner.epoch] = self.state(runner)

    def after_val_epoch(self, runner, metrics=None):
        self.metrics.append(dict(metrics))


def reloads(cfg):
    """The ``stop_epoch`` of each ReloadBestStage1Hook of a config: D-FINE's
    and DEIM's DetSolver.fit load best_stg1.pth at ``collate_fn.stop_epoch``.
    """
    return [h.stop_epoch for h in cfg.custom_hooks
            if h.type == 'ReloadBestStage1Hook']


def policy(cfg):
    """The epochs of a config's pipeline switches and their pipelines."""
    hooks = [h for h in cfg.custom_hooks if h.type == 'PipelineSwitchHook']
    return ([h.switch_epoch for h in hooks],
            [h.switch_pipeline for h in hooks])
