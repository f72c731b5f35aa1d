# Copyright (c) OpenMMLab. All rights reserved.
"""Fold a trained model into its deploy form and save the checkpoint.

Example::

    python tools/model_converters/reparameterize.py \\
        configs/riformer/riformer-s24_8xb128_in1k.py train.pth deploy.pth \\
        --deploy-config configs/riformer/riformer-s24-deploy_8xb128_in1k.py

Every module with ``switch_to_deploy()`` (RIFormer blocks, reparameterizable
conv blocks) is folded. ``--deploy-config`` builds the deploy model and loads
the result strictly, so a mismatch shows here and not at test time.

The output is checked before the work: its folder must exist, and an
existing file is replaced only with ``--force`` (never the input
checkpoint). It is written only once it is complete and checked.
"""
import argparse
import pickle
import sys

from mmengine.config import DictAction

from mmriformer.apis import reparameterize


def parse_args():
    parser = argparse.ArgumentParser(
        description='Reparameterize a checkpoint into its deploy form.')
    parser.add_argument('config', help='config of the trained (train-form) '
                        'model')
    parser.add_argument('checkpoint', help='train-form checkpoint')
    parser.add_argument('out', help='where to write the deploy checkpoint')
    parser.add_argument(
        '--deploy-config',
        help='deploy config to check the result against (strict load)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of both configs, as in mim train, e.g. '
        'model.backbone.arch=s24')
    parser.add_argument('--force', action='store_true',
                        help='replace an existing OUT')
    return parser.parse_args()


def main():
    args = parse_args()
    try:
        reparameterize(args.config, args.checkpoint, args.out,
                       args.deploy_config, args.cfg_options, args.force)
    except (FileNotFoundError, ValueError, pickle.UnpicklingError) as e:
        sys.exit(f'error: {e}')


if __name__ == '__main__':
    main()
