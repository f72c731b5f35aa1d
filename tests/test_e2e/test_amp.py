# Copyright (c) OpenMMLab. All rights reserved.
"""Mixed precision: under autocast (bfloat16, and float16 as AmpOptimWrapper
runs it on GPUs) the box maths and losses stay in float32; a bfloat16
training step is finite; AutocastOptimWrapper refuses float16."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from mmriformer.apis import build_model

ROOT = Path(__file__).parents[2]


def demo_batch(model, tmp_path):
    from mmdet.registry import DATASETS
    from mmengine.dataset import pseudo_collate
    cfg = Config.fromfile(ROOT / 'configs/demo/rtdetr_riformer_s12_shapes.py')
    dataset = DATASETS.build(dict(
        cfg.train_dataloader.dataset, data_root=f'{tmp_path}/data/',
        num_images=2, image_size=(160, 160)))
    return model.data_preprocessor(
        pseudo_collate([dataset[0], dataset[1]]), True)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_box_maths_and_losses_stay_float32_under_autocast(tmp_path, dtype):
    model = build_model(
        ROOT / 'configs/demo/rtdetr_riformer_s12_shapes.py').train()
    with DefaultScope.overwrite_default_scope('mmdet'):
        data = demo_batch(model, tmp_path)
    seen = {}
    model.decoder.register_forward_hook(
        lambda module, args, out: seen.update(logits=out[0], boxes=out[1]))
    with torch.autocast('cpu', dtype=dtype):
        losses = model.loss(data['inputs'], data['data_samples'])
    assert seen['logits'].dtype == dtype  # the network runs in `dtype`
    assert seen['boxes'].dtype == torch.float32  # the boxes do not
    for name, loss in losses.items():
        assert loss.dtype == torch.float32 and torch.isfinite(loss), name
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_autocast_optim_wrapper_refuses_float16():
    model = torch.nn.Linear(2, 2)
    with DefaultScope.overwrite_default_scope('mmdet'), pytest.raises(
            ValueError, match="AmpOptimWrapper"):
        build_optim_wrapper(model, dict(
            type='AutocastOptimWrapper', dtype='float16',
            optimizer=dict(type='SGD', lr=0.1)))
