# Copyright (c) OpenMMLab. All rights reserved.
"""The HF transformers side of the HGNetv2 oracle; runs in the oracle venv.

Run by :func:`mmriformer.testing.oracle.run_hf_hgnetv2_oracle` with the
oracle venv's Python, as a script: it imports only the standard library,
torch and transformers. For each requested arch it

1. builds ``HGNetV2Backbone`` from a config of D-FINE's layout (nothing is
   downloaded) returning all four stages, and redraws every weight: convs
   ~ N(0, 1 / fan_in), norm scales and learnt-affine scales in [0.5, 1.5],
   norm and learnt-affine biases ~ N(0, 0.1). The BatchNorm statistics are
   measured on a calibration batch (so in eval mode no layer's output
   vanishes or is left to its biases, at any depth) and then perturbed: means
   moved by N(0, 0.1) standard deviations, variances scaled by [0.5, 1.5];
2. saves it with ``save_pretrained`` (``<out>/<arch>/``) and runs it in
   eval mode on a fixed batch (``<out>/input.pt``, (2, 3, 161, 129), odd
   sizes so the ceil-mode pool and the paddings count), in float32 and in
   float64 (``<out>/<arch>_features.pt``: ``{'float32': [...],
   'float64': [...]}``);
3. writes the same weights as an official D-FINE checkpoint would hold
   them (``<out>/<arch>_official.pth``, ``{'model': {'backbone.*': ...}}``),
   renamed here from Peterande/D-FINE's module names independently of the
   converter under test; without ``num_batches_tracked`` for the archs
   whose D-FINE detectors freeze their norms (D-FINE-L's B4, X's B5);
4. with ``:dfine``, builds ``DFineForObjectDetection`` around the same
   backbone (its norms frozen, as HF's D-FINE has them), loads the weights,
   saves it (``<out>/<arch>_dfine/``) and its backbone's features
   (``<out>/<arch>_dfine_features.pt``, float64).

``<out>/report.json`` has, per arch, the scale (standard deviation) of
each float64 feature map and the relative difference of float32 from
float64, and the versions.

Usage::

    python hf_hgnetv2_oracle.py OUT_DIR ARCH[:dfine] [ARCH[:dfine] ...]
"""
import json
import math
import os
import sys

import torch

# D-FINE's archs (Peterande/D-FINE, HGNetv2.arch_configs) as HF's config
# fields: stem (in, mid, out) and per stage (in, mid, out, blocks,
# downsample, light, kernel, layers), and whether D-FINE uses the learnt
# affines with it (N, S, M: yes; L, X: no). B2 is D-FINE-M's, B5 X's.
ARCHS = {
    'B0':
    dict(stem=[3, 16, 16],
         stages=[[16, 16, 64, 1, False, False, 3, 3],
                 [64, 32, 256, 1, True, False, 3, 3],
                 [256, 64, 512, 2, True, True, 5, 3],
                 [512, 128, 1024, 1, True, True, 5, 3]],
         use_lab=True),
    'B2':
    dict(stem=[3, 24, 32],
         stages=[[32, 32, 96, 1, False, False, 3, 4],
                 [96, 64, 384, 1, True, False, 3, 4],
                 [384, 128, 768, 3, True, True, 5, 4],
                 [768, 256, 1536, 1, True, True, 5, 4]],
         use_lab=True),
    'B4':
    dict(stem=[3, 32, 48],
         stages=[[48, 48, 128, 1, False, False, 3, 6],
                 [128, 96, 512, 1, True, False, 3, 6],
                 [512, 192, 1024, 3, True, True, 5, 6],
                 [1024, 384, 2048, 1, True, True, 5, 6]],
         use_lab=False),
    'B5':
    dict(stem=[3, 32, 64],
         stages=[[64, 64, 128, 1, False, False, 3, 6],
                 [128, 128, 512, 2, True, False, 3, 6],
                 [512, 256, 1024, 5, True, True, 5, 6],
                 [1024, 512, 2048, 2, True, True, 5, 6]],
         use_lab=False),
}
# D-FINE-L and X (B4, B5) replace their norms by frozen ones, which save no
# counters.
FROZEN_NORMS = ('B4', 'B5')
INPUT_SHAPE = (2, 3, 161, 129)


def backbone_config(arch: str):
    """HF's ``HGNetV2Config`` of one D-FINE arch, returning four stages."""
    from transformers import HGNetV2Config
    spec = ARCHS[arch]
    columns = list(zip(*spec['stages']))
    return HGNetV2Config(
        stem_channels=spec['stem'],
        stage_in_channels=list(columns[0]),
        stage_mid_channels=list(columns[1]),
        stage_out_channels=list(columns[2]),
        stage_num_blocks=list(columns[3]),
        stage_downsample=list(columns[4]),
        stage_light_block=list(columns[5]),
        stage_kernel_size=list(columns[6]),
        stage_numb_of_layers=list(columns[7]),
        use_learnable_affine_block=spec['use_lab'],
        depths=list(columns[3]),
        hidden_sizes=list(columns[2]),
        embedding_size=spec['stem'][2],
        out_features=['stage1', 'stage2', 'stage3', 'stage4'])


def redraw_(model, calibration: torch.Tensor, seed: int) -> None:
    """Random, well-conditioned weights and statistics (module doc)."""
    gen = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for name, param in model.named_parameters():
            leaf = name.rsplit('.', 1)[-1]
            if param.dim() >= 2:
                fan_in = param[0].numel()
                new = torch.randn(param.shape, generator=gen) / math.sqrt(
                    fan_in)
            elif leaf in ('weight', 'scale'):
                new = torch.rand(param.shape, generator=gen) + 0.5
            else:
                new = torch.randn(param.shape, generator=gen) * 0.1
            param.copy_(new)
    calibrate_norms_(model, norms, calibration, gen)


