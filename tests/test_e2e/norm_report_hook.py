# Copyright (c) OpenMMLab. All rights reserved.
"""A hook that writes which normalisation layers the Runner trains, so a
test can see what ``sync_bn`` did. Imported by a test config through
``custom_imports``."""
import collections
import json
import os.path as osp

from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from torch import nn


@HOOKS.register_module()
class NormReportHook(Hook):
    """Write ``{class name: count}`` of the model's batch-norm layers to
    ``<work_dir>/norms.json`` before training."""

    def before_train(self, runner) -> None:
        counts = collections.Counter(
            type(m).__name__ for m in runner.model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm))
        with open(osp.join(runner.work_dir, 'norms.json'), 'w') as f:
            json.dump(counts, f)
