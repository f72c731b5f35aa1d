# Copyright (c) OpenMMLab. All rights reserved.
"""ReloadBestStage1Hook goes back to the best state before stop_epoch when
D-FINE's and DEIM's solvers (DetSolver.fit) do, in a real Runner with an
EMA, an lr schedule and a resume."""
import itertools

import pytest
import torch
from helpers import EpochStates, assert_same_tensors, differs
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

from mmriformer.engine import ReloadBestStage1Hook

STOP_EPOCH, MAX_EPOCHS = 3, 6
# The validation score after each epoch, and what DetSolver.fit does with
# it: e0 first best, saved; e1 better, saved; e2 ties, not saved (a strict
# >); load e1's state at the start of e3; e3 below e1: load it again for
# e4; e4 after the load: the new best, no load; e5 worse, but no epoch
# follows.
SCORES = [0.1, 0.3, 0.3, 0.25, 0.22, 0.1]
STARTS_FROM = {3: 1, 4: 1}  # epoch: the epoch whose end state it starts at
RUNNERS = itertools.count()


class Points(Dataset):

    def __init__(self):
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(8, 2, generator=generator)
        self.y = torch.randn(8, 1, generator=generator)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], targets=self.y[i])


class Line(BaseModel):

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, targets=None, mode='tensor'):
        out = self.linear(inputs)
        if mode == 'loss':
            return dict(loss=((out - targets)**2).mean())
        return list(out)


class Scripted(BaseMetric):
    """The score of :data:`SCORES` for the epoch being validated."""

    def __init__(self):
        super().__init__()
        self.epoch = None

    def process(self, data_batch, data_samples):
        self.results.append(0)

    def compute_metrics(self, results):
        return dict(ap=SCORES[self.epoch])


class Record(EpochStates):
    """The states, and each iteration's lr; sets the epoch of the score."""

    def __init__(self):
        super().__init__()
        self.lrs = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.lrs.append(runner.optim_wrapper.param_groups[0]['lr'])

    def before_val_epoch(self, runner):
        runner.val_evaluator.metrics[0].epoch = runner.epoch - 1


def make_runner(work_dir,
                reload=True,
                max_epochs=MAX_EPOCHS,
                val_begin=1,
                metric='ap',
                train_cfg=None,
                **kwargs):
    loader = dict(
        dataset=Points(),
        sampler=dict(type='DefaultSampler', shuffle=False),
        batch_size=2,
        collate_fn=dict(type='default_collate'))
    hooks = [dict(type='EMAHook', momentum=0.1)]
    if reload:
        hooks.append(
            dict(type='ReloadBestStage1Hook', stop_epoch=STOP_EPOCH,
                 metric=metric))
    record = Record()
    runner = Runner(
        model=Line(),
        work_dir=str(work_dir),
        train_dataloader=loader,
        val_dataloader=loader,
        val_evaluator=Evaluator(Scripted()),
        train_cfg=train_cfg or dict(by_epoch=True, max_epochs=max_epochs,
                                    val_begin=val_begin),
        val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        param_scheduler=dict(
            type='LinearLR', start_factor=1.0, end_factor=0.1,
            by_epoch=False, begin=0, end=4 * MAX_EPOCHS),
        custom_hooks=hooks + [record],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=1)),
        randomness=dict(seed=0),
        default_scope='mmdet',
        # Runners made in the same second would share one message hub.
        experiment_name=f'reload_{next(RUNNERS)}',
        **kwargs)
    return runner, record


def test_loads_the_best_state_when_the_solvers_do(tmp_path):
    runner, record = make_runner(tmp_path)
    runner.train()
    for epoch in range(1, MAX_EPOCHS):
        source = STARTS_FROM.get(epoch, epoch - 1)
        # The model, the EMA model with its update count, and Adam's
        # moments and steps, as they were at the end of that epoch.
        assert_same_tensors(record.starts[epoch], record.ends[source])
        if source != epoch - 1:
            assert differs(record.starts[epoch], record.ends[epoch - 1])
    assert (tmp_path / 'best_stage1.pth').is_file()

    # The lr schedule goes on, iteration by iteration, as without the hook.
    plain, plain_record = make_runner(tmp_path / 'plain', reload=False)
    plain.train()
    assert record.lrs == plain_record.lrs
    assert differs(record.ends[MAX_EPOCHS - 1],
                   plain_record.ends[MAX_EPOCHS - 1])


def test_a_resume_takes_the_uninterrupted_course(tmp_path):
    whole, whole_record = make_runner(tmp_path / 'whole')
    whole.train()

    # Stopped after epoch 3 trained, before its validation (the load that
    # validation decides), then resumed from that epoch's checkpoint.
    work = tmp_path / 'stopped'
    first, _ = make_runner(work, max_epochs=4)
    first.train()
    resumed, record = make_runner(work, resume=True,
                                  load_from=str(work / 'epoch_4.pth'))
    resumed.train()
    assert_same_tensors(record.starts[4], whole_record.starts[4])
    assert_same_tensors(record.ends[MAX_EPOCHS - 1],
                whole_record.ends[MAX_EPOCHS - 1])


def test_bad_setups_are_named(tmp_path):
    runner, _ = make_runner(tmp_path / 'metric', metric='coco/bbox_mAP')
    with pytest.raises(KeyError, match="'coco/bbox_mAP'.*'ap'"):
        runner.train()

    runner, _ = make_runner(tmp_path / 'late', val_begin=STOP_EPOCH + 1)
    with pytest.raises(ValueError, match='validation before stop_epoch 3'):
        runner.train()

    # A resume in another work dir, without the saved state.
    work = tmp_path / 'stopped'
    make_runner(work, max_epochs=STOP_EPOCH + 1)[0].train()
    elsewhere, _ = make_runner(tmp_path / 'elsewhere', resume=True,
                               load_from=str(work / f'epoch_{STOP_EPOCH}.pth'))
    with pytest.raises(FileNotFoundError, match='state of epoch 1 is not'):
        elsewhere.train()

    # The saved state overwritten by another run in the same work dir.
    state = torch.load(work / 'best_stage1.pth')
    torch.save(dict(state, saved=[1, 0.5]), work / 'best_stage1.pth')
    resumed, _ = make_runner(work, resume=True,
                             load_from=str(work / f'epoch_{STOP_EPOCH}.pth'))
    with pytest.raises(RuntimeError, match='another run wrote it'):
        resumed.train()

    # No validation before stop_epoch: an earlier run's state (in the work
    # dir) is not taken for this run's.
    runner, _ = make_runner(work, train_cfg=dict(
        by_epoch=True, max_epochs=MAX_EPOCHS, val_interval=MAX_EPOCHS))
    with pytest.raises(RuntimeError, match='validated nothing before'):
        runner.train()

    runner, _ = make_runner(tmp_path / 'short', max_epochs=STOP_EPOCH)
    with pytest.raises(ValueError, match='must be below max_epochs 3'):
        runner.train()

    runner, _ = make_runner(
        tmp_path / 'iters', train_cfg=dict(by_epoch=False, max_iters=8))
    with pytest.raises(TypeError, match='needs EpochBasedTrainLoop'):
        runner.train()

    with pytest.raises(ValueError, match='stop_epoch must be an int >= 1'):
        ReloadBestStage1Hook(stop_epoch=0)
