# Copyright (c) OpenMMLab. All rights reserved.
"""Helpers of the bad-input tests, which check that bad input ends in one
clear error naming the problem and the fix and that nothing a user had is
lost. They run for real on the ``tiny`` detector of ``tests/conftest.py``:
configs built by the registry, checkpoints loaded by mmengine's loader,
datasets on files on disk, the tools as subprocesses.

:func:`assert_same_predictions` compares the outputs of two inference
backends."""
import hashlib
import subprocess
import sys
from pathlib import Path

import torch

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
