# Copyright (c) OpenMMLab. All rights reserved.
"""DEIM's flat-cosine learning rate schedule as an mmengine scheduler."""
import math

from mmdet.registry import PARAM_SCHEDULERS
from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler


@PARAM_SCHEDULERS.register_module()
class FlatCosineLR(LRSchedulerMixin, _ParamScheduler):
    """Quadratic warm-up, flat, cosine down to ``lr_gamma`` times the base
    lr, then constant: DEIM's ``FlatCosineLRScheduler``.

    Every parameter group follows the schedule from its own base lr, so the
    ratios between groups (a backbone's lr multiplier) hold throughout, as in
    DEIM. With ``n = step - 1``, ``T`` the schedule's length, ``F`` and
    ``A`` the flat and no-aug iterations, training step ``step`` (counted
    from ``begin``) uses

    - ``base / warmup_iter`` at step 0,
    - ``base * (n / warmup_iter) ** 2`` while ``n <= warmup_iter``,
    - ``base`` while ``n <= F``,
    - ``base * lr_gamma`` once ``n >= T - A`` (the no-aug epochs),
    - the cosine from ``base`` at ``n = F`` to ``base * lr_gamma`` at
      ``n = T - A`` in between.

    The shift by one step is DEIM's: its engine sets the lr after each
    optimizer step from the index of the step just taken. Step 0 uses the lr
    that RT-DETR's ``LinearWarmup`` of DEIM's configs (``warmup_duration``
    2000, the same as ``warmup_iter``) sets when it is built; it is never
    stepped after that.

    In configs, give ``flat_epoch``, ``no_aug_epoch`` and ``end`` (the
    number of training epochs) in epochs with ``convert_to_iter_based=True``;
    :meth:`build_iter_from_epoch` converts them with the dataloader's length
    as DEIM does (``int(epochs * iters_per_epoch)``). mmengine's and
    mmdet's schedulers cannot be composed into this exactly: their quadratic
    warm-up and cosine are recursive, so their floats differ from DEIM's
    (by about 1e-15 relative), and none gives steps 0 and 1
    (``base / warmup_iter``, then 0).

    Args:
        optimizer (Optimizer or OptimWrapper): Wrapped optimizer.
        warmup_iter (int): Iterations of the quadratic warm-up (DEIM: 2000).
        flat_iter (int): Iterations from ``begin`` to the end of the flat
            phase (warm-up included).
        no_aug_iter (int): Iterations at the minimum lr at the end.
        lr_gamma (float): The minimum lr as a fraction of the base lr.
            Defaults to 0.5 (DEIM's configs).
        begin (int): Step at which the schedule starts. Defaults to 0.
        end (int): Step at which it ends: ``begin`` plus its length.
        last_step (int): The index of the last step, for resuming without
            a state dict. Defaults to -1.
        by_epoch (bool): Must be False, since the lr changes every
            iteration; ``convert_to_iter_based=True`` sets it. Defaults to
            True, as mmengine's schedulers, so a config that gives epochs
            without the conversion is refused.
        verbose (bool): Whether to print the lr for each update.
            Defaults to False.
    """

    def __init__(self,
                 optimizer,
                 warmup_iter: int,
                 flat_iter: int,
                 no_aug_iter: int,
                 lr_gamma: float = 0.5,
                 begin: int = 0,
                 end: int = INF,
                 last_step: int = -1,
                 by_epoch: bool = True,
                 verbose: bool = False):
        if by_epoch:
            raise ValueError(
                'FlatCosineLR sets the lr every iteration: give '
                'convert_to_iter_based=True with flat_epoch, no_aug_epoch '
                'and end in epochs, or by_epoch=False with flat_iter, '
                'no_aug_iter and end in iterations.')
        if end == INF:
            raise ValueError(
                'FlatCosineLR needs end: the last step of training (with '
                'convert_to_iter_based=True, the number of epochs, '
                'train_cfg.max_epochs).')
        if not (isinstance(warmup_iter, int) and warmup_iter >= 1):
            raise ValueError(f'FlatCosineLR needs warmup_iter >= 1 (an int); '
                             f'got {warmup_iter!r}.')
        if flat_iter < 0 or no_aug_iter < 0:
            raise ValueError(
                f'FlatCosineLR needs flat and no-aug lengths >= 0; got '
                f'flat_iter={flat_iter}, no_aug_iter={no_aug_iter}.')
        # Set before super().__init__(), which computes the first lr.
        self.warmup_iter = warmup_iter
        self.flat_iter = flat_iter
        self.no_aug_iter = no_aug_iter
        self.lr_gamma = lr_gamma
        self.total_iter = end - begin
        super().__init__(
            optimizer,
            begin=begin,
            end=end,
            last_step=last_step,
            by_epoch=by_epoch,
            verbose=verbose)

    @classmethod
    def build_iter_from_epoch(cls,
                              *args,
                              flat_epoch,
                              no_aug_epoch,
                              begin=0,
                              end=INF,
                              by_epoch=True,
                              epoch_length=None,
                              **kwargs):
        """Build the scheduler from epoch counts (``convert_to_iter_based``).

        Args:
            flat_epoch (float): Epochs to the end of the flat phase (DEIM:
                ``4 + epochs / 2``).
            no_aug_epoch (float): Epochs at the minimum lr at the end.
            begin (float): Epoch at which the schedule starts.
            end (float): Epoch at which it ends (the number of epochs).
            by_epoch (bool): True: these counts are in epochs (mmengine's
                builder converts only such configs).
            epoch_length (int): Iterations per epoch (given by the Runner).
            *args, **kwargs: The other arguments of :class:`FlatCosineLR`.

        Returns:
            FlatCosineLR: The iteration-based scheduler.
        """
        return cls(
            *args,
            flat_iter=int(flat_epoch * epoch_length),
            no_aug_iter=int(no_aug_epoch * epoch_length),
            begin=int(begin * epoch_length),
            end=end if end == INF else int(end * epoch_length),
            by_epoch=False,
            **kwargs)

    def _get_value(self):
        """The lr of every parameter group at step ``self.last_step``."""
        return [self._lr(base_lr) for base_lr in self.base_values]

    def _lr(self, base_lr):
        # The operations in DEIM's order, so the floats are the same.
        if self.last_step == 0:
            return base_lr / self.warmup_iter
        n = self.last_step - 1
        if n <= self.warmup_iter:
            return base_lr * (n / float(self.warmup_iter))**2
        if n <= self.flat_iter:
            return base_lr
        min_lr = base_lr * self.lr_gamma
        if n >= self.total_iter - self.no_aug_iter:
            return min_lr
        decay = 0.5 * (1 + math.cos(
            math.pi * (n - self.flat_iter) /
            (self.total_iter - self.flat_iter - self.no_aug_iter)))
        return min_lr + (base_lr - min_lr) * decay
