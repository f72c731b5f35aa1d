# Copyright (c) OpenMMLab. All rights reserved.
"""A hook that kills its own training process with SIGKILL, as a preemption
or an out-of-memory killer would: no cleanup, no last checkpoint. Imported by
a test config through ``custom_imports``."""
import os
import signal

from mmdet.registry import HOOKS
from mmengine.hooks import Hook


@HOOKS.register_module()
class SigkillHook(Hook):
    """SIGKILL the process at the end of epoch ``after_epoch``, once the
    checkpoint hook (priority VERY_LOW) has saved it.

    Args:
        after_epoch (int): The epoch (1-based) after which to die.
    """

    priority = 'LOWEST'

    def __init__(self, after_epoch: int) -> None:
        self.after_epoch = after_epoch

    def after_train_epoch(self, runner) -> None:
        # The loop counts epochs from 0 and increments after this hook.
        if runner.epoch + 1 == self.after_epoch:
            os.kill(os.getpid(), signal.SIGKILL)
