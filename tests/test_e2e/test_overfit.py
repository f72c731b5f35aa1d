# Copyright (c) OpenMMLab. All rights reserved.
"""Proof that the detector learns: the demo model, trained from scratch with
the real mmdet Runner, overfits four images (about 2 minutes on 2 cores), in
float32 and in bfloat16 mixed precision alike."""
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.runner import Runner
from overfit_config import ITERS, ROOT, overfit_config


@pytest.mark.slow
@pytest.mark.parametrize('optim_wrapper',
                         ['OptimWrapper', 'AutocastOptimWrapper'])
def test_tiny_model_overfits_four_images(tmp_path, optim_wrapper):
    cfg = overfit_config(tmp_path, optim_wrapper)
    runner = Runner.from_cfg(cfg)
    runner.train()

    losses = runner.message_hub.get_scalar('train/loss').data[0]
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    mAP = runner.message_hub.get_scalar('val/coco/bbox_mAP').current()
    assert np.isfinite(losses).all()
    print(f'{optim_wrapper}: loss {first:.2f} -> {last:.2f} '
          f'({first / last:.1f}x), '
          f'mAP {mAP:.3f} after {ITERS} iterations')
    assert first / last >= 4
    assert mAP >= 0.9


def test_num_classes_must_match_the_dataset(tmp_path):
    cfg = Config.fromfile(ROOT / 'configs/demo/rtdetr_riformer_s12_shapes.py')
    cfg.merge_from_dict({
        'work_dir': str(tmp_path / 'work_dir'),
        'model.bbox_head.num_classes': 5,  # the dataset has 6
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_dataloader.dataset.data_root': str(tmp_path / 'data'),
        'train_dataloader.dataset.num_images': 2,
    })
    for key in ('val_dataloader', 'val_evaluator', 'val_cfg',
                'test_dataloader', 'test_evaluator', 'test_cfg'):
        cfg.pop(key)
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(AssertionError, match=r'`num_classes` \(5\)'):
        runner.train()
