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

A local file that cannot be a checkpoint (a folder, an empty or truncated
file, an image, a text, ...) is refused with :class:`CheckpointFileError`,
which names the file and what it is, before torch reads it
(:func:`check_checkpoint_file`); torch's errors for a file that ends early
are raised as that error too.
"""
import codecs
import os
import os.path as osp
import pickle
import re
import zipfile
from types import FunctionType
from typing import Callable, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.distributed as dist
from mmengine.dist import get_dist_info
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

TRUSTED_VARIABLE = 'MMRIFORMER_TRUSTED_CHECKPOINTS'


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a type that is not on the allow-list."""


class CheckpointFileError(ValueError):
    """A file given as a checkpoint is not one, or is damaged."""


# How torch.save starts a file in its legacy (pre-1.6, non-zip) format.
LEGACY_MAGIC = pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=2)
ZIP_MAGIC = b'PK\x03\x04'
# Leading bytes of files that are given as checkpoints by mistake.
OTHER_FORMATS = (
    (b'\xff\xd8\xff', 'a JPEG image'),
    (b'\x89PNG\r\n\x1a\n', 'a PNG image'),
    (b'GIF8', 'a GIF image'),
    (b'II*\x00', 'a TIFF image'),
    (b'MM\x00*', 'a TIFF image'),
    (b'RIFF', 'a RIFF file (e.g. a WebP image)'),
    (b'\x1f\x8b', 'a gzip archive'),
    (b'%PDF', 'a PDF document'),
    (b'\x89HDF', 'an HDF5 file (e.g. Keras weights)'),
    (b'\x80', 'a Python pickle that torch.save did not write'),
)
# Words of torch's errors for a file that ends early or is damaged.
DAMAGE_WORDS = ('EOF', 'corrupt', 'PytorchStreamReader failed')


def describe_file_start(head: bytes) -> str:
    """What kind of file starts with ``head``, in words.

    Args:
        head (bytes): The first bytes of the file (64 are plenty).

    Returns:
        str: E.g. ``'a JPEG image'`` or ``'a text file starting with ...'``.
    """
    for magic, kind in OTHER_FORMATS:
        if head.startswith(magic):
            return kind
    if len(head) > 8 and head[8:9] == b'{':
        return ('a safetensors file (load it with safetensors.torch.'
                'load_file and save the tensors with torch.save)')
    try:
        # Incremental: a character cut at the end of head is not an error.
        text = codecs.getincrementaldecoder('utf-8')().decode(head)
    except UnicodeDecodeError:
        text = None
    if text is not None and text.strip() and all(
            c.isprintable() or c in '\t\r\n' for c in text):
        first = text.strip().splitlines()[0][:40]
        return f'a text file starting with {first!r}'
    return f'an unknown format (it starts with bytes {head[:8]!r})'


def check_checkpoint_file(filename: str) -> None:
    """Raise a clear error if ``filename`` cannot be a torch checkpoint.

    Reads only the start of the file and, for the zip format of
    ``torch.save``, its directory; a file that passes is loaded as before.

    Args:
        filename (str): Path of an existing file or folder.

    Raises:
        CheckpointFileError: ``filename`` is a folder, is empty, is cut
            short, or is another kind of file (an image, a text, ...).
    """
    again = 'save, copy or download it again'
    if osp.isdir(filename):
        raise CheckpointFileError(
            f'Checkpoint {filename} is a folder, not a file; give the .pth '
            f'file in it (a work_dir names its latest one in the file '
            f'last_checkpoint).')
    size = osp.getsize(filename)
    with open(filename, 'rb') as f:
        head = f.read(64)
    if not head:
        raise CheckpointFileError(
            f'Checkpoint {filename} is empty (0 bytes): its save, copy or '
            f'download did not finish; {again}.')
    if head.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(filename) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile:
            raise CheckpointFileError(
                f'Checkpoint {filename} is truncated or damaged ({size} '
                f'bytes, its zip directory is missing or broken): its save, '
                f'copy or download did not finish; {again}.') from None
        if not any(name.endswith('data.pkl') for name in names):
            raise CheckpointFileError(
                f'{filename} is a zip archive but not a PyTorch checkpoint '
                f'(it has no data.pkl); give the .pth file that torch.save '
                f'or the Runner wrote.')
        return
    if head.startswith(LEGACY_MAGIC):
        return
    if LEGACY_MAGIC.startswith(head):
        raise CheckpointFileError(
            f'Checkpoint {filename} is truncated ({size} bytes): its save, '
            f'copy or download did not finish; {again}.')
    raise CheckpointFileError(
        f'{filename} is not a PyTorch checkpoint: it is '
        f'{describe_file_start(head)}; give the .pth file that torch.save '
        f'or the Runner wrote.')


def is_damage_error(error: BaseException) -> bool:
    """Whether torch raised ``error`` for a file that ends early or is
    damaged (rather than, e.g., for a device that ``map_location`` lacks)."""
    return isinstance(error, EOFError) or any(
        word in str(error) for word in DAMAGE_WORDS)


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
    if not osp.exists(filename):
        raise FileNotFoundError(
            f'Checkpoint {filename} can not be found; check the path given '
            f'to load_from, --resume, init_cfg.checkpoint or the tool.')
    check_checkpoint_file(filename)
    try:
        return safe_load(
            lambda weights_only: torch.load(
                filename, map_location=map_location,
                weights_only=weights_only), filename)
    except (EOFError, RuntimeError) as error:
        if not is_damage_error(error):
            raise
        reason = str(error).strip().splitlines()[0] if str(error) else \
            type(error).__name__
        raise CheckpointFileError(
            f'Checkpoint {filename} is truncated or damaged ({reason}): its '
            f'save, copy or download did not finish; save, copy or download '
            f'it again.') from error


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


def save_atomically(ckpt: dict,
                    out: str,
                    check: Optional[Callable[[str], None]] = None) -> None:
    """``torch.save`` ``ckpt`` to ``out`` only once it is complete.

    The file is written next to ``out`` and moved over it after ``check``
    (if given) has accepted it, so a failure leaves no partial file and no
    earlier file is lost.

    Args:
        ckpt (dict): What to save.
        out (str): The destination.
        check (Callable[[str], None], optional): Called with the written
            temporary file; raises to refuse it.
    """
    folder = osp.dirname(osp.abspath(out))
    tmp = osp.join(folder, f'.{osp.basename(out)}.tmp{os.getpid()}')
    try:
        torch.save(ckpt, tmp)
        if check is not None:
            check(tmp)
        os.replace(tmp, out)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
