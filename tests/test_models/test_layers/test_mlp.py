# Copyright (c) OpenMMLab. All rights reserved.
"""Our MLP: mmdet's with a chosen activation."""
import torch
import torch.nn.functional as F
from mmdet.models.layers import MLP as ReLUMLP

from mmriformer.models.layers import MLP


def test_relu_default_is_mmdets_mlp():
    torch.manual_seed(0)
    ours = MLP(4, 16, 8, 3)
    mmdet = ReLUMLP(4, 16, 8, 3)
    mmdet.load_state_dict(ours.state_dict())  # the same keys
    x = torch.randn(2, 5, 4)
    assert torch.equal(ours(x), mmdet(x))


def test_silu_between_the_layers():
    torch.manual_seed(0)
    mlp = MLP(4, 16, 8, 2, act_cfg=dict(type='SiLU'))
    x = torch.randn(2, 5, 4)
    first, last = mlp.layers
    torch.testing.assert_close(mlp(x), last(F.silu(first(x))))
