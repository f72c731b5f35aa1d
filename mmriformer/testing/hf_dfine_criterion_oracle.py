# Copyright (c) OpenMMLab. All rights reserved.
"""HF transformers' D-FINE loss terms of every output on given matchings;
runs in the oracle venv.

Run with the oracle venv's Python (see :mod:`mmriformer.testing.oracle`,
``run_oracle_script``), as a script: it imports only the standard library,
torch and transformers. It reads from ``IN.pt`` (``torch.save`` of a dict):

- ``num_classes``, ``reg_max``, ``up``, ``reg_scale``: the settings;
- ``targets``: per image, ``class_labels`` (n, ) and ``boxes`` (n, 4),
  normalised (cx, cy, w, h);
- ``union``: per image, (query indices, gt indices) of the union of
  matchings, and ``num_boxes`` (gt boxes) and ``num_boxes_union``;
- ``outputs``: a list of dicts, one per output: ``name``, ``logits``
  (B, Q, C), ``pred_boxes`` (B, Q, 4), ``own`` (its matching, as
  ``union``) and, for decoder layers, ``pred_corners``, ``ref_points``,
  ``teacher_corners`` and ``teacher_logits``.

It computes each output's ``loss_vfl`` on its own matching over
``num_boxes``, ``loss_bbox`` and ``loss_giou`` on the union over
``num_boxes_union`` and, for decoder layers, ``loss_fgl`` and
``loss_ddf`` (``DFineLoss.loss_local``) on the union, as D-FINE's
criterion pairs them, and writes ``{name: {term: value}}`` to ``OUT.pt``.

Usage::

    python hf_dfine_criterion_oracle.py IN.pt OUT.pt
"""
import sys

import torch


def main(in_path: str, out_path: str) -> None:
    """Run HF's D-FINE loss terms on the inputs in ``in_path``.

    Args:
        in_path (str): The inputs, laid out as the module docstring says.
        out_path (str): Where the outputs are saved.
    """
    from transformers import DFineConfig
    from transformers.loss.loss_d_fine import DFineLoss

    inputs = torch.load(in_path)
    config = DFineConfig(max_num_bins=inputs['reg_max'],
                         reg_scale=inputs['reg_scale'],
                         up=inputs['up'],
                         num_labels=inputs['num_classes'])
    criterion = DFineLoss(config)
    targets, union = inputs['targets'], inputs['union']
    out = {}
    for output in inputs['outputs']:
        terms = criterion.loss_labels_vfl(output, targets, output['own'],
                                          inputs['num_boxes'])
        terms.update(
            criterion.loss_boxes(output, targets, union,
                                 inputs['num_boxes_union']))
        if 'pred_corners' in output:
            terms.update(
                criterion.loss_local(output, targets, union,
                                     inputs['num_boxes_union']))
        out[output['name']] = {k: v.detach() for k, v in terms.items()}
    torch.save(out, out_path)


if __name__ == '__main__':
    if len(sys.argv) != 3:
        sys.exit(f'usage: {sys.argv[0]} IN.pt OUT.pt')
    main(*sys.argv[1:])
