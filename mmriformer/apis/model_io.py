# Copyright (c) OpenMMLab. All rights reserved.
"""Building a model from its config, and loading weights that must fit.

The tools, the deployment functions, the converters and the tests build
their models with :func:`build_model` and load checkpoints with
:func:`load_strict`:

- ``build_model(config, cfg_options, pretrained=False)`` drops every
  ``Pretrained`` init config (as the from-scratch override
  ``--cfg-options model.backbone.init_cfg=None`` does), so that
  ``init_weights`` downloads and reads nothing and starts each module from
  its own initialisation. Building alone never loads weights: only
  ``init_weights`` runs an init config (strictly, see
  :mod:`mmriformer.utils.pretrained`), and the Runner calls it.
- ``load_strict`` loads every weight of a checkpoint or raises one
  :class:`WeightsMismatchError` that names the keys that do not fit and how
  to make them fit (:func:`~mmriformer.models.utils.describe_unfit`).
  mmengine's ``load_checkpoint`` loads non-strictly by default and only
  logs what does not fit.
"""
import copy
import os
import os.path as osp
from typing import Optional, Union

from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner.checkpoint import CheckpointLoader
from torch import nn

from ..models.utils import describe_unfit
from ..utils.pretrained import reshaped_keys

ConfigType = Union[str, os.PathLike, Config]


class WeightsMismatchError(ValueError):
    """Weights of a checkpoint do not fit a model.

    Args:
        message (str): The whole message.
        problems (str): What does not fit, in words.
    """

    def __init__(self, message: str, problems: str) -> None:
        super().__init__(message)
        self.problems = problems


def load_config(config: ConfigType,
                cfg_options: Optional[dict] = None) -> Config:
    """A config read from its file, or a copy of a given one, with
    overrides merged.

    Args:
        config (str | PathLike | Config): The config or its path.
        cfg_options (dict, optional): Overrides as ``--cfg-options`` gives
            them, e.g. ``{'model.bbox_head.num_classes': 3}``.

    Returns:
        Config: A config of its own; ``config`` is left unchanged.

    Raises:
        FileNotFoundError: The config file does not exist.
    """
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        if not osp.isfile(config):
            raise FileNotFoundError(f'Config {config} does not exist; check '
                                    f'the path.')
        cfg = Config.fromfile(str(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def drop_pretrained(cfg) -> None:
    """Remove every ``Pretrained`` init config from a model config, in place.

    An ``init_cfg`` that is one becomes None (the module's own
    initialisation); a list of them keeps its other entries.

    Args:
        cfg (dict | list): A model config, searched through its nested
            dicts and lists.
    """
    if isinstance(cfg, dict):
        init_cfg = cfg.get('init_cfg')
        if isinstance(init_cfg, (list, tuple)):
            cfg['init_cfg'] = [
                c for c in init_cfg if not _is_pretrained(c)] or None
        elif _is_pretrained(init_cfg):
            cfg['init_cfg'] = None
        children = cfg.values()
    elif isinstance(cfg, (list, tuple)):
        children = cfg
    else:
        return
    for child in children:
        drop_pretrained(child)


def _is_pretrained(init_cfg) -> bool:
    """Whether ``init_cfg`` is one ``Pretrained`` init config."""
    return isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained'


def build_model(config: ConfigType,
                cfg_options: Optional[dict] = None,
                pretrained: bool = True) -> nn.Module:
    """Build the model of a config, in the config's default scope.

    The model has the weights of its constructors; ``init_weights`` (which
    the Runner calls) runs the init configs.

    Args:
        config (str | PathLike | Config): The config or its path.
        cfg_options (dict, optional): Overrides merged into the config, as
            ``--cfg-options`` gives them.
        pretrained (bool): Keep the ``Pretrained`` init configs. False drops
            them (see :func:`drop_pretrained`), so that ``init_weights``
            downloads nothing. Defaults to True.

    Returns:
        nn.Module: The model.

    Raises:
        FileNotFoundError: The config file does not exist.
    """
    cfg = load_config(config, cfg_options)
    if not pretrained:
        drop_pretrained(cfg.model)
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmdet')):
        return MODELS.build(cfg.model)


def read_checkpoint(checkpoint: str) -> dict:
    """A checkpoint file or URL, on the CPU, through mmengine's loaders
    (the checked ones of :mod:`mmriformer.utils.checkpoint`).

    Args:
        checkpoint (str): Path or URL.

    Returns:
        dict: The checkpoint.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: It is not a checkpoint, or holds no dict.
    """
    ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    if not isinstance(ckpt, dict):
        raise ValueError(f'{checkpoint} holds a {type(ckpt).__name__}, not '
                         f'a checkpoint dict of weights.')
    return ckpt


def load_strict(model: nn.Module,
                checkpoint: str,
                config: Optional[ConfigType] = None,
                ckpt: Optional[dict] = None) -> dict:
    """Load every weight of a checkpoint into ``model``, or raise.

    Keys are the model's, or those of a ``DataParallel`` wrapping it
    (``module.``), as mmengine takes them. Modules may fold other forms
    of their weights while loading (a deploy-form RIFormer block takes
    train-form ones). BatchNorm counters (``num_batches_tracked``) may be
    missing.

    Args:
        model (nn.Module): The model, loaded in place.
        checkpoint (str): Path or URL of the checkpoint, read unless
            ``ckpt`` is given; named in the error.
        config (str | PathLike | Config, optional): The config ``model``
            was built from, named in the error.
        ckpt (dict, optional): The checkpoint, already read: a dict with a
            ``state_dict`` entry, or the state dict.

    Returns:
        dict: The checkpoint (e.g. its ``meta``).

    Raises:
        WeightsMismatchError: Keys are missing, unexpected or of other
            shapes, or a module refused its weights; the message names
            them and how to make them fit. Where some keys fit, those are
            loaded.
    """
    if ckpt is None:
        ckpt = read_checkpoint(checkpoint)
    state = {
        k.removeprefix('module.'): v
        for k, v in ckpt.get('state_dict', ckpt).items()
    }
    if isinstance(config, Config):
        config = config.filename
    fit = f'The checkpoint {checkpoint} does not fit ' + (
        f'the model of the config {config}'
        if config else f'the model {type(model).__name__}')
    reshaped = reshaped_keys(state, model.state_dict())
    try:
        result = model.load_state_dict(
            {k: v for k, v in state.items() if k not in reshaped},
            strict=False)
    except ValueError as error:
        # A module refused the weights (as RTDETR refuses deploy weights in
        # the train form); its message says what to do.
        raise WeightsMismatchError(f'{fit}: {error}', str(error)) from error
    unfit = describe_unfit(
        model, state, [k for k in result.missing_keys if k not in reshaped],
        result.unexpected_keys)
    if unfit is not None:
        problems, fix = unfit
        raise WeightsMismatchError(f'{fit} ({problems}); {fix}.', problems)
    return ckpt
