# Copyright (c) OpenMMLab. All rights reserved.
import pytest
import torch

from mmriformer.testing import HostSyncError, forbid_host_sync


@pytest.mark.parametrize('read', [
    lambda t: t.item(),
    lambda t: t.tolist(),
    lambda t: bool(t),
    lambda t: 1 if t > 0 else 0,
    lambda t: int(t),
    lambda t: float(t),
    lambda t: [0, 1][t.long()],
    lambda t: t.nonzero(),
], ids=['item', 'tolist', 'bool', 'if', 'int', 'float', 'index', 'nonzero'])
def test_every_host_read_is_caught_and_restored_after(read):
    t = torch.ones(())
    with pytest.raises(HostSyncError):
        with forbid_host_sync():
            read(t)
    read(t)  # works again outside the block


def test_device_side_work_passes():
    with forbid_host_sync():
        t = torch.randn(4, 5)
        torch.topk(t.sigmoid().flatten(), 3).indices.gather(0, torch.zeros(
            1, dtype=torch.long))
