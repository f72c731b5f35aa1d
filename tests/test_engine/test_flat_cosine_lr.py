# Copyright (c) OpenMMLab. All rights reserved.
"""FlatCosineLR gives every iteration the lr DEIM trains it with."""
import math

import pytest
import torch
from mmdet.registry import PARAM_SCHEDULERS
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

BASE_LRS = (2e-4, 2e-5)  # DEIM's R50 configs: the rest and the backbone


def deim_formula(total_iter, warmup_iter, flat_iter, no_aug_iter,
                 current_iter, init_lr, min_lr):
    """``flat_cosine_schedule`` of DEIM's engine/optim/lr_scheduler.py
    (Intellindust-AI-Lab/DEIM, commit 09d35d53d39e), written out here."""
    if current_iter <= warmup_iter:
        return init_lr * (current_iter / float(warmup_iter))**2
    if current_iter <= flat_iter:
        return init_lr
    if current_iter >= total_iter - no_aug_iter:
        return min_lr
    cosine_decay = 0.5 * (1 + math.cos(
        math.pi * (current_iter - flat_iter) /
        (total_iter - flat_iter - no_aug_iter)))
    return min_lr + (init_lr - min_lr) * cosine_decay


def deim_training_lrs(iter_per_epoch, epochs, warmup_iter, flat_epoch,
                      no_aug_epoch, lr_gamma, base_lr):
    """The lr each iteration of a DEIM run trains with, per its engine.

    DEIM's configs build RT-DETR's LinearWarmup (engine/optim/warmup.py,
    configs/base/rt_optimizer.yml: warmup_duration 2000 = warmup_iter),
    which sets the lr to base / warmup_duration once when built; with
    ``lrsheduler: flatcosine`` it is never stepped again. train_one_epoch
    (engine/solver/det_engine.py) then calls
    ``FlatCosineLRScheduler.step(epoch * len(loader) + i)`` after each
    optimizer step, which sets the formula's lr for the next iteration.
    """
    total = int(iter_per_epoch * epochs)
    flat = int(iter_per_epoch * flat_epoch)
    no_aug = int(iter_per_epoch * no_aug_epoch)
    lr = base_lr / warmup_iter
    used = []
    for current_iter in range(total):
        used.append(lr)
        lr = deim_formula(total, warmup_iter, flat, no_aug, current_iter,
                          base_lr, base_lr * lr_gamma)
    return used


def deim_lrs(**schedule):
    """Per iteration, the lr of each group of ``BASE_LRS``."""
    per_group = [deim_training_lrs(base_lr=lr, **schedule) for lr in BASE_LRS]
    return [list(lrs) for lrs in zip(*per_group)]


def optimizer():
    return torch.optim.SGD([
        dict(params=[torch.nn.Parameter(torch.zeros(2))], lr=BASE_LRS[0]),
        dict(params=[torch.nn.Parameter(torch.zeros(2))], lr=BASE_LRS[1]),
    ])


def scheduler(optim, epoch_length, epochs, **kwargs):
    """Built as the Runner builds a config's ``param_scheduler``."""
    return PARAM_SCHEDULERS.build(
        dict(type='FlatCosineLR', end=epochs, convert_to_iter_based=True,
             **kwargs),
        default_args=dict(optimizer=optim, epoch_length=epoch_length))


def run(optim, sched, iters):
    lrs = []
    for _ in range(iters):
        lrs.append([group['lr'] for group in optim.param_groups])
        optim.step()
        sched.step()
    return lrs


# 20 epochs of 5 iterations: flat_epoch = 4 + 20 / 2 as in DEIM's configs.
SCHEDULE = dict(warmup_iter=12, flat_epoch=14, no_aug_epoch=2, lr_gamma=0.5)


def test_every_iteration_matches_deim():
    optim = optimizer()
    got = run(optim, scheduler(optim, 5, 20, **SCHEDULE), 100)
    want = deim_lrs(iter_per_epoch=5, epochs=20, **SCHEDULE)
    assert got == want

    base, backbone = zip(*got)
    lr, gamma = BASE_LRS[0], 0.5
    assert base[0] == lr / 12  # LinearWarmup's first step
    assert base[1] == 0  # the formula at iteration 0
    assert base[2] == lr * (1 / 12)**2
    assert base[12] < lr == base[13]  # end of warm-up (n = 12)
    assert base[71] == lr > base[72]  # the last flat one (n = 70), cosine
    assert base[90] > lr * gamma == base[91] == base[99]  # no-aug (n = 90)
    assert list(base[72:91]) == sorted(base[72:91], reverse=True)
    # One schedule for every group, from its own base lr.
    assert all(b == pytest.approx(10 * g, rel=1e-12)
               for b, g in zip(base, backbone))


