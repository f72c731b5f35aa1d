# Copyright (c) OpenMMLab. All rights reserved.
"""Fold a trained model into its deploy form and save the checkpoint.

Example::

    python tools/model_converters/reparameterize.py \\
        configs/riformer/riformer-s24_8xb128_in1k.py train.pth deploy.pth \\
        --deploy-config configs/riformer/riformer-s24-deploy_8xb128_in1k.py

Every module with ``switch_to_deploy()`` (RIFormer blocks, re-parameterisable
conv blocks) is folded. ``--deploy-config`` builds the deploy model and loads
the result strictly, so a mismatch shows here and not at test time.

The output is written only once it is complete (and checked): never over
the input checkpoint, and over an existing file only if that is a deploy
checkpoint this tool wrote (an earlier result).
"""
import argparse
import os
import os.path as osp
import pickle
import sys

import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import load_checkpoint
from mmengine.runner.checkpoint import (CheckpointLoader,
                                        _load_checkpoint_to_model)

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
    if not osp.isfile(config):
        raise FileNotFoundError(f'Config {config} does not exist; check '
                                f'the path.')
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return MODELS.build(cfg.model)


def is_deploy_form(ckpt: dict) -> bool:
    """Whether a loaded checkpoint holds deploy-form (folded) weights."""
    state = ckpt.get('state_dict', ckpt)
    return bool(ckpt.get('meta', {}).get('deploy')) or any(
        '.norm_reparam.' in key for key in state)


def check_out_path(checkpoint: str, out: str) -> None:
    """Raise if writing ``out`` could destroy something the user has.

    Args:
        checkpoint (str): The input checkpoint.
        out (str): The output path.

    Raises:
        ValueError: ``out`` is the input checkpoint, a folder, or an
            existing file that is not a deploy checkpoint of this tool.
    """
    if osp.isdir(out):
        raise ValueError(f'The output {out} is a folder; give a file path, '
                         f'e.g. {osp.join(out, "deploy.pth")}.')
    if not osp.exists(out):
        return
    if osp.exists(checkpoint) and osp.samefile(checkpoint, out):
        raise ValueError(
            f'The output {out} is the input checkpoint {checkpoint}; it is '
            f'not overwritten: give another output path, e.g. '
            f'{osp.splitext(out)[0]}_deploy.pth.')
    try:
        earlier = CheckpointLoader.load_checkpoint(out, map_location='cpu')
    except (ValueError, RuntimeError, EOFError, pickle.UnpicklingError):
        earlier = None
    if not (isinstance(earlier, dict) and 'reparameterized_from' in
            earlier.get('meta', {})):
        raise ValueError(
            f'The output {out} exists and is not a deploy checkpoint '
            f'written by this tool; it is not overwritten: give another '
            f'output path or remove the file.')
    print(f'Replacing {out}, the deploy checkpoint of an earlier run (from '
          f'{earlier["meta"]["reparameterized_from"]})')


def reparameterize(config: str, checkpoint: str, out: str,
                   deploy_config: str = None) -> None:
    """Load ``checkpoint`` into ``config``'s model, fold it, save to ``out``.

    Args:
        config (str): Config of the train-form model.
        checkpoint (str): Train-form checkpoint.
        out (str): Output path; its folder is made if missing.
        deploy_config (str, optional): A deploy config that must load the
            result strictly.

    Raises:
        FileNotFoundError: A config or the checkpoint does not exist.
        ValueError: The checkpoint does not fit the model, is already in
            deploy form, or ``out`` would replace something (see
            :func:`check_out_path`).
    """
    check_out_path(checkpoint, out)
    model = build_model(config)
    if deploy_config and not osp.isfile(deploy_config):
        raise FileNotFoundError(f'Deploy config {deploy_config} does not '
                                f'exist; check the path.')
    ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    if not isinstance(ckpt, dict):
        raise ValueError(f'{checkpoint} holds a {type(ckpt).__name__}, not '
                         f'a checkpoint dict of weights.')
    if is_deploy_form(ckpt):
        raise ValueError(
            f'{checkpoint} is already in deploy form; there is nothing to '
            f'convert: load it with the deploy config.')
    try:
        _load_checkpoint_to_model(model, ckpt, strict=True)
    except RuntimeError as e:
        raise ValueError(
            f'{checkpoint} does not fit the model of {config}: '
            f'{" ".join(str(e).split())[:600]}; give the config the '
            f'checkpoint was trained with.') from e
    switch_to_deploy(model.eval())
    meta = dict(ckpt.get('meta', {}), deploy=True,
                reparameterized_from=osp.basename(checkpoint))
    folder = osp.dirname(osp.abspath(out))
    if not osp.isdir(folder):
        os.makedirs(folder)
        print(f'Made the folder {folder}')
    # Written next to out and moved over it only when complete and checked,
    # so a failure leaves no partial file and no earlier file is lost.
    tmp = osp.join(folder, f'.{osp.basename(out)}.tmp{os.getpid()}')
    try:
        torch.save({'meta': meta, 'state_dict': model.state_dict()}, tmp)
        if deploy_config:
            try:
                load_checkpoint(build_model(deploy_config), tmp,
                                map_location='cpu', strict=True)
            except RuntimeError as e:
                raise ValueError(
                    f'The folded weights do not load strictly into '
                    f'{deploy_config} ({" ".join(str(e).split())[:600]}), so '
                    f'{out} is not written; give the deploy form of '
                    f'{config} as --deploy-config.') from e
        os.replace(tmp, out)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    print(f'Saved the deploy checkpoint to {out}')
    if deploy_config:
        print(f'{deploy_config} loads it strictly')


def main():
    args = parse_args()
    try:
        reparameterize(args.config, args.checkpoint, args.out,
                       args.deploy_config)
    except (FileNotFoundError, ValueError, pickle.UnpicklingError) as e:
        sys.exit(f'error: {e}')


if __name__ == '__main__':
    main()
