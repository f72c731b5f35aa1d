# Copyright (c) OpenMMLab. All rights reserved.
"""A hook that saves each process's model weights at the start of one
epoch, after every other hook, so a test can compare the ranks. Imported
by a test config through ``custom_imports``."""
import os.path as osp

import torch
from mmdet.registry import HOOKS
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper


@HOOKS.register_module()
class RankStateHook(Hook):
    """Save the model's state dict to ``<work_dir>/rank<r>_epoch<e>.pth``
    at the start of epoch ``epoch`` (0-based)."""

    priority = 'LOWEST'

    def __init__(self, epoch: int):
        self.epoch = epoch

    def before_train_epoch(self, runner) -> None:
        if runner.epoch != self.epoch:
            return
        model = runner.model
        model = model.module if is_model_wrapper(model) else model
        torch.save(
            model.state_dict(),
            osp.join(runner.work_dir,
                     f'rank{get_rank()}_epoch{self.epoch}.pth'))
