# Copyright (c) OpenMMLab. All rights reserved.
"""Safe checkpoint loaders for mmengine 0.10.7 under torch >= 2.6.

torch >= 2.6 unpickles with ``weights_only=True``: tensors and plain
containers only. Every checkpoint the mmengine Runner writes holds a message
hub (``HistoryBuffer``, numpy arrays and scalars), so mmengine 0.10.7, which
passes nothing, cannot resume or ``load_from``. The loaders registered here
for local files and http(s) URLs keep ``weights_only=True`` and, for the
duration of their own ``torch.load`` only, allow exactly those types
(:func:`checkpoint_globals`). Any other global, such as a function a crafted
pickle would call, is refused with :class:`UnsafeCheckpointError` before
anything runs. Nothing changes for loads outside these loaders.

Trusted legacy files that hold other types can be listed in the environment
variable ``MMRIFORMER_TRUSTED_CHECKPOINTS`` (paths or URLs, separated by
``os.pathsep``); those are loaded with full unpickling, which runs whatever
code the file holds.
"""
import os
import os.path as osp
import pickle
import re
from types import FunctionType
from typing import Callable, List, Tuple, Union

import numpy as np
import torch
import torch.distributed as dist
from mmengine.dist import get_dist_info
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

TRUSTED_VARIABLE = 'MMRIFORMER_TRUSTED_CHECKPOINTS'


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a type that is not on the allow-list."""


def history_buffer_method(owner: type, name: str) -> Callable:
    """``getattr`` as pickles of ``HistoryBuffer`` use it, and no more.

    A HistoryBuffer pickles its statistics methods (``min``, ``mean``, ...)
    as ``getattr(HistoryBuffer, 'min')``. A general ``getattr`` would let a
    crafted file reach any attribute of any object it can name, so this one
    returns only public functions defined on HistoryBuffer.

    Args:
        owner (type): Must be ``HistoryBuffer``.
        name (str): The method's name.

    Returns:
        callable: The method.
    """
    method = vars(HistoryBuffer).get(name) if owner is HistoryBuffer else None
    if name.startswith('_') or not isinstance(method, FunctionType):
        raise pickle.UnpicklingError(f'a call getattr({owner!r}, {name!r})')
    return method


def checkpoint_globals() -> List[Union[Callable, Tuple[Callable, str]]]:
    """The types that mmengine, mmdet, mmpretrain and RT-DETR checkpoints
    hold beyond torch's own allow-list.

    numpy's reconstruction helpers are listed under the module names of
    numpy 2 (``numpy._core``) and numpy 1 (``numpy.core``), since a pickle
    names the module it was written under.

    Returns:
        list: Entries for :class:`torch.serialization.safe_globals`.
    """
    multiarray = (np._core.multiarray
                  if hasattr(np, '_core') else np.core.multiarray)
    dtypes = '?' + np.typecodes['AllInteger'] + np.typecodes['AllFloat']
    allowed = [HistoryBuffer, (history_buffer_method, 'builtins.getattr'),
               np.ndarray, np.dtype]
    allowed += [type(np.dtype(code)) for code in dtypes + 'U']
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        allowed.append((multiarray._reconstruct, f'{module}._reconstruct'))
        allowed.append((multiarray.scalar, f'{module}.scalar'))
    return allowed


def is_trusted(filename: str) -> bool:
    """Whether ``filename`` is listed in ``MMRIFORMER_TRUSTED_CHECKPOINTS``.

    Args:
        filename (str): A local path or a URL.
    """
    listed = os.environ.get(TRUSTED_VARIABLE, '').split(os.pathsep)
    if '://' in filename:
        return filename in listed
    path = osp.realpath(osp.expanduser(filename))
    return any(item and osp.realpath(osp.expanduser(item)) == path
               for item in listed)


def safe_load(load: Callable, filename: str):
    """Call ``load(weights_only)`` under the checkpoint allow-list.

    Args:
        load (callable): Loads the checkpoint given ``weights_only``.
        filename (str): The path or URL, for messages and the trust list.

    Returns:
        The unpickled checkpoint.

    Raises:
        UnsafeCheckpointError: The file holds a type outside the allow-list.
    """
    if is_trusted(filename):
        return load(weights_only=False)
    try:
        with torch.serialization.safe_globals(checkpoint_globals()):
            return load(weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's message names the refused global, or quotes the error
        # of an allow-listed callable after 'WeightsUnpickler error: '.
        found = re.search(r'GLOBAL (\S+)|WeightsUnpickler error:\s*(.+)',
                          str(error))
        what = (found.group(1) or found.group(2)).rstrip('.') if found \
            else str(error).splitlines()[0]
        raise UnsafeCheckpointError(
            f'Refused to load {filename}: it holds {what}, which is not a '
            f'type that checkpoints hold (tensors, containers, numpy values, '
            f"mmengine's HistoryBuffer), and unpickling it could run code. "
            f'If you made this file or trust its source, add its path to '
            f'the environment variable {TRUSTED_VARIABLE} to load it with '
            f'full unpickling, which runs any code it holds.') from None


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename: str, map_location=None):
    """Load a local checkpoint file under the allow-list."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(
            f'Checkpoint {filename} can not be found; check the path given '
            f'to load_from, --resume, init_cfg.checkpoint or the tool.')
    return safe_load(
        lambda weights_only: torch.load(
            filename, map_location=map_location, weights_only=weights_only),
        filename)


@CheckpointLoader.register_scheme(
    prefixes=('http://', 'https://'), force=True)
def load_from_http(filename: str, map_location=None):
    """Download (rank 0 first) into torch's hub cache and load under the
    allow-list."""
    rank, world_size = get_dist_info()

    def load():
        return safe_load(
            lambda weights_only: torch.hub.load_state_dict_from_url(
                filename, map_location=map_location,
                weights_only=weights_only), filename)

    if rank == 0:
        checkpoint = load()
    if world_size > 1:
        dist.barrier()
        if rank > 0:
            checkpoint = load()
    return checkpoint
