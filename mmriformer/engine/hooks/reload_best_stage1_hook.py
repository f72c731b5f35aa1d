# Copyright (c) OpenMMLab. All rights reserved.
"""D-FINE's and DEIM's return to the best state before ``stop_epoch``."""
import os
import os.path as osp
from typing import Dict, Optional

import torch
from mmdet.registry import HOOKS
from mmengine.dist import barrier, is_main_process
from mmengine.hooks import EMAHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop

INFO_KEY = 'reload_best_stage1'


def improves(best: Optional[float], score: float) -> bool:
    """Whether a validation sets a new best: DEIM's strict ``>``, and any
    score after a reset (``best`` None)."""
    return best is None or score > best


def validates_after(loop, epochs: int) -> bool:
    """Whether mmengine's ``EpochBasedTrainLoop`` validates after its
    ``epochs``-th epoch (its rule in ``run``)."""
    return epochs >= loop.val_begin and (epochs % loop.val_interval == 0
                                         or epochs == loop.max_epochs)


@HOOKS.register_module()
class ReloadBestStage1Hook(Hook):
    """Go back to the best state before ``stop_epoch``, as D-FINE's and
    DEIM's solvers do.

    Their ``DetSolver.fit`` (``src/solver/det_solver.py`` of
    Peterande/D-FINE, ``engine/solver/det_solver.py`` of DEIM) keeps the
    state of the best validation before ``stop_epoch``, the epoch from which
    they train without augmentation (``best_stg1.pth``). At the start of
    ``stop_epoch`` they load that state, and after each later validation
    that does not beat the best since the last load (at first the best
    before ``stop_epoch``) they load it again. This hook does the same:

    - after each validation before ``stop_epoch`` that beats the ones before
      it, it saves the model's training weights, the EMA model (with its
      update count) and the optimizer's state to ``best_stage1.pth`` in the
      work dir;
    - it loads them at the start of epoch ``stop_epoch``, and after each
      later validation that does not improve on the best since the last
      load, unless no epoch follows.

    The epoch and iteration counters, the parameter schedulers and each
    parameter group's hyperparameters (the lr the schedule set) stay: DEIM's
    lr, computed from the iteration, goes on, and D-FINE's is constant by
    then. The solvers also lower the EMA's ``decay`` attribute by 1e-4 at
    each load, which their ``ModelEMA`` never reads; that is not reproduced.

    The hook's record (the best score since the last load, the last
    validated epoch, and the epoch and score saved) lives in the message
    hub, so it is in every checkpoint. mmengine saves a checkpoint before
    the epoch's validation; on resume the hook validates that epoch once
    more, as the solvers do on resume, so that its decision is the
    uninterrupted run's.

    Args:
        stop_epoch (int): The solvers' ``stop_epoch`` (0-based): D-FINE's
            ``collate_fn.stop_epoch``, DEIM's ``max_epochs -
            no_aug_epoch``.
        metric (str): The validation metric to compare. Defaults to
            ``'coco/bbox_mAP'``, their AP.
    """

    # After EMAHook (ABOVE_NORMAL) has swapped the training weights back
    # after a validation.
    priority = 'LOW'

    def __init__(self, stop_epoch: int, metric: str = 'coco/bbox_mAP'):
        if not isinstance(stop_epoch, int) or stop_epoch < 1:
            raise ValueError(
                f'stop_epoch must be an int >= 1 (an epoch must validate '
                f'before it), got {stop_epoch!r}')
        self.stop_epoch = stop_epoch
        self.metric = metric
        self.path = None  # set in training only

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        if not isinstance(loop, EpochBasedTrainLoop):
            raise TypeError(
                f'ReloadBestStage1Hook works by epoch: it needs '
                f'EpochBasedTrainLoop (train_cfg.by_epoch=True), got '
                f'{type(loop).__name__}')
        if runner.val_loop is None or loop.val_begin > self.stop_epoch:
            raise ValueError(
                f'ReloadBestStage1Hook needs a validation before stop_epoch '
                f'{self.stop_epoch}: set val_dataloader, val_evaluator and '
                f'train_cfg.val_begin <= {self.stop_epoch}, or remove the '
                f'hook from custom_hooks')
        if self.stop_epoch >= loop.max_epochs:
            raise ValueError(
                f'ReloadBestStage1Hook: stop_epoch {self.stop_epoch} must be '
                f'below max_epochs {loop.max_epochs}, or no epoch goes back '
                f'to the best state: remove the hook (deim_changes: '
                f'reload_best_stage1=False)')
        self.path = osp.join(runner.work_dir, 'best_stage1.pth')
        if (runner.epoch > 0 and validates_after(loop, runner.epoch)
                and self._record(runner)['epoch'] < runner.epoch - 1):
            # Resumed from the checkpoint saved before this validation.
            runner.val_loop.run()

    def before_train_epoch(self, runner) -> None:
        if runner.epoch == self.stop_epoch:
            self._load(runner, self._record(runner))

    def after_val_epoch(self,
                        runner,
                        metrics: Optional[Dict[str, float]] = None) -> None:
        if self.path is None:
            return  # a validation outside training
        if not metrics or self.metric not in metrics:
            raise KeyError(
                f'ReloadBestStage1Hook compares {self.metric!r}, not among '
                f'the validation metrics {sorted(metrics or {})}: set its '
                f'metric to one of them')
        record = self._record(runner)
        epoch, score = runner.epoch - 1, float(metrics[self.metric])
        if epoch <= record['epoch']:
            return  # validated already
        better = improves(record['best'], score)
        record.update(
            epoch=epoch, best=score if better else record['best'])
        if epoch < self.stop_epoch:
            if better:
                # What marks the saved state as this run's.
                record['saved'] = [epoch, score]
                self._save(runner, record['saved'])
        elif not better:
            record['best'] = None
            if runner.epoch < runner.max_epochs:
                self._load(runner, record)
        runner.message_hub.update_info(INFO_KEY, record)

    @staticmethod
    def _record(runner) -> dict:
        return dict(
            runner.message_hub.get_info(
                INFO_KEY, dict(epoch=-1, best=None, saved=None)))

    @staticmethod
    def _ema_model(runner):
        emas = [hook for hook in runner.hooks if isinstance(hook, EMAHook)]
        return emas[0].ema_model if emas else None

    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def _save(self, runner, saved: list) -> None:
        if is_main_process():
            ema = self._ema_model(runner)
            state = dict(
                saved=saved,
                model=self._model(runner).state_dict(),
                ema=ema.state_dict() if ema is not None else None,
                optimizer=runner.optim_wrapper.state_dict())
            # Replaced whole: a run stopped mid-write keeps the last one.
            torch.save(state, self.path + '.tmp')
            os.replace(self.path + '.tmp', self.path)
        barrier()

    def _load(self, runner, record: dict) -> None:
        if record['saved'] is None:
            raise RuntimeError(
                f'ReloadBestStage1Hook: this run validated nothing before '
                f'stop_epoch {self.stop_epoch}, so it has no best state to '
                f'go back to: validate before it (train_cfg.val_interval)')
        epoch, score = record['saved']
        if not osp.isfile(self.path):
            raise FileNotFoundError(
                f'ReloadBestStage1Hook: the state of epoch {epoch} is not at '
                f'{self.path}: resume in the work dir that holds it')
        state = torch.load(self.path, map_location='cpu')
        if state['saved'] != [epoch, score]:
            raise RuntimeError(
                f'ReloadBestStage1Hook: {self.path} holds the state of epoch '
                f'{state["saved"][0]} with {self.metric} '
                f'{state["saved"][1]}, not the one this run saved (epoch '
                f'{epoch}, {score}): another run wrote it; resume in this '
                f'run\'s work dir')
        self._model(runner).load_state_dict(state['model'])
        ema = self._ema_model(runner)
        if ema is not None:
            ema.load_state_dict(state['ema'])
        groups = [{k: v for k, v in group.items() if k != 'params'}
                  for group in runner.optim_wrapper.param_groups]
        runner.optim_wrapper.load_state_dict(state['optimizer'])
        for group, hyper in zip(runner.optim_wrapper.param_groups, groups):
            group.update(hyper)
        runner.logger.info(
            f'ReloadBestStage1Hook: loaded the best state before stop_epoch '
            f'{self.stop_epoch} from {self.path}')
