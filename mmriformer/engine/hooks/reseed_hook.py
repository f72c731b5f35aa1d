# Copyright (c) OpenMMLab. All rights reserved.
"""Reseed the random generators from (seed, iteration) during training."""
import random

import numpy as np
import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook

ITERATION, EPOCH = 0, 1


def derived_seed(seed: int, iteration: int, kind: int) -> int:
    """A well-mixed 32-bit seed for one point of a run.

    Args:
        seed (int): The run's seed (``runner.seed``).
        iteration (int): The global training iteration.
        kind (int): :data:`ITERATION` or :data:`EPOCH`, so that the seed of
            an epoch's start differs from that of its first iteration.
    """
    return int(np.random.SeedSequence([seed, iteration, kind]).generate_state(
        1)[0])


def reseed(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@HOOKS.register_module()
class ReseedHook(Hook):
    """Make a resumed run draw the random numbers of the uninterrupted one.

    mmengine restores weights, optimizer, schedulers, EMA and counters on
    resume, but not the global random generators, so random augmentation,
    drop path and denoising noise take another course after a resume. This
    hook reseeds python, numpy and torch at the start of every epoch and
    every iteration from ``(runner.seed, iteration)``: what a run draws from
    then on depends only on where it is, not on how it got there.

    Exact for data loaded in the main process (``num_workers=0``) or by
    workers that start anew each epoch (``persistent_workers=False``).
    Persistent workers keep their own generators, which restart on resume.
    """

    priority = 'VERY_HIGH'

    def before_train_epoch(self, runner) -> None:
        reseed(derived_seed(runner.seed, runner.iter, EPOCH))

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        reseed(derived_seed(runner.seed, runner.iter, ITERATION))
