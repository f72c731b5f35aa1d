# Copyright (c) OpenMMLab. All rights reserved.
"""frozen_stages and norm_eval under the real Runner: after training, the
frozen weights and every backbone BN statistic are bit-identical to the
start, and the optimizer holds no state for them."""
import copy
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.runner import Runner
from torch import nn

ROOT = Path(__file__).parents[2]
ITERS = 3


def test_frozen_stages_and_norm_eval_hold_under_the_runner(tmp_path):
    cfg = Config.fromfile(ROOT / 'configs/demo/rtdetr_riformer_s12_shapes.py')
    cfg.merge_from_dict({
        'model.backbone.frozen_stages': 2,
        'model.backbone.norm_eval': True,
        'model.backbone.norm_cfg': dict(type='BN'),
        'train_dataloader.batch_size': 2,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_dataloader.dataset.data_root': f'{tmp_path}/data/',
        'train_dataloader.dataset.num_images': 4,
        'train_dataloader.dataset.image_size': (160, 160),
        'optim_wrapper.optimizer.lr': 1e-2,
    })
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=ITERS)
    cfg.param_scheduler = []
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint = None
    cfg.work_dir = str(tmp_path / 'work_dir')
    runner = Runner.from_cfg(cfg)
    backbone = runner.model.backbone
    frozen = [backbone.patch_embed, *backbone.network[:3], backbone.norm2]
    before = copy.deepcopy(backbone.state_dict())
    runner.train()

    after = backbone.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    # Frozen stages keep every weight and statistic; with norm_eval the
    # later BNs keep their statistics too, while their weights train.
    assert not {k for k in changed
                if k.split('.')[0] in ('patch_embed', 'norm2')
                or k.startswith(('network.0.', 'network.1.', 'network.2.'))}
    assert not {k for k in changed if k.endswith(('running_mean',
                                                  'running_var'))}
    assert any(k.startswith('network.6.') for k in changed)  # it trained
    bns = [m for m in backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(not bn.training for bn in bns)

    optimizer = runner.optim_wrapper.optimizer
    frozen_params = {id(p) for m in frozen for p in m.parameters()}
    assert frozen_params
    assert not any(id(p) in frozen_params for p in optimizer.state)
    assert any(p is backbone.network[6][0].mlp.fc1.weight
               for p in optimizer.state)
