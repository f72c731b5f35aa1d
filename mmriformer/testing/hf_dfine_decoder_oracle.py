# Copyright (c) OpenMMLab. All rights reserved.
"""HF transformers' D-FINE decoder with random weights on given inputs;
runs in the oracle venv.

Run with the oracle venv's Python (see :mod:`mmriformer.testing.oracle`,
``run_oracle_script``), as a script: it imports only the standard library,
torch and transformers. It reads from ``IN.pt`` (``torch.save`` of a
dict):

- ``config``: keyword arguments of ``DFineConfig`` (the decoder's sizes,
  ``max_num_bins``, ``reg_scale``, ``up``, ``decoder_n_points`` ...);
- ``num_classes`` (int) and ``seed`` (int, of the weights);
- ``query`` (N, Lq, d_model), ``reference_logits`` (N, Lq, 4) (the initial
  boxes before the sigmoid, as HF's decoder takes them) and ``memory``
  (N, L, d_model), float64;
- ``spatial_shapes``: (H, W) of each level, a list of int pairs.

It builds HF's ``DFineDecoder`` with ``class_embed`` (``nn.Linear``) and
``bbox_embed`` (``DFineMLP``) attached as ``DFineForObjectDetection``
attaches them, with eager attention, and redraws every weight: matrices
~ N(0, 1 / fan_in), LayerNorm scales in [0.5, 1.5], biases ~ N(0, 0.1)
(the sampling offsets' on top of their initial grid, so the points still
spread around the box); ``up``, ``reg_scale`` and ``num_points_scale``
keep their values (the latter recomputed in float64, as HF makes it in
float32). It runs the decoder in training mode (all layers
report; the config has no dropout) in float64 and in float32 and writes
to ``OUT.pt``:

- ``state``: the decoder's state dict (float64), ``class_embed.*`` and
  ``bbox_embed.*`` included;
- ``float64``, ``float32``: dicts of ``intermediate_logits``
  (N, 1 + layers, Lq, C), ``intermediate_reference_points``
  (N, 1 + layers, Lq, 4) (both with the pre-bbox head's first),
  ``intermediate_predicted_corners`` (N, layers, Lq, 4 * (bins)) and
  ``initial_reference_points`` (N, layers, Lq, 4).

Usage::

    python hf_dfine_decoder_oracle.py IN.pt OUT.pt
"""
import copy
import math
import sys

import torch

OUTPUTS = ('intermediate_logits', 'intermediate_reference_points',
           'intermediate_predicted_corners', 'initial_reference_points')


def redraw_(model, seed: int) -> None:
    """Random, well-conditioned weights (module doc)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            leaf = name.rsplit('.', 1)[-1]
            if leaf in ('up', 'reg_scale'):
                continue
            if param.dim() >= 2:
                new = torch.randn(param.shape, generator=gen) / math.sqrt(
                    param[0].numel())
            elif leaf == 'weight':
                new = torch.rand(param.shape, generator=gen) + 0.5
            else:
                new = torch.randn(param.shape, generator=gen) * 0.1
                if name.endswith('sampling_offsets.bias'):
                    new += param
            param.copy_(new)


def main(in_path: str, out_path: str) -> None:
    """Build, redraw and run HF's D-FINE decoder on ``in_path``'s inputs.

    Args:
        in_path (str): The inputs, laid out as the module docstring says.
        out_path (str): Where the outputs are saved.
    """
    from torch import nn
    from transformers import DFineConfig
    from transformers.models.d_fine.modeling_d_fine import (DFineDecoder,
                                                            DFineMLP)

    inputs = torch.load(in_path)
    num_classes = inputs['num_classes']
    config = DFineConfig(
        **inputs['config'],
        id2label={i: f'class_{i}'
                  for i in range(num_classes)},
        label2id={f'class_{i}': i
                  for i in range(num_classes)})
    config._attn_implementation = 'eager'
    torch.manual_seed(0)
    decoder = DFineDecoder(config)
    bins = 4 * (config.max_num_bins + 1)
    decoder.class_embed = nn.ModuleList(
        nn.Linear(config.d_model, num_classes)
        for _ in range(config.decoder_layers))
    decoder.bbox_embed = nn.ModuleList(
        DFineMLP(config.d_model, config.d_model, bins, 3)
        for _ in range(config.decoder_layers))
    redraw_(decoder, inputs['seed'])
    decoder = decoder.double().train()
    # HF makes num_points_scale (1 / n) in float32: 1 / 3 would stay
    # rounded to 3e-8 in the float64 run. Exact float64 instead.
    for layer in decoder.layers:
        attn = layer.encoder_attn
        attn.num_points_scale.copy_(
            torch.tensor([
                1 / n for n in attn.num_points_list for _ in range(n)
            ], dtype=torch.float64))

    out = dict(state={k: v.clone() for k, v in decoder.state_dict().items()})
    shapes = [tuple(shape) for shape in inputs['spatial_shapes']]
    for dtype, model in ((torch.float64, decoder),
                         (torch.float32, copy.deepcopy(decoder).float())):
        with torch.no_grad():
            result = model(
                inputs_embeds=inputs['query'].to(dtype),
                reference_points=inputs['reference_logits'].to(dtype),
                encoder_hidden_states=inputs['memory'].to(dtype),
                spatial_shapes=torch.tensor(shapes),
                spatial_shapes_list=shapes)
        out[str(dtype).split('.')[-1]] = {
            key: getattr(result, key)
            for key in OUTPUTS
        }
    torch.save(out, out_path)


if __name__ == '__main__':
    if len(sys.argv) != 3:
        sys.exit(f'usage: {sys.argv[0]} IN.pt OUT.pt')
    main(*sys.argv[1:])