def test_resume_gives_the_same_sequence():
    optim = optimizer()
    whole = run(optim, scheduler(optim, 5, 20, **SCHEDULE), 100)

    optim = optimizer()
    sched = scheduler(optim, 5, 20, **SCHEDULE)
    first = run(optim, sched, 61)  # stop in the flat phase, mid-epoch
    optim_state, sched_state = optim.state_dict(), sched.state_dict()
    # As the Runner resumes: build anew, then load both states.
    optim = optimizer()
    sched = scheduler(optim, 5, 20, **SCHEDULE)
    optim.load_state_dict(optim_state)
    sched.load_state_dict(sched_state)
    assert first + run(optim, sched, 39) == whole


def test_lr_gamma_one_is_warmup_then_flat():
    """DEIM's RT-DETRv2 baselines (configs/base/rtdetrv2_r50vd.yml)."""
    schedule = dict(warmup_iter=4, flat_epoch=4000000, no_aug_epoch=0,
                    lr_gamma=1)
    optim = optimizer()
    got = run(optim, scheduler(optim, 3, 4, **schedule), 12)
    assert got == deim_lrs(iter_per_epoch=3, epochs=4, **schedule)
    assert got[5:] == [list(BASE_LRS)] * 7


@pytest.mark.parametrize('kwargs, message', [
    (dict(end=5), 'convert_to_iter_based=True'),
    (dict(by_epoch=False), 'needs end'),
    (dict(by_epoch=False, end=5, warmup_iter=0), 'warmup_iter >= 1'),
])
def test_bad_settings_say_what_to_do(kwargs, message):
    cfg = dict(type='FlatCosineLR', warmup_iter=2, flat_iter=3,
               no_aug_iter=1)
    cfg.update(kwargs)
    with pytest.raises(ValueError, match=message):
        PARAM_SCHEDULERS.build(cfg, default_args=dict(optimizer=optimizer()))


class Points(Dataset):

    def __len__(self):
        return 6

    def __getitem__(self, idx):
        return dict(inputs=torch.full((2, ), float(idx)))


class TinyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Linear(2, 2)
        self.head = torch.nn.Linear(2, 1)

    def forward(self, inputs, mode='tensor'):
        out = self.head(self.backbone(inputs))
        return dict(loss=out.square().mean()) if mode == 'loss' else out


class RecordLR(Hook):

    def __init__(self):
        self.lrs, self.logged = [], []

    def after_train_iter(self, runner, batch_idx, data_batch, outputs):
        # Before the schedulers step: the lr this iteration trained with.
        self.lrs.append(
            [group['lr'] for group in runner.optim_wrapper.param_groups])
        self.logged.append(MessageHub.get_current_instance().get_scalar(
            'train/lr').current())


def train(work_dir, max_epochs, resume=False):
    """3 iterations per epoch; the schedule spans 4 epochs."""
    record = RecordLR()
    Runner(
        model=TinyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=Points(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            batch_size=2,
            num_workers=0),
        optim_wrapper=dict(
            optimizer=dict(type='AdamW', lr=BASE_LRS[0]),
            paramwise_cfg=dict(custom_keys=dict(backbone=dict(lr_mult=0.1)))),
        param_scheduler=[
            dict(type='FlatCosineLR', warmup_iter=2, flat_epoch=2,
                 no_aug_epoch=1, lr_gamma=0.5, end=4,
                 convert_to_iter_based=True)
        ],
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        custom_hooks=[record],
        resume=resume,
        default_scope='mmdet').train()
    return record


def test_runner_trains_with_deim_lrs(tmp_path):
    want = deim_lrs(iter_per_epoch=3, epochs=4, warmup_iter=2, flat_epoch=2,
                    no_aug_epoch=1, lr_gamma=0.5)
    record = train(tmp_path, max_epochs=4)
    # mmengine makes a group per parameter: two lrs, the backbone's (lr_mult
    # 0.1) the smaller, and its group first, whose lr is the logged one.
    assert all(len(set(lrs)) <= 2 for lrs in record.lrs)
    assert [[max(lrs), min(lrs)] for lrs in record.lrs] == want
    assert [lrs[0] for lrs in record.lrs] == record.logged

    first = train(tmp_path / 'resumed', max_epochs=2)
    rest = train(tmp_path / 'resumed', max_epochs=4, resume=True)
    assert first.lrs + rest.lrs == record.lrs
