# Copyright (c) OpenMMLab. All rights reserved.
"""Pretrained inits load every weight or say which ones do not fit."""
import pytest
import torch

from mmriformer.models import PResNet, RIFormer
from mmriformer.testing import logged_messages, randomize_
from mmriformer.utils.pretrained import PretrainedUnavailableError


def presnet(checkpoint, **init):
    return PResNet(depth=18, out_indices=(1, 2, 3),
                   init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint),
                                 **init))


@pytest.fixture
def r18_file(tmp_path):
    """A PResNet-18 checkpoint in our layout, and its state."""
    state = randomize_(PResNet(depth=18, out_indices=(1, 2, 3))).state_dict()
    path = tmp_path / 'r18.pth'
    torch.save({'state_dict': state}, path)
    return path, state


def test_complete_checkpoint_loads(r18_file):
    path, state = r18_file
    model = presnet(path)
    model.init_weights()
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


@pytest.mark.parametrize('change,words', [
    ('drop', ['1 keys of PResNet not in the checkpoint',
              'layer1.0.downsample.0.weight']),
    ('add', ['1 checkpoint keys that PResNet lacks', 'fc.weight']),
    ('reshape', ['1 keys of other shapes', 'stem.0.weight: (32, 3, 2, 2) in '
                 'the checkpoint, (32, 3, 3, 3) in the model']),
])
def test_unfit_checkpoint_is_an_error(r18_file, tmp_path, change, words):
    _, state = r18_file
    state = dict(state)
    if change == 'drop':
        del state['layer1.0.downsample.0.weight']
    elif change == 'add':
        state['fc.weight'] = torch.zeros(10, 512)
    else:
        state['stem.0.weight'] = torch.zeros(32, 3, 2, 2)
    path = tmp_path / f'{change}.pth'
    torch.save(state, path)
    model = presnet(path)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as error:
        model.init_weights()
    message = str(error.value)
    for word in words + [str(path), 'model.backbone.init_cfg.checkpoint',
                         'init_cfg.optional']:
        assert word in message, message
    if change == 'reshape':  # refused before anything is loaded
        for key, value in model.state_dict().items():
            assert torch.equal(value, before[key]), key


def test_declared_optional_keys_may_stay(r18_file, tmp_path):
    _, state = r18_file
    state = {k: v for k, v in state.items()
             if not k.startswith('layer1.0.downsample.')}
    state['head.fc.weight'] = torch.zeros(10, 512)
    path = tmp_path / 'partial.pth'
    torch.save(state, path)
    model = presnet(path, optional=['layer1.0.downsample', 'head'])
    initial = model.layer1[0].downsample[0].weight.clone()
    with logged_messages() as messages:
        model.init_weights()
    assert torch.equal(model.layer1[0].downsample[0].weight, initial)
    assert torch.equal(model.stem[0].weight, state['stem.0.weight'])
    assert any("['layer1.0.downsample'] are not in it" in m
               and "its ['head'] are not used" in m for m in messages)


def test_unknown_init_cfg_key(r18_file):
    model = presnet(r18_file[0], strict=False)
    with pytest.raises(ValueError, match=r"model.backbone.init_cfg has "
                       r"\['strict'\], which a Pretrained init does not take"):
        model.init_weights()


@pytest.mark.parametrize('backbone', [PResNet, RIFormer])
def test_unreachable_url(backbone, tmp_path, monkeypatch):
    """Offline or unreachable: the URL, the config key and both ways on."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))  # nothing cached
    # Port 9 (discard) on this machine: the connection is refused.
    url = 'http://127.0.0.1:9/weights/unreachable_20990101.pth'
    kwargs = dict(depth=50) if backbone is PResNet else {}
    model = backbone(**kwargs,
                     init_cfg=dict(type='Pretrained', checkpoint=url))
    with pytest.raises(PretrainedUnavailableError) as error:
        model.init_weights()
    message = str(error.value)
    for words in (url, 'model.backbone.init_cfg.checkpoint',
                  '--cfg-options model.backbone.init_cfg.checkpoint=/path/to',
                  '--cfg-options model.backbone.init_cfg=None'):
        assert words in message, message
