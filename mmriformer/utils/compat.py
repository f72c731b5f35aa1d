# Copyright (c) OpenMMLab. All rights reserved.
"""Checks for environment traps of the OpenMMLab stack on recent packages."""
from importlib import metadata
from typing import Callable, Optional


def _installed_version(dist: str) -> Optional[str]:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def transformers_problem(
        version_of: Callable[[str], Optional[str]] = _installed_version
) -> Optional[str]:
    """Describe the transformers>=5 trap, or return None if absent.

    With pycocotools installed, mmpretrain imports its multimodal models,
    which import names that transformers 5 removed; ``import mmdet.models``
    fails the same way through mmdet's ReID preprocessor.

    Args:
        version_of (callable): Maps a distribution name to its installed
            version, or None when it is not installed.

    Returns:
        str | None: A one-line explanation with the fix.
    """
    version = version_of('transformers')
    if version is None or version_of('pycocotools') is None:
        return None
    if int(version.split('.')[0]) < 5:
        return None
    return (f'transformers {version} is installed next to pycocotools, '
            f'which breaks `import mmpretrain.models` and `import '
            f'mmdet.models`. Fix: pip uninstall -y transformers (or pip '
            f'install "transformers<5").')


def check_environment() -> None:
    """Raise a one-line ImportError for a known-broken environment."""
    problem = transformers_problem()
    if problem:
        raise ImportError(f'mmriformer: {problem}')
