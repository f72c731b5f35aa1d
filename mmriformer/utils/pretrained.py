# Copyright (c) OpenMMLab. All rights reserved.
"""Loading pretrained weights into a model, checked strictly.

mmengine's ``Pretrained`` initialiser loads non-strictly and only logs what
did not fit, so a checkpoint of another arch, or of another layout of the
same arch, starts training from partly random weights unnoticed.
:func:`load_pretrained` refuses that: every missing, unexpected or
misshapen key is an error naming the keys and the checkpoint, except the
keys a caller (or a config, through ``init_cfg.optional``) names as
expected to stay initial or unused (e.g. a backbone's output norms, which
depend on ``out_indices``, or a classifier's head).

:func:`init_pretrained` is what our backbones call from ``init_weights``
for a ``dict(type='Pretrained', ...)`` init config.
"""
from typing import Callable, Collection, Dict, List, Optional

from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor, nn

StateDict = Dict[str, Tensor]
# init_cfg keys of a Pretrained init that init_pretrained understands.
PRETRAINED_KEYS = ('type', 'checkpoint', 'prefix', 'optional',
                   'map_location')


class PretrainedUnavailableError(RuntimeError):
    """A pretrained checkpoint URL cannot be downloaded."""


def select_prefix(state: StateDict, prefix: Optional[str],
                  checkpoint: str) -> StateDict:
    """The weights under ``prefix``, with the prefix stripped.

    Args:
        state (dict[str, Tensor]): A state dict.
        prefix (str, optional): E.g. ``'backbone.'``; None or '' keeps all.
        checkpoint (str): The checkpoint's name, for the error.

    Raises:
        ValueError: No key has the prefix.
    """
    if not prefix:
        return state
    selected = {k[len(prefix):]: v for k, v in state.items()
                if k.startswith(prefix)}
    if not selected:
        raise ValueError(f'Checkpoint {checkpoint} has no weights with prefix '
                         f'{prefix!r}; check init_cfg.prefix.')
    return selected


def read_pretrained(checkpoint: str, config_key: str) -> StateDict:
    """The state dict of a checkpoint file or URL.

    Args:
        checkpoint (str): Path or URL, loaded through mmengine's (safe)
            loaders.
        config_key (str): The config entry that names the checkpoint, e.g.
            ``'model.backbone.init_cfg.checkpoint'``, for the messages.

    Returns:
        dict[str, Tensor]: Its ``state_dict`` entry, or the file itself.

    Raises:
        PretrainedUnavailableError: A URL cannot be downloaded (offline,
            unreachable, not found).
    """
    try:
        ckpt = CheckpointLoader.load_checkpoint(
            checkpoint, map_location='cpu', logger='current')
    except OSError as error:  # urllib's URLError and HTTPError are OSErrors
        if '://' not in checkpoint:
            raise
        entry = config_key.rsplit('.', 1)[0]
        raise PretrainedUnavailableError(
            f'Cannot download the pretrained weights {checkpoint} named by '
            f'{config_key} ({type(error).__name__}: {error}). Either '
            f'download the file where you can and give its local path: '
            f'--cfg-options {config_key}=/path/to/file.pth, or start '
            f'from random weights: --cfg-options {entry}=None.') from error
    return ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}


def is_listed(key: str, names: Collection[str]) -> bool:
    """Whether ``key`` is one of ``names`` or lies under one of them
    (``'norm2'`` covers ``'norm2.weight'``)."""
    return any(key == name or key.startswith(name + '.') for name in names)


def covering(keys: Collection[str], names: Collection[str]) -> List[str]:
    """The entries of ``names`` that the ``keys`` lie under, sorted."""
    return sorted({name for key in keys for name in names
                   if is_listed(key, [name])})


def reshaped_keys(state: StateDict, target: StateDict) -> List[str]:
    """Keys of ``state`` that ``target`` has in another shape."""
    return [k for k, v in state.items() if k in target
            and hasattr(v, 'shape') and v.shape != target[k].shape]


def shape_problems(state: StateDict, target: StateDict) -> List[str]:
    """Keys of ``state`` that ``target`` has in another shape, in words.

    Returns:
        list[str]: ``'key: (..) in the checkpoint, (..) in the model'``.
    """
    return [
        f'{k}: {tuple(state[k].shape)} in the checkpoint, '
        f'{tuple(target[k].shape)} in the model'
        for k in reshaped_keys(state, target)
    ]


def _listing(what: str, keys: List[str], limit: int = 8) -> str:
    more = f' and {len(keys) - limit} more' if len(keys) > limit else ''
    return f'{len(keys)} {what}: {", ".join(keys[:limit])}{more}'


