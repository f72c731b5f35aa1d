# Copyright (c) OpenMMLab. All rights reserved.
"""Checks of ``tools/train.py`` and ``tools/test.py`` before mmdet's scripts
run: a missing config or checkpoint, and a work_dir where the Runner would
write over the config itself, end in one line naming the fix instead of a
traceback (or a lost config) later.

:func:`check_output_file` and :func:`check_output_folder` refuse a tool's
output before the work: a missing folder is an error, and an existing file
is replaced only with ``--force``."""
import argparse
import os.path as osp
import sys
from typing import Iterable, List, Optional

from mmengine.config import Config, DictAction

from mmriformer.utils.checkpoint import (CheckpointFileError,
                                         check_checkpoint_file)


def parse_known(argv: List[str], checkpoint: bool) -> argparse.Namespace:
    """The arguments of mmdet's train.py/test.py that the checks need."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('config')
    if checkpoint:
        parser.add_argument('checkpoint')
    parser.add_argument('--work-dir')
    parser.add_argument('--resume', nargs='?', const='auto')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args, _ = parser.parse_known_args(argv)
    return args


def work_dir_of(args: argparse.Namespace) -> str:
    """The work_dir mmdet's scripts choose for ``args``."""
    if args.work_dir:
        return args.work_dir
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])


def check_checkpoint(path: str, what: str) -> Optional[str]:
    """Why ``path`` cannot be loaded as a checkpoint, or None."""
    if not osp.exists(path):
        return f'{what} {path} does not exist; check the path.'
    try:
        check_checkpoint_file(path)
    except CheckpointFileError as e:
        return str(e)
    return None


def problems(argv: List[str], checkpoint: bool) -> Optional[str]:
    """The first problem of a train.py (``checkpoint=False``) or test.py
    command line, or None.

    Args:
        argv (list[str]): The arguments, as given on the command line.
        checkpoint (bool): Whether a checkpoint follows the config (test).

    Returns:
        str | None: One line naming the problem and the fix.
    """
    try:
        args = parse_known(argv, checkpoint)
    except SystemExit:
        return None  # mmdet's own parser reports bad usage
    if not osp.isfile(args.config):
        return f'Config {args.config} does not exist; check the path.'
    if checkpoint:
        problem = check_checkpoint(args.checkpoint, 'Checkpoint')
        if problem:
            return problem
    if args.resume not in (None, 'auto'):
        problem = check_checkpoint(args.resume, 'The --resume checkpoint')
        if problem:
            return problem
    work_dir = work_dir_of(args)
    dump = osp.join(work_dir, osp.basename(args.config))
    if osp.exists(dump) and osp.samefile(dump, args.config):
        return (f'The work_dir {work_dir} holds the config {args.config} '
                f'itself, which the Runner would overwrite with the merged '
                f'config; give another --work-dir.')
    return None


def exit_on_problems(argv: List[str], checkpoint: bool) -> None:
    """Exit with ``error: <problem>`` if :func:`problems` finds one."""
    problem = problems(argv, checkpoint)
    if problem:
        sys.exit(f'error: {problem}')


def check_output_file(path: str, force: bool = False) -> None:
    """Check, before a tool does its work, that it may write ``path``.

    Args:
        path (str): The file the tool will write.
        force (bool): Whether an existing file may be replaced (the tool's
            ``--force``). Defaults to False.

    Raises:
        ValueError: ``path`` is a folder, its folder does not exist, or it
            exists and ``force`` is False; the message names the fix.
    """
    folder = osp.dirname(osp.abspath(path))
    if osp.isdir(path):
        raise ValueError(f'{path} is a folder; give the path of the file '
                         f'to write.')
    if not osp.isdir(folder):
        raise ValueError(f'The folder {folder} of {path} does not exist; '
                         f'create it or give another path.')
    if osp.exists(path) and not force:
        raise ValueError(f'{path} exists and is not replaced; give another '
                         f'path, or --force to replace it.')


def check_output_folder(folder: str,
                        names: Iterable[str],
                        force: bool = False) -> None:
    """Check, before a tool does its work, that it may write ``names`` into
    ``folder``, as :func:`check_output_file` checks one file.

    The tool makes ``folder`` (and subfolders of ``names``) if missing; the
    folder that holds it must exist. Other files in ``folder`` are left
    alone.

    Args:
        folder (str): The folder the tool writes into.
        names (Iterable[str]): The files the tool will write, as paths
            relative to ``folder``.
        force (bool): Whether existing files may be replaced (the tool's
            ``--force``). Defaults to False.

    Raises:
        ValueError: ``folder`` is a file, the folder that holds it does not
            exist, or one of the files exists and ``force`` is False; the
            message names the fix.
    """
    parent = osp.dirname(osp.abspath(folder))
    if osp.exists(folder) and not osp.isdir(folder):
        raise ValueError(f'{folder} is a file; give the path of a folder '
                         f'to write into.')
    if not osp.isdir(parent):
        raise ValueError(f'The folder {parent} of {folder} does not exist; '
                         f'create it or give another path.')
    existing = [osp.join(folder, name) for name in names
                if osp.exists(osp.join(folder, name))]
    if existing and not force:
        raise ValueError(f'{existing[0]} exists and is not replaced '
                         f'({len(existing)} of the files to write exist in '
                         f'{folder}); give another folder, or --force to '
                         f'replace them.')
