# Copyright (c) OpenMMLab. All rights reserved.
from contextlib import contextmanager
from typing import Iterator
from unittest import mock

import torch

# The Tensor methods that copy a value to the host (and wait for it).
HOST_READS = ('item', 'tolist', 'numpy', 'nonzero', '__bool__', '__int__',
              '__float__', '__index__')


class HostSyncError(AssertionError):
    """A tensor value was read on the host inside :func:`forbid_host_sync`.
    """


@contextmanager
def forbid_host_sync() -> Iterator[None]:
    """Raise :class:`HostSyncError` on any read of a tensor value on the
    host (``.item()``, ``if tensor:``, ``int(tensor)``, ...) in the block.

    A path free of them can be exported and captured in CUDA graphs, and
    never waits for the device.
    """

    def refuse(*args, **kwargs):
        raise HostSyncError('a tensor value was read on the host')

    with mock.patch.multiple(torch.Tensor,
                             **{name: refuse for name in HOST_READS}):
        yield
