# Copyright (c) OpenMMLab. All rights reserved.
"""RIFormer edge cases: deploy form from scratch, freezing across
switch_to_deploy, BN norms, equal widths, partial checkpoints, with_cp after
frozen layers."""
import pytest
import torch
from torch import nn

from mmriformer.models.backbones import RIFormer
from mmriformer.testing import (assert_float64_close, logged_messages,
                                randomize_)

TINY = dict(layers=[1, 1, 2, 1], embed_dims=[8, 16, 24, 32])


def residual_sizes(model, x):
    """Per block: max |block(y) - y| over max |y| on the block's input."""
    sizes = []
    y = model.patch_embed(x)
    for layer in model.network:
        if isinstance(layer, nn.Sequential):
            for block in layer:
                z = block(y)
                sizes.append(((z - y).abs().max() / y.abs().max()).item())
                y = z
        else:
            y = layer(y)
    return torch.tensor(sizes)


def test_deploy_from_scratch_starts_like_the_folded_train_form():
    """With layer scale 1e-5 each block starts near the identity; built
    directly in deploy form it used to start with layer scales of 1."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    train = RIFormer(arch='s12')
    train.init_weights()
    direct = RIFormer(arch='s12', deploy=True)
    direct.init_weights()
    train.switch_to_deploy()
    with torch.no_grad():
        expected, got = residual_sizes(train, x), residual_sizes(direct, x)
    # Both draw from the same initial distribution, so each block's change
    # has the same order of magnitude (about 1e-5); scales of 1 give ~1.
    assert (expected < 1e-3).all()
    assert ((got / expected).log10().abs() < 1).all(), (got, expected)


def test_switch_to_deploy_keeps_frozen_stages_frozen():
    model = RIFormer(arch=TINY, frozen_stages=2, out_indices=(2, 4, 6))
    model.train()
    model.switch_to_deploy()
    frozen = [model.patch_embed, *model.network[:3], model.norm2]
    for module in frozen:
        assert not module.training
        assert not any(p.requires_grad for p in module.parameters())
    assert all(p.requires_grad for p in model.network[3].parameters())
    assert model.network[4].training


def test_bn_deploy_norms_follow_the_model():
    """The affine-free norm of a BN deploy block has running statistics:
    they go where the model is (checked through the dtype, which moves the
    same way as the device)."""
    model = randomize_(
        RIFormer(arch=TINY, norm_cfg=dict(type='BN'))).double().eval()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        expected = model(x)[0]
        model.switch_to_deploy()
        got = model(x)[0]
    assert {b.dtype for b in model.buffers() if b.is_floating_point()} == {
        torch.float64}
    # float64 through a few blocks: rounding ~1e-14; a wrong fold >= 1e-3.
    assert_float64_close(expected, got)


def test_equal_widths_have_no_downsampling_layer_like_mmpretrain():
    from mmpretrain.models.backbones import RIFormer as MMPretrainRIFormer
    arch = dict(layers=[1, 1, 1, 1], embed_dims=[8, 8, 16, 16],
                mlp_ratios=[4, 4, 4, 4], layer_scale_init_value=1e-5)
    # Positions: stage0, stage1, down, stage2, stage3 (widths 8 8 16 16 16).
    # mmpretrain sizes norm{i} by embed_dims[(i + 1) // 2], right for these.
    indices = (0, 1, 3, 4)
    theirs = randomize_(MMPretrainRIFormer(arch=arch, out_indices=indices))
    ours = RIFormer(arch=arch, out_indices=indices)
    assert len(ours.network) == len(theirs.network) == 5
    ours.load_state_dict(theirs.state_dict(), strict=True)
    assert ours.out_channels == [8, 8, 16, 16]
    theirs, ours = theirs.double().eval(), ours.double().eval()
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert len(got) == len(expected) == 4
    # The same float64 operations: equal up to rounding (~1e-15).
    assert_float64_close(expected, got)
    with pytest.raises(ValueError, match=r'0\.\.4'):
        RIFormer(arch=arch, out_indices=(5, ))


def test_checkpoint_with_other_output_norms_loads(tmp_path):
    """An ImageNet checkpoint holds norm6; a detector may not use it."""
    source = randomize_(RIFormer(arch=TINY, out_indices=(6, )))
    path = tmp_path / 'in1k.pth'
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in source.state_dict().items()}},
               path)
    model = RIFormer(
        arch=TINY, out_indices=(2, 4),
        init_cfg=dict(type='Pretrained', checkpoint=str(path),
                      prefix='backbone.'))
    with logged_messages() as messages:
        model.init_weights()
    assert any("['norm2', 'norm4'] are not in it" in m
               and "['norm6'] are not used" in m for m in messages), messages
    assert torch.equal(model.network[6][0].mlp.fc2.weight,
                       source.network[6][0].mlp.fc2.weight)


def test_incomplete_block_weights_name_the_missing_keys():
    state = RIFormer(arch=TINY).state_dict()
    del state['network.4.1.token_mixer.affine.bias']
    with pytest.raises(ValueError,
                       match=r"'network\.4\.1\.token_mixer\.affine\.bias'"):
        RIFormer(arch=TINY, deploy=True).load_state_dict(state)


def saved_bytes(module, x):
    """Bytes autograd keeps for backward during ``module(x)``; then runs
    backward from the sum of the output."""
    sizes = []

    def pack(tensor):
        sizes.append(tensor.numel() * tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x).sum().backward()
    return sum(sizes)


def test_with_cp_checkpoints_the_block_after_frozen_layers():
    """The first block after a frozen stage gets an input that needs no
    gradient, but its own weights do: it must still be checkpointed."""
    model = RIFormer(arch=TINY, frozen_stages=1, with_cp=True)
    model.double().train()
    block = model.network[2][0]
    # What the frozen layers hand it; float64, so that the two backward
    # passes compare to rounding (~1e-15) and not to float32's.
    x = torch.randn(2, 16, 16, 16, dtype=torch.float64)
    assert not x.requires_grad and block.mlp.fc1.weight.requires_grad
    checkpointed = saved_bytes(block, x)
    grad = block.mlp.fc1.weight.grad.clone()
    block.zero_grad()
    block.with_cp = False
    plain = saved_bytes(block, x)
    # Checkpointing keeps at most the block's input for backward; without
    # it, each layer keeps its activations (norms, 4x wider MLP hidden).
    size_of_x = x.numel() * x.element_size()
    assert checkpointed <= size_of_x and plain > 4 * size_of_x
    assert_float64_close(grad, block.mlp.fc1.weight.grad)


def test_with_cp_same_gradients_less_activation_memory():
    """Whole backbone: checkpointing changes no gradient (float64: only
    rounding, ~1e-16) and keeps far fewer activations for backward."""
    plain = randomize_(RIFormer(arch=TINY, out_indices=(2, 4, 6))).double()
    ckpt = RIFormer(arch=TINY, out_indices=(2, 4, 6), with_cp=True).double()
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)

    def outputs_sum(model):
        return lambda images: sum(o.square().sum() for o in model(images))

    memory = {}
    for name, model in (('plain', plain), ('ckpt', ckpt)):
        model.train()
        memory[name] = saved_bytes(outputs_sum(model), x)
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-10, atol=1e-12,
                                   msg=name)
    # Per block, checkpointing keeps only its input (1 map) instead of the
    # norms' outputs and the 4x wider MLP activations (> 8 maps); the stem
    # and downsampling convolutions keep theirs either way. Measured: 0.31
    # here, 0.13 for s12 at 224 px; a no-op would give 1.
    assert memory['ckpt'] < memory['plain'] / 2, memory
