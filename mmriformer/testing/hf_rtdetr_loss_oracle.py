# Copyright (c) OpenMMLab. All rights reserved.
"""HF transformers' RT-DETR loss on given outputs; runs in the oracle venv.

Run with the oracle venv's Python (see :mod:`mmriformer.testing.oracle`,
``run_in_oracle``), as a script: it imports only the standard library,
torch and transformers (never mmriformer, mmdet or mmengine, which that
venv does not have). It reads decoder and encoder outputs with their
targets from ``IN.pt`` (``torch.save`` of a dict):

- ``logits``: class logits of every decoder layer, (L, B, Q, C);
- ``boxes``: their sigmoid boxes, normalised (cx, cy, w, h), (L, B, Q, 4);
- ``enc_logits``, ``enc_boxes``: the encoder's selected (top-k) outputs,
  (B, Q, C) and (B, Q, 4);
- ``labels``: per image, the class of each ground-truth box, (n_i, );
- ``gt_boxes``: per image, the normalised (cx, cy, w, h) boxes, (n_i, 4).

Denoising is off. The losses go through ``RTDetrForObjectDetectionLoss``,
the function ``RTDetrForObjectDetection`` calls, with RT-DETR's settings:
matcher costs class 2 (focal, alpha 0.25, gamma 2), L1 5 and GIoU 2; loss
weights VFL 1 (alpha 0.75, gamma 2), L1 5 and GIoU 2. Every (weighted)
term lands in ``OUT.pt``:

- ``losses``: HF's names to float64 scalars: ``loss_vfl``, ``loss_bbox``
  and ``loss_giou`` for the final layer, the same with ``_aux_{i}`` for
  decoder layer ``i`` < L - 1, and ``_aux_{L-1}`` for the encoder;
- ``indices``: per output in the order final, decoder layers 0 .. L-2,
  encoder, and per image, ``(query indices, gt indices)`` of the Hungarian
  matching (the loss's matcher, run again on the same outputs; it is
  deterministic).

Usage::

    python hf_rtdetr_loss_oracle.py IN.pt OUT.pt
"""
import sys

import torch


def main(in_path: str, out_path: str) -> None:
    """Compute HF's RT-DETR loss terms of the outputs in ``in_path``.

    Args:
        in_path (str): The inputs, laid out as the module docstring says.
        out_path (str): Where the terms and matchings are saved.
    """
    from transformers import RTDetrConfig
    from transformers.loss.loss_rt_detr import (RTDetrForObjectDetectionLoss,
                                                RTDetrHungarianMatcher)

    inputs = torch.load(in_path)
    logits, boxes = inputs['logits'], inputs['boxes']
    # The values RTDetrConfig defaults to, spelled out so that a change of
    # defaults cannot move the oracle.
    config = RTDetrConfig(num_labels=logits.shape[-1],
                          use_focal_loss=True,
                          auxiliary_loss=True,
                          matcher_class_cost=2.0,
                          matcher_bbox_cost=5.0,
                          matcher_giou_cost=2.0,
                          matcher_alpha=0.25,
                          matcher_gamma=2.0,
                          focal_loss_alpha=0.75,
                          focal_loss_gamma=2.0,
                          weight_loss_vfl=1.0,
                          weight_loss_bbox=5.0,
                          weight_loss_giou=2.0)
    targets = [
        dict(class_labels=labels, boxes=gt_boxes)
        for labels, gt_boxes in zip(inputs['labels'], inputs['gt_boxes'])
    ]
    # The model passes the layers as (B, L, ...) and the last one apart.
    outputs_class = logits.transpose(0, 1)
    outputs_coord = boxes.transpose(0, 1)
    _, losses, _ = RTDetrForObjectDetectionLoss(
        logits=outputs_class[:, -1],
        labels=targets,
        device=logits.device,
        pred_boxes=outputs_coord[:, -1],
        config=config,
        outputs_class=outputs_class,
        outputs_coord=outputs_coord,
        enc_topk_logits=inputs['enc_logits'],
        enc_topk_bboxes=inputs['enc_boxes'],
        denoising_meta_values=None)

    matcher = RTDetrHungarianMatcher(config)
    layers = [-1, *range(len(logits) - 1)]
    matched = [(logits[i], boxes[i]) for i in layers]
    matched.append((inputs['enc_logits'], inputs['enc_boxes']))
    indices = [
        matcher(dict(logits=layer_logits, pred_boxes=layer_boxes), targets)
        for layer_logits, layer_boxes in matched
    ]
    torch.save(
        dict(losses={k: v.detach()
                     for k, v in losses.items()},
             indices=indices), out_path)


if __name__ == '__main__':
    if len(sys.argv) != 3:
        sys.exit(f'usage: {sys.argv[0]} IN.pt OUT.pt')
    main(*sys.argv[1:])
