# Copyright (c) OpenMMLab. All rights reserved.
"""Deprecations: old config keys keep working for one release, with a
warning that names the new key."""
import functools
import logging
import warnings
from typing import Callable

from mmengine.logging import print_log


def warn_deprecated(message: str, stacklevel: int = 2) -> None:
    """Warn both as a ``DeprecationWarning`` and in the log.

    A ``DeprecationWarning`` alone is hidden outside ``__main__``, so a
    config key that is going away would go unnoticed in a training log.

    Args:
        message (str): What is deprecated and what to use instead.
        stacklevel (int): Passed to :func:`warnings.warn`, counted from the
            caller of this function.
    """
    warnings.warn(message, DeprecationWarning, stacklevel=stacklevel + 1)
    print_log(message, logger='current', level=logging.WARNING)


def renamed_kwargs(**renames: str) -> Callable:
    """Decorate ``__init__`` to accept old keyword names for one release.

    Like mmengine's ``deprecated_api_warning``, but the warning also goes
    to the log (a ``DeprecationWarning`` alone is hidden outside
    ``__main__``) and a conflict raises a ValueError rather than an
    assertion, which ``python -O`` would skip.

    Args:
        **renames (str): New name of each old keyword, e.g.
            ``hidden_dim='embed_dims'``.

    Returns:
        Callable: The decorator. An old name is passed on as its new one,
        with a warning; given together with its new name and another value,
        it raises a ValueError naming both.
    """

    def decorator(init: Callable) -> Callable:
        owner = init.__qualname__.split('.')[0]

        @functools.wraps(init)
        def wrapper(self, *args, **kwargs):
            for old, new in renames.items():
                if old not in kwargs:
                    continue
                value = kwargs.pop(old)
                if new in kwargs and kwargs[new] != value:
                    raise ValueError(
                        f'{owner} got {old}={value!r} and {new}='
                        f'{kwargs[new]!r}; {old} is the old name of {new}: '
                        f'set only {new}.')
                warn_deprecated(
                    f'{owner}: {old} is deprecated and will be removed in '
                    f'the next release; use {new} instead ({new}={value!r}).',
                    stacklevel=3)
                kwargs[new] = value
            return init(self, *args, **kwargs)

        return wrapper

    return decorator
