# Copyright (c) OpenMMLab. All rights reserved.
"""Our HGNetV2 against HF transformers' executed ``HGNetV2Backbone``.

HF runs in the oracle venv (:mod:`mmriformer.testing.hf_hgnetv2_oracle`):
random, well-conditioned backbones of D-FINE-N's layout (B0, learnt
affines) and D-FINE-L's (B4, none) are saved there with their features on a
fixed batch; B0 also inside HF's ``DFineForObjectDetection`` (frozen norms)
and in the official D-FINE checkpoint's names. Here the weights are
converted, must fill our backbone exactly (every tensor, none left over)
and give the same features.

Without the oracle venv (no package index to build it from) these tests
fail with the reason; they never skip.
"""
import json
import shutil

import pytest
import torch

from mmriformer.converters.dfine import (HF_DFINE_BACKBONE_PREFIX,
                                         hf_hgnetv2_to_ours)
from mmriformer.converters.rtdetr import read_safetensors
from mmriformer.models import HGNetV2
from mmriformer.testing import (assert_float32_error_within,
                                assert_float64_close)
from mmriformer.testing.oracle import OracleUnavailable, run_hf_hgnetv2_oracle

# arch -> use_lab, as D-FINE-N (B0) and D-FINE-L (B4) use them.
ARCHS = {'B0': True, 'B4': False}
ALL_STAGES = (0, 1, 2, 3)


@pytest.fixture(scope='module')
def oracle(tmp_path_factory):
    """The oracle's folder (about 170 MB, removed afterwards)."""
    out = tmp_path_factory.mktemp('hf_hgnetv2_oracle')
    try:
        run_hf_hgnetv2_oracle(str(out), ['B0:dfine', 'B4'])
    except OracleUnavailable as error:
        pytest.fail(f'The HF transformers oracle is unavailable, so the '
                    f'HGNetV2 mapping cannot be checked: {error}')
    yield out
    shutil.rmtree(out)


def load_exactly(arch, state, out_indices=ALL_STAGES):
    """Our backbone with ``state``, which must hold exactly its tensors."""
    model = HGNetV2(arch, use_lab=ARCHS[arch], out_indices=out_indices)
    own = model.state_dict()
    assert sorted(state) == sorted(own), (
        f'missing {sorted(set(own) - set(state))[:5]}, unexpected '
        f'{sorted(set(state) - set(own))[:5]}')
    model.load_state_dict(state, strict=True)
    return model.eval()


def run(model, pixels):
    with torch.no_grad():
        return list(model(pixels))


def test_oracle_is_well_conditioned(oracle):
    """Features of unit-ish scale at every stage: the input, and so every
    weight on its path, counts in them."""
    report = json.loads((oracle / 'report.json').read_text())
    for arch in ARCHS:
        assert all(0.3 < std < 1e3 for std in report[arch]['feature_std'])


@pytest.mark.parametrize('arch', ARCHS)
def test_hf_backbone_converts_and_matches(oracle, arch):
    hf = read_safetensors(str(oracle / arch / 'model.safetensors'))
    state = hf_hgnetv2_to_ours(hf)
    # Renamed one to one: HF saves counters for its trained-mode norms.
    assert len(state) == len(hf)
    model = load_exactly(arch, state)
    reference = torch.load(oracle / f'{arch}_features.pt')
    pixels = torch.load(oracle / 'input.pt')
    assert_float64_close(reference['float64'],
                         run(model.double(), pixels.double()))
    assert_float32_error_within(reference['float64'],
                                run(model.float(), pixels),
                                reference['float32'])


def test_hf_dfine_backbone_converts_and_matches(oracle):
    """HF's D-FINE keeps the backbone under ``model.backbone.model.``, with
    frozen norms (no counters)."""
    hf = read_safetensors(str(oracle / 'B0_dfine' / 'model.safetensors'))
    backbone = {
        k[len(HF_DFINE_BACKBONE_PREFIX):]: v
        for k, v in hf.items() if k.startswith(HF_DFINE_BACKBONE_PREFIX)
    }
    assert not any(k.endswith('num_batches_tracked') for k in backbone)
    model = load_exactly('B0', hf_hgnetv2_to_ours(backbone), (1, 2, 3))
    pixels = torch.load(oracle / 'input.pt').double()
    assert_float64_close(torch.load(oracle / 'B0_dfine_features.pt'),
                         run(model.double(), pixels))


@pytest.mark.parametrize('arch', ARCHS)
def test_official_checkpoint_loads_by_prefix_strip(oracle, arch):
    """``backbone.*`` of an official D-FINE checkpoint loads strictly with
    the prefix stripped, also without counters (D-FINE-L's frozen norms)."""
    official = torch.load(oracle / f'{arch}_official.pth')['model']
    state = {k[len('backbone.'):]: v for k, v in official.items()}
    counters = [k for k in state if k.endswith('num_batches_tracked')]
    assert (not counters) == (arch == 'B4')
    model = HGNetV2(arch, use_lab=ARCHS[arch], out_indices=ALL_STAGES)
    model.load_state_dict(state, strict=True)
    pixels = torch.load(oracle / 'input.pt').double()
    reference = torch.load(oracle / f'{arch}_features.pt')['float64']
    assert_float64_close(reference, run(model.double().eval(), pixels))
