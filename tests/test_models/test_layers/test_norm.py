# Copyright (c) OpenMMLab. All rights reserved.
import pytest
import torch
from torch import nn

from mmriformer.models.layers import (ReductionGroupNorm,
                                      build_affine_free_norm,
                                      to_reduction_group_norms)


@pytest.mark.parametrize('shape', [(2, 6, 5, 7), (3, 4, 9)])
@pytest.mark.parametrize('affine', [True, False])
def test_reduction_group_norm_equals_group_norm(shape, affine):
    torch.manual_seed(0)
    norm = nn.GroupNorm(1, shape[1], eps=1e-5, affine=affine).double()
    if affine:
        nn.init.normal_(norm.weight)
        nn.init.normal_(norm.bias)
    # An offset and a scale far from the normalised ones, so that a missing
    # centring or scaling shows.
    x = 3 + 5 * torch.randn(shape, dtype=torch.float64)
    # Both compute in float64 from O(1) normalised values: they differ by
    # rounding only, a few ulp of 1.
    torch.testing.assert_close(
        ReductionGroupNorm(norm)(x), norm(x), rtol=0, atol=1e-12)


def test_reduction_group_norm_refuses_groups():
    with pytest.raises(ValueError, match='one group, not 2'):
        ReductionGroupNorm(nn.GroupNorm(2, 4))


def test_to_reduction_group_norms():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.GroupNorm(1, 8),
        nn.Sequential(nn.GroupNorm(2, 8), nn.Conv2d(8, 8, 1)),
        build_affine_free_norm(dict(type='GN', num_groups=1), 8),
        nn.BatchNorm2d(8)).eval()
    for param in model.parameters():
        nn.init.normal_(param)
    keys = list(model.state_dict())
    x = torch.randn(2, 3, 9, 9)
    expected = model(x)

    assert to_reduction_group_norms(model) is model
    assert [type(m) for m in (model[1], model[2][0], model[3], model[4])
            ] == [ReductionGroupNorm, nn.GroupNorm, ReductionGroupNorm,
                  nn.BatchNorm2d]
    # The parameters are the same tensors, under the same names.
    assert list(model.state_dict()) == keys
    assert model[1].weight is model.state_dict(keep_vars=True)['1.weight']
    assert model[3].weight is None and model[3].bias is None
    # float32 with O(1) values through a 3x3 and a 1x1 convolution:
    # reduction orders differ by a few float32 ulp per norm.
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)
