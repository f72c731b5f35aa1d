# Copyright (c) OpenMMLab. All rights reserved.
"""Checks for environment traps of the OpenMMLab stack on recent packages."""
from importlib import import_module, metadata
from typing import Callable, Optional


def _installed_version(dist: str) -> Optional[str]:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def transformers_problem(
    version_of: Callable[[str], Optional[str]] = _installed_version,
    try_import: Callable[[str], object] = import_module,
) -> Optional[str]:
    """Describe the transformers trap, or return None if absent.

    With pycocotools and transformers installed, mmpretrain imports its
    multimodal models; when the installed transformers lacks a name they
    import (transformers 5, and 4.57 already lack
    ``modeling_utils.apply_chunking_to_forward``), mmpretrain swallows the
    ImportError and ``import mmpretrain.models`` (and so ``import
    mmdet.models``) fails with ``TypeError: NoneType takes no arguments``.
    The trap is tested by those imports themselves, not by a version.

    Args:
        version_of (callable): Maps a distribution name to its installed
            version, or None when it is not installed.
        try_import (callable): Imports a module by name.

    Returns:
        str | None: A one-line explanation with the fix.
    """
    version = version_of('transformers')
    if version is None or version_of('pycocotools') is None:
        return None
    for module in ('mmdet.models', 'mmpretrain.models'):
        try:
            try_import(module)
        except Exception as error:
            return (f'transformers {version} is installed next to '
                    f'pycocotools, and with both `import {module}` fails '
                    f'({type(error).__name__}: {error}): mmpretrain then '
                    f'imports its multimodal models, which do not work with '
                    f'this transformers. Fix: pip uninstall -y transformers '
                    f'(mmriformer, mmdet and mmpretrain do not need it; keep '
                    f'it in a separate virtual environment).')
    return None


def check_environment() -> None:
    """Raise a one-line ImportError for a known-broken environment."""
    problem = transformers_problem()
    if problem:
        raise ImportError(f'mmriformer: {problem}')
