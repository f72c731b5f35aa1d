# Copyright (c) OpenMMLab. All rights reserved.
"""Random weights in the layout of lyuwenyu/RT-DETR's ImageNet ResNet-vd
files, for tests that cannot download them."""
import torch

# Blocks per stage of the official PResNet depths.
PRESNET_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3),
                  101: (3, 4, 23, 3)}


def official_presnet_state(depth: int, seed: int = 0) -> dict:
    """Random weights in the layout of lyuwenyu/RT-DETR's ImageNet
    ResNet-vd files: its ``PResNet`` (variant 'd') state dict, with
    ``ConvNormLayer``s as ``conv`` + ``norm`` and no BatchNorm counters.

    Args:
        depth (int): 18, 34, 50 or 101.
        seed (int): Random seed.

    Returns:
        dict[str, Tensor]: Official keys to random tensors.
    """
    gen = torch.Generator().manual_seed(seed)
    state = {}

    def conv_norm(prefix, cin, cout, kernel):
        state[prefix + 'conv.weight'] = torch.randn(
            cout, cin, kernel, kernel, generator=gen) / (cin * kernel**2)**.5
        state[prefix + 'norm.weight'] = torch.rand(cout, generator=gen) + .5
        state[prefix + 'norm.bias'] = torch.randn(cout, generator=gen) * .1
        state[prefix + 'norm.running_mean'] = torch.randn(
            cout, generator=gen) * .1
        state[prefix + 'norm.running_var'] = torch.rand(
            cout, generator=gen) + .5

    for name, cin, cout in (('conv1_1', 3, 32), ('conv1_2', 32, 32),
                            ('conv1_3', 32, 64)):
        conv_norm(f'conv1.{name}.', cin, cout, 3)
    bottleneck = depth >= 50
    cin = 64
    for i, count in enumerate(PRESNET_BLOCKS[depth]):
        width = 64 * 2**i
        cout = width * 4 if bottleneck else width
        for j in range(count):
            prefix = f'res_layers.{i}.blocks.{j}.'
            if bottleneck:
                conv_norm(prefix + 'branch2a.', cin, width, 1)
                conv_norm(prefix + 'branch2b.', width, width, 3)
                conv_norm(prefix + 'branch2c.', width, cout, 1)
            else:
                conv_norm(prefix + 'branch2a.', cin, width, 3)
                conv_norm(prefix + 'branch2b.', width, width, 3)
            if j == 0:  # stride 2 (stages 2-4): pool, then 'short.conv'
                conv_norm(prefix + ('short.conv.' if i else 'short.'), cin,
                          cout, 1)
            cin = cout
    return state
