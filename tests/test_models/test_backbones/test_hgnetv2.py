# Copyright (c) OpenMMLab. All rights reserved.
"""HGNetV2's outputs, freezing and weight loading (the mapping to HF's and
the official layouts is proven in test_hgnetv2_hf.py)."""
import pytest
import torch
from mmdet.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from mmriformer.converters.dfine.backbone_keys import hgnetv2_to_ours
from mmriformer.converters.rtdetr import UnknownLayoutError
from mmriformer.models import HGNetV2
from mmriformer.models.backbones.hgnetv2 import LearnableAffine
from mmriformer.testing import randomize_

# arch -> output channels of the four stages (D-FINE's HGNetv2 configs).
STAGE_CHANNELS = {
    'B0': (64, 256, 512, 1024),
    'B1': (64, 256, 512, 1024),
    'B2': (96, 384, 768, 1536),
    'B3': (128, 512, 1024, 2048),
    'B4': (128, 512, 1024, 2048),
    'B5': (128, 512, 1024, 2048),
}


@pytest.mark.parametrize('arch', STAGE_CHANNELS)
def test_outputs_per_out_indices(arch):
    model = MODELS.build(
        dict(type='HGNetV2', arch=arch, out_indices=(0, 1, 2, 3))).eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 96, 64))
    assert [tuple(o.shape) for o in outs] == [
        (1, c, 96 // s, 64 // s)
        for c, s in zip(STAGE_CHANNELS[arch], (4, 8, 16, 32))
    ]
    assert model.out_channels == list(STAGE_CHANNELS[arch])


def test_d_fine_n_outputs_and_odd_sizes():
    """D-FINE-N returns stages 2 and 3; sizes round up."""
    model = HGNetV2('B0', use_lab=True, out_indices=(3, 2)).eval()
    with torch.no_grad():
        outs = model(torch.rand(2, 3, 161, 129))
    assert [tuple(o.shape) for o in outs] == [(2, 512, 11, 9),
                                              (2, 1024, 6, 5)]
    assert model.out_channels == [512, 1024]


def test_learnt_affines_follow_activations_only():
    with_lab, without = HGNetV2('B0', use_lab=True), HGNetV2('B0')
    labs = [n for n, m in with_lab.named_modules()
            if isinstance(m, LearnableAffine)]
    assert not any(isinstance(m, LearnableAffine) for m in without.modules())
    # Not after the downsampling convs or the first conv of light blocks,
    # which have no activation.
    assert not [n for n in labs if 'downsample' in n or 'conv1' in n]
    # 5 stem convs; per block 3 layers and 2 aggregation convs (5 blocks).
    assert len(labs) == 5 + 5 * 5
    extra = sum(p.numel() for p in with_lab.parameters()) - sum(
        p.numel() for p in without.parameters())
    assert extra == 2 * len(labs)


@pytest.mark.parametrize('frozen_stages', [-1, 0, 1, 4])
def test_frozen_stages(frozen_stages):
    model = HGNetV2('B0', frozen_stages=frozen_stages)
    model.train()
    frozen = [] if frozen_stages < 0 else [model.stem] + list(
        model.stages[:frozen_stages])
    for module in [model.stem, *model.stages]:
        is_frozen = any(module is f for f in frozen)
        assert all(p.requires_grad != is_frozen for p in module.parameters())
        assert all(m.training != is_frozen for m in module.modules())


def test_norm_eval_and_frozen_norms():
    """D-FINE-L/X's frozen norms: no gradients, statistics kept."""
    model = HGNetV2(
        'B0',
        frozen_stages=0,
        norm_eval=True,
        norm_cfg=dict(type='BN', requires_grad=False))
    model.train()
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert norms and not any(m.training for m in norms)
    assert not any(p.requires_grad for m in norms for p in m.parameters())
    assert model.stages[0].blocks[0].layers[0].conv.weight.requires_grad
    before = norms[-1].running_mean.clone()
    model(torch.rand(2, 3, 64, 64))
    assert torch.equal(norms[-1].running_mean, before)


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match=r"'B9'.*\['B0', 'B1', 'B2', 'B3', "
                       r"'B4', 'B5'\]"):
        HGNetV2('B9')
    with pytest.raises(ValueError, match='distinct stages from 0 to 3'):
        HGNetV2(out_indices=(1, 4))
    with pytest.raises(ValueError, match='frozen_stages=5 is out of range'):
        HGNetV2(frozen_stages=5)


def save_checkpoint(path, state, prefix='backbone.'):
    torch.save({'state_dict': {prefix + k: v for k, v in state.items()}},
               path)


@pytest.mark.parametrize('counters', [True, False])
def test_pretrained_official_layout(tmp_path, counters):
    """A D-FINE detector's ``backbone.*`` loads strictly; frozen-norm
    checkpoints (D-FINE-L/X) have no counters."""
    source = randomize_(HGNetV2('B0', use_lab=True), seed=1)
    state = {
        k: v
        for k, v in source.state_dict().items()
        if counters or not k.endswith('num_batches_tracked')
    }
    save_checkpoint(tmp_path / 'dfine.pth', state)
    model = HGNetV2(
        'B0',
        use_lab=True,
        init_cfg=dict(
            type='Pretrained',
            checkpoint=str(tmp_path / 'dfine.pth'),
            prefix='backbone.'))
    model.init_weights()
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_pretrained_hf_layout(tmp_path):
    source = randomize_(HGNetV2('B0', use_lab=True), seed=2)
    hf = {}
    for key, value in source.state_dict().items():
        key = key.replace('.conv.', '.convolution.').replace(
            '.bn.', '.normalization.')
        key = key.replace('stem.', 'embedder.', 1) if key.startswith(
            'stem.') else 'encoder.' + key
        hf[key] = value
    save_checkpoint(tmp_path / 'hf.pth', hf, prefix='')
    model = HGNetV2('B0', use_lab=True, init_cfg=dict(
        type='Pretrained', checkpoint=str(tmp_path / 'hf.pth')))
    model.init_weights()
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_pretrained_of_another_arch_is_refused(tmp_path):
    save_checkpoint(tmp_path / 'b2.pth', HGNetV2('B2').state_dict())
    model = HGNetV2('B0', init_cfg=dict(
        type='Pretrained', checkpoint=str(tmp_path / 'b2.pth'),
        prefix='backbone.'))
    with pytest.raises(ValueError, match='HGNetV2-B0 with use_lab=False'):
        model.init_weights()


def test_converter_names_what_it_does_not_know():
    with pytest.raises(UnknownLayoutError, match="init_cfg.prefix"):
        hgnetv2_to_ours({'backbone.stem.stem1.conv.weight': torch.zeros(1)})
    with pytest.raises(UnknownLayoutError, match='fc.weight'):
        hgnetv2_to_ours({
            'embedder.stem1.convolution.weight': torch.zeros(1),
            'fc.weight': torch.zeros(1)
        })
