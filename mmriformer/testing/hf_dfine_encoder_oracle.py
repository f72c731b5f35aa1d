# Copyright (c) OpenMMLab. All rights reserved.
"""HF transformers' D-FINE hybrid encoder with random weights on given
inputs; runs in the oracle venv.

Run with the oracle venv's Python (see :mod:`mmriformer.testing.oracle`,
``run_oracle_script``), as a script: it imports only the standard library,
torch and transformers. It reads from ``IN.pt`` (``torch.save`` of a
dict):

- ``config``: keyword arguments of ``DFineConfig`` (the encoder's
  ``encoder_in_channels``, ``feat_strides``, ``encoder_hidden_dim``,
  ``encode_proj_layers``, ``encoder_ffn_dim``, ``hidden_expansion``,
  ``depth_mult`` ...);
- ``seed`` (int, of the weights);
- ``feats``: the backbone maps, finest first, float64, each level half
  the size of the previous one (HF upsamples by exactly 2).

It builds what ``DFineModel`` runs before its decoder: the input
projections (``encoder_input_proj``, a 1x1 conv and a BatchNorm per level)
and ``DFineHybridEncoder``, with eager attention, and redraws every weight
and norm statistic: matrices and kernels ~ N(0, 1 / fan_in), norm scales
and running variances in [0.5, 1.5], biases and running means ~ N(0, 0.1).
It runs them in eval mode (BatchNorms on their running statistics) in
float64 and in float32 and writes to ``OUT.pt``:

- ``state``: the state dict (float64) in ``DFineModel``'s names without
  its ``model.`` prefix: ``encoder_input_proj.*`` and ``encoder.*``;
- ``float64``, ``float32``: the encoder's output maps, finest first.

Usage::

    python hf_dfine_encoder_oracle.py IN.pt OUT.pt
"""
import copy
import math
import sys

import torch


def redraw_(model, seed: int) -> None:
    """Random, well-conditioned weights and statistics (module doc)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2:
                new = torch.randn(param.shape, generator=gen) / math.sqrt(
                    param[0].numel())
            elif name.endswith('weight'):
                new = torch.rand(param.shape, generator=gen) + 0.5
            else:
                new = torch.randn(param.shape, generator=gen) * 0.1
            param.copy_(new)
        for name, buf in model.named_buffers():
            if name.endswith('running_var'):
                buf.copy_(torch.rand(buf.shape, generator=gen) + 0.5)
            elif name.endswith('running_mean'):
                buf.copy_(torch.randn(buf.shape, generator=gen) * 0.1)


def main(in_path: str, out_path: str) -> None:
    """Build, redraw and run HF's D-FINE encoder on ``in_path``'s inputs.

    Args:
        in_path (str): The inputs, laid out as the module docstring says.
        out_path (str): Where the outputs are saved.
    """
    from torch import nn
    from transformers import DFineConfig
    from transformers.models.d_fine.modeling_d_fine import DFineHybridEncoder

    inputs = torch.load(in_path)
    config = DFineConfig(**inputs['config'])
    config._attn_implementation = 'eager'
    torch.manual_seed(0)
    model = nn.Module()
    model.encoder_input_proj = nn.ModuleList(
        nn.Sequential(
            nn.Conv2d(c, config.encoder_hidden_dim, 1, bias=False),
            nn.BatchNorm2d(config.encoder_hidden_dim))
        for c in config.encoder_in_channels)
    model.encoder = DFineHybridEncoder(config)
    redraw_(model, inputs['seed'])
    model = model.double().eval()

    out = dict(state={k: v.clone() for k, v in model.state_dict().items()})
    for dtype, net in ((torch.float64, model),
                       (torch.float32, copy.deepcopy(model).float())):
        with torch.no_grad():
            proj = [
                p(f.to(dtype))
                for p, f in zip(net.encoder_input_proj, inputs['feats'])
            ]
            result = net.encoder(inputs_embeds=proj)
        out[str(dtype).split('.')[-1]] = list(result.last_hidden_state)
    torch.save(out, out_path)


if __name__ == '__main__':
    if len(sys.argv) != 3:
        sys.exit(f'usage: {sys.argv[0]} IN.pt OUT.pt')
    main(*sys.argv[1:])
