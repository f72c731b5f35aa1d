# Copyright (c) OpenMMLab. All rights reserved.
"""Fold a trained model into its deploy form and save the checkpoint.

Example::

    python tools/model_converters/reparameterize.py \\
        configs/riformer/riformer-s24_8xb128_in1k.py train.pth deploy.pth \\
        --deploy-config configs/riformer/riformer-s24-deploy_8xb128_in1k.py

Every module with ``switch_to_deploy()`` (RIFormer blocks, re-parameterisable
conv blocks) is folded. ``--deploy-config`` builds the deploy model and loads
the result strictly, so a mismatch shows here and not at test time.
"""
import argparse
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import load_checkpoint

from mmriformer.models import switch_to_deploy


def parse_args():
    parser = argparse.ArgumentParser(
        description='Re-parameterise a checkpoint into its deploy form.')
    parser.add_argument('config', help='config of the trained (train-form) '
                        'model')
    parser.add_argument('checkpoint', help='train-form checkpoint')
    parser.add_argument('out', help='where to write the deploy checkpoint')
    parser.add_argument(
        '--deploy-config',
        help='deploy config to check the result against (strict load)')
    return parser.parse_args()


def build_model(config: str):
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return MODELS.build(cfg.model)


def reparameterize(config: str, checkpoint: str, out: str,
                   deploy_config: str = None) -> None:
    """Load ``checkpoint`` into ``config``'s model, fold it, save to ``out``.

    Args:
        config (str): Config of the train-form model.
        checkpoint (str): Train-form checkpoint.
        out (str): Output path.
        deploy_config (str, optional): A deploy config that must load the
            result strictly.
    """
    model = build_model(config)
    ckpt = load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    switch_to_deploy(model.eval())
    meta = dict(ckpt.get('meta', {}), deploy=True,
                reparameterized_from=osp.basename(checkpoint))
    torch.save({'meta': meta, 'state_dict': model.state_dict()}, out)
    print(f'Saved the deploy checkpoint to {out}')
    if deploy_config:
        load_checkpoint(build_model(deploy_config), out, map_location='cpu',
                        strict=True)
        print(f'{deploy_config} loads it strictly')


def main():
    args = parse_args()
    reparameterize(args.config, args.checkpoint, args.out, args.deploy_config)


if __name__ == '__main__':
    main()