def calibrate_norms_(model, norms: list, calibration: torch.Tensor,
                     gen: torch.Generator) -> None:
    """Give ``norms`` (BatchNorms of ``model``) the statistics of
    ``model(calibration)`` in training mode, then perturb them: means moved
    by N(0, 0.1) standard deviations, variances scaled by [0.5, 1.5]. The
    model is left in eval mode."""
    with torch.no_grad():
        # momentum 1: the running statistics become this batch's.
        for norm in norms:
            norm.momentum = 1.0
        model.train()
        model(calibration)
        model.eval()
        for norm in norms:
            norm.momentum = 0.1
            std = norm.running_var.sqrt()
            norm.running_mean.add_(
                0.1 * std * torch.randn(std.shape, generator=gen))
            norm.running_var.mul_(
                torch.rand(std.shape, generator=gen) + 0.5)


def features(backbone, pixels: torch.Tensor) -> list:
    """The backbone's four feature maps."""
    with torch.no_grad():
        return [f.clone() for f in backbone(pixels).feature_maps]


def build_dfine(arch: str, state: dict):
    """HF's D-FINE around ``arch`` with the given backbone weights."""
    from transformers import DFineConfig, DFineForObjectDetection
    config = backbone_config(arch)
    config.out_features = ['stage2', 'stage3', 'stage4']
    channels = ARCHS[arch]['stages']
    model = DFineForObjectDetection(
        DFineConfig(backbone_config=config,
                    encoder_in_channels=[s[2] for s in channels[1:]]))
    backbone = model.model.backbone.model
    # Frozen norms have no counters.
    missing, unexpected = backbone.load_state_dict(
        {k: v
         for k, v in state.items() if not k.endswith('num_batches_tracked')},
        strict=False)
    if missing or unexpected:
        raise KeyError(f'D-FINE backbone: missing {missing}, unexpected '
                       f'{unexpected}')
    return model.eval()


def official_state(hf_state: dict, arch: str) -> dict:
    """The weights as Peterande/D-FINE's ``HGNetv2`` names them, under
    ``backbone.``: ``stem`` and ``stages`` for HF's ``embedder`` and
    ``encoder.stages``, ``conv`` and ``bn`` (``ConvBNAct``) for
    ``convolution`` and ``normalization``."""
    out = {}
    for key, value in hf_state.items():
        if arch in FROZEN_NORMS and key.endswith('num_batches_tracked'):
            continue
        parts = key.split('.')
        if parts[0] == 'embedder':
            parts[0] = 'stem'
        else:
            assert parts[:2] == ['encoder', 'stages'], key
            parts = parts[1:]
        parts = [{
            'convolution': 'conv',
            'normalization': 'bn'
        }.get(p, p) for p in parts]
        out['backbone.' + '.'.join(parts)] = value.clone()
    return out


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest ``|a - b|`` over the largest ``|b|``, in float64."""
    return ((a.double() - b.double()).abs().max() /
            b.double().abs().max()).item()


def main(out_dir: str, requests) -> None:
    from transformers import HGNetV2Backbone
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    os.makedirs(out_dir, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randn(INPUT_SHAPE, generator=gen)
    calibration = torch.randn((4, ) + INPUT_SHAPE[1:], generator=gen)
    torch.save(pixels, os.path.join(out_dir, 'input.pt'))
    report = {}
    for seed, request in enumerate(requests):
        arch, _, dfine = request.partition(':')
        torch.manual_seed(seed)
        model = HGNetV2Backbone(backbone_config(arch))
        redraw_(model, calibration, seed=200 + seed)
        model.save_pretrained(os.path.join(out_dir, arch))
        state = {k: v.clone() for k, v in model.state_dict().items()}
        single = features(model, pixels)
        double = features(model.double(), pixels.double())
        torch.save({'model': official_state(state, arch)},
                   os.path.join(out_dir, f'{arch}_official.pth'))
        torch.save(dict(float32=single, float64=double),
                   os.path.join(out_dir, f'{arch}_features.pt'))
        report[arch] = dict(
            tensors=len(state),
            feature_std=[f.std().item() for f in double],
            float32_error=max(rel_diff(s, d) for s, d in zip(single, double)))
        if dfine:
            detector = build_dfine(arch, state)
            detector.save_pretrained(os.path.join(out_dir, f'{arch}_dfine'))
            backbone = detector.model.backbone.model.double()
            torch.save(features(backbone, pixels.double()),
                       os.path.join(out_dir, f'{arch}_dfine_features.pt'))
            report[arch]['dfine_backbone_tensors'] = len(
                backbone.state_dict())
    import transformers
    report['versions'] = dict(torch=torch.__version__,
                              transformers=transformers.__version__)
    with open(os.path.join(out_dir, 'report.json'), 'w') as f:
        json.dump(report, f)


if __name__ == '__main__':
    if len(sys.argv) < 3 or any(
            r.partition(':')[0] not in ARCHS or r.partition(':')[2] not in (
                '', 'dfine') for r in sys.argv[2:]):
        sys.exit(f'usage: {sys.argv[0]} OUT_DIR ARCH[:dfine] ... with archs '
                 f'from {sorted(ARCHS)}')
    main(sys.argv[1], sys.argv[2:])
