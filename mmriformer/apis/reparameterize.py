# Copyright (c) OpenMMLab. All rights reserved.
"""Reparameterize a checkpoint: load it into its train-form model, fold
the model into its deploy form, check and save the result.

Used by ``tools/model_converters/reparameterize.py`` and
``tools/backbone_demo.py``.
"""
import os.path as osp
from typing import Optional

from ..models import switch_to_deploy
from ..utils.checkpoint import save_atomically
from ..utils.cli_checks import check_output_file
from .model_io import (WeightsMismatchError, build_model, load_strict,
                       read_checkpoint)


def is_deploy_form(ckpt: dict) -> bool:
    """Whether a loaded checkpoint holds deploy-form (folded) weights."""
    state = ckpt.get('state_dict', ckpt)
    return bool(ckpt.get('meta', {}).get('deploy')) or any(
        '.norm_reparam.' in key for key in state)


def check_out_path(checkpoint: str, out: str, force: bool) -> None:
    """Check, before the work, that ``out`` may be written.

    Args:
        checkpoint (str): The input checkpoint, never written over.
        out (str): The output path.
        force (bool): Whether an existing ``out`` may be replaced.

    Raises:
        ValueError: ``out`` is the input checkpoint, or see
            :func:`~mmriformer.utils.cli_checks.check_output_file`.
    """
    if (osp.isfile(out) and osp.exists(checkpoint)
            and osp.samefile(checkpoint, out)):
        raise ValueError(
            f'The output {out} is the input checkpoint {checkpoint}; it is '
            f'not overwritten: give another output path, e.g. '
            f'{osp.splitext(out)[0]}_deploy.pth.')
    check_output_file(out, force)


def reparameterize(config: str,
                   checkpoint: str,
                   out: str,
                   deploy_config: Optional[str] = None,
                   cfg_options: Optional[dict] = None,
                   force: bool = False) -> None:
    """Load ``checkpoint`` into ``config``'s model, fold it, save to ``out``.

    Args:
        config (str): Config of the train-form model.
        checkpoint (str): Train-form checkpoint.
        out (str): Output path, in an existing folder.
        deploy_config (str, optional): A deploy config that must load the
            result strictly.
        cfg_options (dict, optional): Overrides merged into both configs.
        force (bool): Replace an existing ``out`` (never the input
            checkpoint). Defaults to False.

    Raises:
        FileNotFoundError: A config or the checkpoint does not exist.
        ValueError: The checkpoint does not fit the model, is already in
            deploy form, or ``out`` would replace something (see
            :func:`check_out_path`).
    """
    check_out_path(checkpoint, out, force)
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
    def check(tmp: str) -> None:
        if not deploy_config:
            return
        try:
            load_strict(build_model(deploy_config, cfg_options), tmp,
                        deploy_config)
        except WeightsMismatchError as e:
            raise ValueError(
                f'The folded weights do not load strictly into '
                f'{deploy_config} ({e.problems}), so {out} is not '
                f'written; give the deploy form of {config} as '
                f'--deploy-config.') from e

    save_atomically({'meta': meta, 'state_dict': model.state_dict()}, out,
                    check)
    print(f'Saved the deploy checkpoint to {out}')
    if deploy_config:
        print(f'{deploy_config} loads it strictly')