def load_pretrained(model: nn.Module,
                    checkpoint: str,
                    prefix: Optional[str] = None,
                    optional: Collection[str] = (),
                    fix: str = 'use the model the checkpoint was trained '
                    'with',
                    convert: Optional[Callable[[StateDict], StateDict]] = None,
                    config_key: str = 'model.backbone.init_cfg.checkpoint'
                    ) -> StateDict:
    """Load ``checkpoint`` into ``model``; every weight must fit.

    Keys listed in ``optional`` (or under a listed name) may be missing
    (they keep their initial values) or unused; both are logged in one
    line. Any other missing, unexpected or misshapen key is an error that
    names the keys and the checkpoint, and nothing is loaded.

    Args:
        model (nn.Module): The model, loaded in place.
        checkpoint (str): Path or URL, loaded through mmengine's (safe)
            loaders.
        prefix (str, optional): Keep only keys with this prefix, and strip
            it, e.g. ``'backbone.'`` for a classifier checkpoint.
        optional (Collection[str]): Keys, or names of submodules, of
            ``model`` that need not be in the checkpoint, and of the
            checkpoint (after ``prefix`` and ``convert``) that ``model``
            need not use.
        fix (str): What the user should do when the weights do not fit,
            ending the error message.
        convert (callable, optional): Maps the checkpoint's keys (after
            ``prefix``) to ``model``'s, e.g. another implementation's
            layout of the same network.
        config_key (str): The config entry naming ``checkpoint``, for the
            messages.

    Returns:
        dict[str, Tensor]: The weights loaded, in ``model``'s keys.

    Raises:
        ValueError: No key has the prefix, or the weights do not fit.
        PretrainedUnavailableError: A URL cannot be downloaded.
    """
    state = select_prefix(read_pretrained(checkpoint, config_key), prefix,
                          checkpoint)
    if convert is not None:
        state = convert(state)
    name = type(model).__name__
    own = model.state_dict()
    reshaped = reshaped_keys(state, own)
    shapes = shape_problems(
        {k: state[k] for k in reshaped if not is_listed(k, optional)}, own)
    if shapes:
        raise ValueError(
            f'Checkpoint {checkpoint} ({config_key}) does not fit {name}: '
            f'{_listing("keys of other shapes", shapes)}. Nothing was '
            f'loaded. {fix}; or, if these keys are meant to keep their '
            f'initial values, list them (or their modules) in '
            f'init_cfg.optional.')
    # Optional keys of another shape stay initial, as missing ones do.
    state = {k: v for k, v in state.items() if k not in reshaped}
    # Modules may fold other forms of their weights on load (a deploy
    # RIFormer block), so what is missing or unused is known afterwards.
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not is_listed(k, optional)]
    unexpected = [
        k for k in result.unexpected_keys if not is_listed(k, optional)
    ]
    if missing or unexpected:
        problems = [
            _listing(what, keys) for what, keys in (
                (f'keys of {name} not in the checkpoint', missing),
                (f'checkpoint keys that {name} lacks', unexpected)) if keys
        ]
        raise ValueError(
            f'Checkpoint {checkpoint} ({config_key}) does not fit {name}: '
            f'{"; ".join(problems)}. {fix}; or, if these keys are meant to '
            f'keep their initial values or stay unused, list them (or '
            f'their modules) in init_cfg.optional.')
    absent = covering(result.missing_keys + reshaped, optional)
    unused = covering(result.unexpected_keys, optional)
    if absent or unused:
        print_log(
            f'Loaded {name} weights from {checkpoint}; {absent} are not in '
            f'it and keep their initial values; its {unused} are not used '
            f'(declared optional).',
            logger='current')
    return state


def init_pretrained(model: nn.Module,
                    init_cfg: dict,
                    optional: Collection[str] = (),
                    fix: str = 'use the model the checkpoint was trained '
                    'with',
                    convert: Optional[Callable[[StateDict], StateDict]] = None,
                    config_key: str = 'model.backbone.init_cfg') -> StateDict:
    """Run a ``dict(type='Pretrained', checkpoint=..., prefix=...,
    optional=[...])`` init config strictly with :func:`load_pretrained`.

    Args:
        model (nn.Module): The module whose ``init_cfg`` it is.
        init_cfg (dict): The init config; ``optional`` adds to the
            ``optional`` argument.
        optional (Collection[str]): Keys the module itself expects to stay
            initial or unused.
        fix (str): See :func:`load_pretrained`.
        convert (callable, optional): See :func:`load_pretrained`.
        config_key (str): Where ``init_cfg`` is in the config.

    Returns:
        dict[str, Tensor]: The weights loaded.

    Raises:
        ValueError: ``init_cfg`` has keys a Pretrained init does not take,
            or the weights do not fit.
    """
    unknown = sorted(set(init_cfg) - set(PRETRAINED_KEYS))
    if unknown:
        raise ValueError(
            f'{config_key} has {unknown}, which a Pretrained init does not '
            f'take; it takes {list(PRETRAINED_KEYS)}.')
    if not init_cfg.get('checkpoint'):
        raise ValueError(f'{config_key} is a Pretrained init without '
                         f'checkpoint; give one, or set {config_key}=None.')
    return load_pretrained(
        model,
        init_cfg['checkpoint'],
        init_cfg.get('prefix'),
        optional=list(optional) + list(init_cfg.get('optional') or ()),
        fix=fix,
        convert=convert,
        config_key=config_key + '.checkpoint')
