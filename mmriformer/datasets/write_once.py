# Copyright (c) OpenMMLab. All rights reserved.
"""Writing a generated data split once per set of settings.

A split is some files plus a JSON record that stores the settings they were
made from. The record is written last, by an atomic replace, so it only
ever describes complete files: a split with a record of the same settings
is used as it is, and any other is written again. A lock file lets exactly
one of several concurrent callers (DDP ranks, dataloader workers, separate
runs) write; the others wait and then find the split made.
"""
import json
import os
import os.path as osp
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Sequence

from filelock import FileLock


def _settings_in(record: Any, key: Sequence[str]) -> Optional[dict]:
    """The settings stored in ``record`` under the keys ``key``, if any.

    Args:
        record (Any): A record as read from JSON.
        key (Sequence[str]): The keys, outermost first; empty for the
            record itself.

    Returns:
        dict | None: The settings; None if the record has none there.
    """
    for name in key:
        if not isinstance(record, dict):
            return None
        record = record.get(name)
    return record if isinstance(record, dict) else None


def _read_record(record_file: str, settings_key: Sequence[str],
                 fix: str) -> Optional[dict]:
    """The record of a split, if there is one.

    Args:
        record_file (str): Its path.
        settings_key (Sequence[str]): Where it stores the settings.
        fix (str): What to do when the file is not such a record.

    Returns:
        dict | None: The record; None if the file does not exist.

    Raises:
        ValueError: The file exists but holds no settings where a record
            does (it was written by something else and is left alone).
    """
    try:
        with open(record_file) as f:
            record = json.load(f)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except ValueError:
        record = None
    if _settings_in(record, settings_key) is None:
        raise ValueError(
            f'{record_file} exists and was not written by this generator, '
            f'so it is not overwritten. {fix}')
    return record


@contextmanager
def _locked(lock_file: str, fix: str) -> Iterator[None]:
    """Hold ``lock_file``, creating its folder if needed.

    Args:
        lock_file (str): Path of the lock file.
        fix (str): What to do when the folder is not writable.
    """
    folder = osp.dirname(osp.abspath(lock_file))
    try:
        os.makedirs(folder, exist_ok=True)
        lock = FileLock(lock_file)
        lock.acquire()
    except OSError as err:
        raise OSError(
            f'Cannot write to the folder "{folder}" ({err}). {fix}') from err
    try:
        yield
    finally:
        lock.release()


def _replace_json(path: str, data: dict) -> None:
    """Write ``data`` to ``path`` by an atomic replace.

    Args:
        path (str): The file; its folder is created if missing.
        data (dict): JSON-serialisable content.
    """
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp_file = f'{path}.tmp{os.getpid()}'
    try:
        with open(tmp_file, 'w') as f:
            json.dump(data, f)
        os.replace(tmp_file, path)
    finally:
        if osp.exists(tmp_file):
            os.remove(tmp_file)


def write_once(record_file: str,
               settings: dict,
               write: Callable[[Optional[dict]], dict],
               lock_file: str,
               settings_key: Sequence[str] = (),
               is_complete: Optional[Callable[[dict], bool]] = None,
               fix: str = '') -> bool:
    """Write a split unless one made with ``settings`` exists.

    The split is up to date when ``record_file`` stores ``settings`` under
    ``settings_key`` and ``is_complete`` accepts the record; then nothing is
    written and no lock is taken, so a complete split on a read-only file
    system can be used. Otherwise, holding ``lock_file``, the old record is
    removed, ``write`` writes the split's files and returns the new record,
    and the record is written by an atomic replace. A writer that dies
    half-way leaves no record, so the next call writes the split again.

    Args:
        record_file (str): The JSON record of the split.
        settings (dict): The JSON-serialisable settings of the split.
        write (Callable[[dict | None], dict]): Writes the split's files
            given the settings of the split being replaced (None if there
            is none) and returns the record, which must store ``settings``
            under ``settings_key``.
        lock_file (str): The lock shared by every writer of this split;
            its folder is created if missing.
        settings_key (Sequence[str]): The keys under which the record
            stores the settings, outermost first; empty (the default) for
            a record that is the settings.
        is_complete (Callable[[dict], bool], optional): Whether the files
            that a record of the same settings describes are all there.
            Defaults to None (a record is enough).
        fix (str): Appended to the errors: what the user can do when the
            record file belongs to something else or the folder cannot be
            written. Defaults to ''.

    Returns:
        bool: Whether this call wrote the split.

    Raises:
        ValueError: ``record_file`` exists but is not a record of this
            split (it is left as it is).
        OSError: The folder of ``lock_file`` cannot be written.
    """

    # As the record reads back: lists, not tuples.
    settings = json.loads(json.dumps(settings))

    def up_to_date(record: Optional[dict]) -> bool:
        return (record is not None
                and _settings_in(record, settings_key) == settings
                and (is_complete is None or is_complete(record)))

    if up_to_date(_read_record(record_file, settings_key, fix)):
        return False
    with _locked(lock_file, fix):
        # Another caller may have written it while this one waited.
        previous = _read_record(record_file, settings_key, fix)
        if up_to_date(previous):
            return False
        previous_settings = None
        if previous is not None:
            # The record must never describe files being rewritten.
            os.remove(record_file)
            previous_settings = _settings_in(previous, settings_key)
        _replace_json(record_file, write(previous_settings))
    return True
