# Copyright (c) OpenMMLab. All rights reserved.
import torch
from mmdet.models.backbones import ResNetV1d

from mmriformer.models import PResNet
from mmriformer.testing import assert_float64_close, randomize_


def test_bottleneck_presnet_is_resnetv1d():
    torch.manual_seed(0)
    ours = randomize_(PResNet(depth=50, out_indices=(1, 2, 3))).double()
    theirs = ResNetV1d(depth=50, out_indices=(1, 2, 3)).double()
    theirs.load_state_dict(ours.state_dict())  # strict: the same keys
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    ours.eval(), theirs.eval()
    with torch.no_grad():
        assert_float64_close(theirs(x), ours(x))


def test_basic_block_presnet_projects_the_first_stage():
    """The official R18vd/R34vd: the first block of stage 1 has a 1x1 conv
    + BN shortcut although it keeps 64 channels at stride 1."""
    ours = randomize_(PResNet(depth=18, out_indices=(1, 2, 3))).double()
    theirs = ResNetV1d(depth=18, out_indices=(1, 2, 3))
    extra = set(ours.state_dict()) - set(theirs.state_dict())
    assert extra == {
        'layer1.0.downsample.0.weight', 'layer1.0.downsample.1.weight',
        'layer1.0.downsample.1.bias', 'layer1.0.downsample.1.running_mean',
        'layer1.0.downsample.1.running_var',
        'layer1.0.downsample.1.num_batches_tracked'
    }
    assert not set(theirs.state_dict()) - set(ours.state_dict())
    # The shortcut is in the path: an identity one (conv = I, BN = id)
    # gives ResNetV1d's output.
    theirs = theirs.double()
    theirs.load_state_dict(
        {k: v for k, v in ours.state_dict().items() if k not in extra})
    ours.eval(), theirs.eval()
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        assert (ours(x)[0] - theirs(x)[0]).abs().max() > 1e-3
        shortcut = ours.layer1[0].downsample
        shortcut[0].weight.copy_(torch.eye(64)[:, :, None, None])
        shortcut[1].running_mean.zero_(), shortcut[1].running_var.fill_(1)
        shortcut[1].weight.fill_(1), shortcut[1].bias.zero_()
        shortcut[1].eps = 0.
        assert_float64_close(theirs(x), ours(x))
