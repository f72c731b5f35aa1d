# Copyright (c) OpenMMLab. All rights reserved.
"""HF transformers' D-FINE box encoding and FGL/DDF losses on given inputs;
runs in the oracle venv.

Run with the oracle venv's Python (see :mod:`mmriformer.testing.oracle`,
``run_oracle_script``), as a script: it imports only the standard library,
torch and transformers (never mmriformer, mmdet or mmengine, which that
venv does not have). It reads from ``IN.pt`` (``torch.save`` of a dict):

- ``reg_max``, ``up``, ``reg_scale``: D-FINE's settings (int, float,
  float);
- ``points``, ``distance``: reference boxes (cx, cy, w, h) and edge
  offsets, (N, 4) each, for ``distance2bbox``;
- ``corners``: edge-distribution logits (B, Q, 4 * (reg_max + 1)), for
  ``DFineIntegral``;
- for ``DFineLoss.loss_local`` (FGL and DDF of one decoder layer):
  ``pred_corners`` and ``teacher_corners`` (B, Q, 4 * (reg_max + 1)),
  ``ref_points`` and ``pred_boxes`` (B, Q, 4) (cx, cy, w, h),
  ``teacher_logits`` (B, Q, C), ``gt_boxes`` (per image (n_i, 4),
  normalised (cx, cy, w, h)), ``indices`` (per image, (query indices, gt
  indices)) and ``num_boxes`` (float).

Everything is float64 except ``ref_points`` and ``gt_boxes``, which are
float32: HF's ``translate_gt`` (inside ``bbox2distance``, which makes the
FGL targets) only runs in float32, where its bin weights live, as does
``DFineLoss``'s own ``up``. It writes to ``OUT.pt``:

- ``project_model``, ``project_loss``: ``weighting_function`` of
  ``modeling_d_fine`` and of ``loss_d_fine`` at float64 ``up`` and
  ``reg_scale``, (reg_max + 1, );
- ``decoded``: ``distance2bbox(points, distance, reg_scale)``, (N, 4)
  (cx, cy, w, h);
- ``integral``: ``DFineIntegral`` of ``corners``, (B, Q, 4);
- ``bin_left``, ``weight_right``, ``weight_left``: the FGL targets that
  ``loss_local`` made with ``bbox2distance``, per matched edge, (E, ):
  the left bin (clamped to [0, reg_max - 0.1]) and the float32 weights of
  the two neighbours;
- ``loss_fgl``, ``loss_ddf``: ``loss_local``'s unweighted terms (0-dim).

Usage::

    python hf_dfine_loss_oracle.py IN.pt OUT.pt
"""
import sys

import torch


def main(in_path: str, out_path: str) -> None:
    """Run HF's D-FINE functions on the inputs in ``in_path``.

    Args:
        in_path (str): The inputs, laid out as the module docstring says.
        out_path (str): Where the outputs are saved.
    """
    from transformers import DFineConfig
    from transformers.loss import loss_d_fine
    from transformers.models.d_fine import modeling_d_fine

    inputs = torch.load(in_path)
    reg_max, reg_scale = inputs['reg_max'], inputs['reg_scale']
    # Tensors of shape (1, ), as the model holds them.
    up = torch.tensor([inputs['up']], dtype=torch.float64)
    scale = torch.tensor([reg_scale], dtype=torch.float64)
    config = DFineConfig(max_num_bins=reg_max,
                         reg_scale=reg_scale,
                         up=inputs['up'],
                         num_labels=inputs['teacher_logits'].shape[-1])

    out = dict(
        project_model=modeling_d_fine.weighting_function(reg_max, up, scale),
        project_loss=loss_d_fine.weighting_function(reg_max, up, reg_scale),
        decoded=modeling_d_fine.distance2bbox(inputs['points'],
                                              inputs['distance'], scale))
    out['integral'] = modeling_d_fine.DFineIntegral(config)(
        inputs['corners'], out['project_model'])

    criterion = loss_d_fine.DFineLoss(config)
    outputs = {
        key: inputs[key]
        for key in ('pred_corners', 'teacher_corners', 'ref_points',
                    'pred_boxes', 'teacher_logits')
    }
    targets = [dict(boxes=boxes) for boxes in inputs['gt_boxes']]
    losses = criterion.loss_local(outputs, targets, inputs['indices'],
                                  inputs['num_boxes'])
    out.update({key: value.detach() for key, value in losses.items()})
    out['bin_left'], out['weight_right'], out['weight_left'] = \
        criterion.fgl_targets
    torch.save(out, out_path)


if __name__ == '__main__':
    if len(sys.argv) != 3:
        sys.exit(f'usage: {sys.argv[0]} IN.pt OUT.pt')
    main(*sys.argv[1:])
