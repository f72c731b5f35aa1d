# Copyright (c) OpenMMLab. All rights reserved.
"""Loading pretrained weights into a model, checked strictly.

mmengine's ``Pretrained`` initialiser loads non-strictly and only logs what
did not fit, so a checkpoint of another arch starts training from random
weights unnoticed. :func:`load_pretrained` refuses that, except for the
modules a caller names as optional (e.g. a backbone's output norms, which
depend on ``out_indices`` and not on the checkpoint).
"""
from typing import Collection, Dict, Optional

from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor, nn


def select_prefix(state: Dict[str, Tensor], prefix: Optional[str],
                  checkpoint: str) -> Dict[str, Tensor]:
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


def load_pretrained(model: nn.Module,
                    checkpoint: str,
                    prefix: Optional[str] = None,
                    optional: Collection[str] = (),
                    fix: str = 'use the model the checkpoint was trained '
                    'with') -> None:
    """Load ``checkpoint`` into ``model``; every weight must fit.

    Keys of the top-level submodules named in ``optional`` may be missing
    (they keep their initial values) or unused; both are logged in one line.
    Any other missing, unexpected or misshapen weight is an error.

    Args:
        model (nn.Module): The model, loaded in place.
        checkpoint (str): Path or URL, loaded through mmengine's (safe)
            loaders.
        prefix (str, optional): Keep only keys with this prefix, and strip
            it, e.g. ``'backbone.'`` for a classifier checkpoint.
        optional (Collection[str]): Names of ``model``'s top-level
            submodules whose weights need not be in the checkpoint, and of
            ones the checkpoint may hold that ``model`` lacks.
        fix (str): What the user should do when the weights do not fit,
            ending the error message.

    Raises:
        ValueError: No key has the prefix, or the weights do not fit.
    """
    ckpt = CheckpointLoader.load_checkpoint(
        checkpoint, map_location='cpu', logger='current')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    state = select_prefix(state, prefix, checkpoint)
    name = type(model).__name__
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise ValueError(f'Checkpoint {checkpoint} does not fit {name}: {e}. '
                         f'{fix}.') from e

    def top(key):
        return key.split('.')[0]

    missing = [k for k in result.missing_keys if top(k) not in optional]
    unexpected = [k for k in result.unexpected_keys if top(k) not in optional]
    if missing or unexpected:
        raise ValueError(
            f'Checkpoint {checkpoint} does not fit {name}: missing keys '
            f'{missing[:5]}, unexpected keys {unexpected[:5]}. {fix}.')
    absent = sorted({top(k) for k in result.missing_keys})
    unused = sorted({top(k) for k in result.unexpected_keys})
    if absent or unused:
        print_log(
            f'Loaded {name} weights from {checkpoint}; {absent} are not in '
            f'it and keep their initial values; its {unused} are not used.',
            logger='current')
