# Copyright (c) OpenMMLab. All rights reserved.
"""Re-parameterise a checkpoint: load it into its train-form model, fold
the model into its deploy form, check and save the result.

Used by ``tools/model_converters/reparameterize.py`` and
``tools/backbone_demo.py``.
"""
import os
import os.path as osp
import pickle
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import load_checkpoint
from mmengine.runner.checkpoint import (CheckpointLoader,
                                        _load_checkpoint_to_model)
from torch import nn

from ..models import switch_to_deploy


def build_model(config: str, cfg_options: Optional[dict] = None) -> nn.Module:
    """Build the model of a config file, in the config's default scope.

    Args:
        config (str): Path of the config.
        cfg_options (dict, optional): Overrides merged into the config, as
            ``--cfg-options`` gives them.
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'Config {config} does not exist; check '
                                f'the path.')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
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


def reparameterize(config: str,
                   checkpoint: str,
                   out: str,
                   deploy_config: Optional[str] = None,
                   cfg_options: Optional[dict] = None) -> None:
    """Load ``checkpoint`` into ``config``'s model, fold it, save to ``out``.

    Args:
        config (str): Config of the train-form model.
        checkpoint (str): Train-form checkpoint.
        out (str): Output path; its folder is made if missing.
        deploy_config (str, optional): A deploy config that must load the
            result strictly.
        cfg_options (dict, optional): Overrides merged into both configs.

    Raises:
        FileNotFoundError: A config or the checkpoint does not exist.
        ValueError: The checkpoint does not fit the model, is already in
            deploy form, or ``out`` would replace something (see
            :func:`check_out_path`).
    """
    check_out_path(checkpoint, out)
    model = build_model(config, cfg_options)
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
                load_checkpoint(build_model(deploy_config, cfg_options), tmp,
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
