# Copyright (c) OpenMMLab. All rights reserved.
"""Reparameterize a checkpoint: load it into its train-form model, fold
the model into its deploy form, check and save the result.

Used by ``tools/model_converters/reparameterize.py`` and
``tools/backbone_demo.py``.
"""
import os
import os.path as osp
import pickle
from typing import Optional

import torch
from mmengine.runner.checkpoint import CheckpointLoader

from ..models import switch_to_deploy
from .model_io import (WeightsMismatchError, build_model, load_strict,
                       read_checkpoint)


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
    ckpt = read_checkpoint(checkpoint)
    if is_deploy_form(ckpt):
        raise ValueError(
            f'{checkpoint} is already in deploy form; there is nothing to '
            f'convert: load it with the deploy config.')
    load_strict(model, checkpoint, config, ckpt)
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
                load_strict(build_model(deploy_config, cfg_options), tmp,
                            deploy_config)
            except WeightsMismatchError as e:
                raise ValueError(
                    f'The folded weights do not load strictly into '
                    f'{deploy_config} ({e.problems}), so {out} is not '
                    f'written; give the deploy form of {config} as '
                    f'--deploy-config.') from e
        os.replace(tmp, out)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    print(f'Saved the deploy checkpoint to {out}')
    if deploy_config:
        print(f'{deploy_config} loads it strictly')
