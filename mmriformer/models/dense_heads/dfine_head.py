# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_overlaps
from mmdet.utils import InstanceList, reduce_mean
from torch import Tensor, nn

from ..utils import (at_least_float32, box_to_distance, distance_to_bins,
                     weighting_function)
from .rtdetr_head import RTDETRHead


@MODELS.register_module()
class DFineHead(RTDETRHead):
    """D-FINE's prediction branches and losses, with GO-LSD.

    :class:`RTDETRHead` with the decoder layers' box branches widened to
    the logits of four edge distributions, ``4 * (reg_max + 1)`` (D-FINE's
    ``dec_bbox_head``; :class:`DFineDecoder` turns them into boxes). The
    last branch scores the encoder's tokens and stays a 4-number box delta
    (D-FINE's ``enc_bbox_head``), so the head must be two-stage.

    The loss is D-FINE's criterion. Each decoder layer, the pre-bbox head
    (``pre.``) and the encoder's selected tokens (``enc_``) take the
    classification loss (VFL, or MAL) on their own Hungarian matching, and
    L1 and GIoU on the *union* of all those matchings (each query keeps the
    gt box it is matched to most often; ties go to the lower gt index),
    averaged over the number of queries in the union. Every decoder layer
    adds FGL (:class:`FineGrainedLocalizationLoss`) on the union: its edge
    distributions learn the gt edges' offsets from the initial boxes,
    weighted by the IoU of its box with the gt. Every layer but the last
    adds DDF (:class:`DecoupledDistillationFocalLoss`): the last layer's
    distributions teach its own, weighted by that IoU for queries in the
    union and by the last layer's top class score for the others.
    Denoising queries (``dn_``) take every term on their fixed targets,
    averaged over their number, with the last denoising layer as their
    teacher.

    As in D-FINE, the denoising layers' DDF balances its matched and
    unmatched means by the square roots of the *matching* queries' counts.

    Args:
        *args: See :class:`RTDETRHead`.
        reg_max (int): Intervals of the edge distributions; the decoder's
            ``reg_max``. Defaults to 32.
        loss_fgl (dict): FGL config. Defaults to D-FINE's, weight 0.15.
        loss_ddf (dict): DDF config. Defaults to D-FINE's, weight 1.5 at
            temperature 5.
        box_matching (str): Only ``'union'``, D-FINE's (see above).
        **kwargs: See :class:`RTDETRHead`; ``as_two_stage`` must be True.
    """

    def __init__(self,
                 *args,
                 reg_max: int = 32,
                 loss_fgl: dict = dict(type='FineGrainedLocalizationLoss',
                                       loss_weight=0.15),
                 loss_ddf: dict = dict(type='DecoupledDistillationFocalLoss',
                                       loss_weight=1.5),
                 box_matching: str = 'union',
                 **kwargs) -> None:
        if box_matching != 'union':
            raise ValueError(
                f"DFineHead takes its box losses on the union of matchings "
                f"(box_matching='union'), got {box_matching!r}.")
        # mmdet's __init__ builds the branches, which need reg_max.
        self.reg_max = reg_max
        super().__init__(*args, box_matching=box_matching, **kwargs)
        if not self.as_two_stage:
            raise ValueError(
                'DFineHead needs as_two_stage=True: its last branches score '
                "the encoder's tokens for query selection.")
        self.loss_fgl = MODELS.build(loss_fgl)
        self.loss_ddf = MODELS.build(loss_ddf)

    def _init_layers(self) -> None:
        """RT-DETR's branches; the decoder layers' box branches end in
        ``4 * (reg_max + 1)`` edge logits."""
        super()._init_layers()
        for branch in self.reg_branches[:-1]:
            branch[-1] = nn.Linear(branch[-1].in_features,
                                   4 * (self.reg_max + 1))

    def loss(self,
             all_layers_cls_scores: Tensor,
             all_layers_bbox_preds: Tensor,
             all_layers_corners: Tensor,
             initial_boxes: Tensor,
             pre_cls_scores: Tensor,
             pre_bbox_preds: Tensor,
             enc_outputs_class: Tensor,
             enc_outputs_coord: Tensor,
             up: Tensor,
             reg_scale: Tensor,
             batch_data_samples: SampleList,
             dn_meta: Optional[Dict[str, int]] = None) -> dict:
        """Compute D-FINE's losses.

        Args:
            all_layers_cls_scores (Tensor): Logits of every decoder layer,
                (num_layers, N, num_dn + num_queries, num_classes).
            all_layers_bbox_preds (Tensor): Boxes of every decoder layer,
                normalised (cx, cy, w, h), (num_layers, N, Q, 4).
            all_layers_corners (Tensor): Edge logits of every decoder layer,
                (num_layers, N, Q, 4 * (reg_max + 1)).
            initial_boxes (Tensor): The boxes the edge offsets are measured
                from, (N, Q, 4).
            pre_cls_scores (Tensor): Logits of the pre-bbox head's queries,
                (N, Q, num_classes).
            pre_bbox_preds (Tensor): The pre-bbox head's boxes, (N, Q, 4).
            enc_outputs_class (Tensor): Logits of the selected encoder
                tokens, (N, num_queries, num_classes).
            enc_outputs_coord (Tensor): Their boxes, (N, num_queries, 4).
            up (Tensor): The decoder's ``up``, (1, ).
            reg_scale (Tensor): The decoder's ``reg_scale``, (1, ).
            batch_data_samples (list[DetDataSample]): Samples with
                ``gt_instances``.
            dn_meta (dict, optional): Denoising layout, None without
                denoising.

        Returns:
            dict[str, Tensor]: The losses: ``loss_cls``, ``loss_bbox``,
            ``loss_iou`` and ``loss_fgl`` of the last layer, the same and
            ``loss_ddf`` prefixed ``d{i}.`` for earlier layers, ``pre.``
            and ``enc_`` without FGL and DDF, and the same families again
            with ``dn_`` before ``loss`` for the denoising queries.
        """
        if all_layers_corners.shape[-1] != 4 * (self.reg_max + 1):
            raise ValueError(
                f'The decoder gives {all_layers_corners.shape[-1]} edge '
                f'logits per query but the head has reg_max={self.reg_max} '
                f'(4 * (reg_max + 1) = {4 * (self.reg_max + 1)}); set the '
                f"head's reg_max to the decoder's.")
        gts = [s.gt_instances for s in batch_data_samples]
        metas = [s.metainfo for s in batch_data_samples]
        layers = [
            at_least_float32(x)
            for x in (all_layers_cls_scores, all_layers_bbox_preds,
                      all_layers_corners)
        ]
        pre = [at_least_float32(x) for x in (pre_cls_scores, pre_bbox_preds)]
        enc = [
            at_least_float32(x) for x in (enc_outputs_class, enc_outputs_coord)
        ]
        refs = at_least_float32(initial_boxes)
        project = weighting_function(self.reg_max, up, reg_scale)
        num_dn = 0 if dn_meta is None else dn_meta['num_denoising_queries']

        def matching(x: Tensor) -> Tensor:
            return x[..., num_dn:, :]

        def denoising(x: Tensor) -> Tensor:
            return x[..., :num_dn, :]

        losses, matched = self._group_losses([matching(x) for x in layers],
                                             matching(refs),
                                             [matching(x) for x in pre], enc,
                                             gts, metas, project, reg_scale)
        if dn_meta is not None:
            # D-FINE balances the denoising DDF by the matching queries'
            # counts of matched and unmatched edges.
            ddf_counts = (4 * matched.sum(), 4 * (~matched).sum())
            losses.update(
                self._group_losses([denoising(x) for x in layers],
                                   denoising(refs),
                                   [denoising(x) for x in pre],
                                   None,
                                   gts,
                                   metas,
                                   project,
                                   reg_scale,
                                   dn_meta=dn_meta,
                                   ddf_counts=ddf_counts)[0])
        return losses

    def _group_losses(
        self,
        layers: Sequence[Tensor],
        refs: Tensor,
        pre: Sequence[Tensor],
        enc: Optional[Sequence[Tensor]],
        gts: InstanceList,
        metas: List[dict],
        project: Tensor,
        reg_scale: Tensor,
        dn_meta: Optional[Dict[str, int]] = None,
        ddf_counts: Optional[Tuple[Tensor, Tensor]] = None
    ) -> Tuple[Dict[str, Tensor], Tensor]:
        """The losses of the matching queries (``dn_meta`` None, Hungarian
        matchings and their union), named ``{layer}loss_*``, or of the
        denoising ones (fixed targets), named ``{layer}dn_loss_*``.

        Args:
            layers (Sequence[Tensor]): Logits (L, N, Q, C), boxes
                (L, N, Q, 4) and edge logits (L, N, Q, 4 * bins).
            refs (Tensor): Initial boxes, (N, Q, 4).
            pre (Sequence[Tensor]): Pre-bbox head logits and boxes.
            enc (Sequence[Tensor], optional): Encoder logits and boxes, for
                the matching queries only.
            gts (list[InstanceData]): Ground truth of each image.
            metas (list[dict]): Image metas.
            project (Tensor): W, (reg_max + 1, ).
            reg_scale (Tensor): The decoder's ``reg_scale``.
            dn_meta (dict, optional): Denoising layout; given for the
                denoising queries. Defaults to None.
            ddf_counts (tuple[Tensor, Tensor], optional): The matched and
                unmatched edge counts that balance DDF (see
                :class:`DecoupledDistillationFocalLoss`); None for the
                group's own. Defaults to None.

        Returns:
            tuple[dict[str, Tensor], Tensor]: The group's losses, and which
            queries the union (or the denoising layout) matches, (N, Q).
        """
        kind = '' if dn_meta is None else 'dn_'
        all_cls, all_boxes, all_corners = layers
        num_layers = len(all_cls)
        if dn_meta is None:
            outputs = [*zip(all_cls, all_boxes), pre, enc]
            own = [
                self._assign(cls, boxes, gts, metas) for cls, boxes in outputs
            ]
            union = self._union(own, gts)
        else:
            union = self._dn_assignment(gts, dn_meta, all_cls.shape[1],
                                        all_cls.device)
            outputs = [*zip(all_cls, all_boxes), pre]
            own = [union] * len(outputs)
        names = [f'd{i}.' for i in range(num_layers - 1)] + ['', 'pre.']
        if enc is not None:
            names.append('enc_')
        losses, union_targets = self._union_losses(
            outputs, own, union, [name + kind for name in names], gts, metas)

        matched = union >= 0
        # Normalised (x1, y1, x2, y2) of each matched query's gt box.
        gt_boxes = bbox_cxcywh_to_xyxy(
            torch.cat(union_targets[2]).view(*union.shape, 4)[matched])
        num_boxes = reduce_mean(refs.new_tensor(float(matched.sum())))
        num_boxes = num_boxes.clamp(min=1).item()
        fgl_targets = distance_to_bins(
            box_to_distance(refs[matched], gt_boxes, reg_scale),
            project).reshape(-1)
        bins = self.reg_max + 1
        for i, name in enumerate(names[:num_layers]):
            boxes = bbox_cxcywh_to_xyxy(all_boxes[i][matched].detach())
            ious = bbox_overlaps(boxes, gt_boxes, is_aligned=True)
            losses[f'{name}{kind}loss_fgl'] = self.loss_fgl(
                all_corners[i][matched].reshape(-1, bins),
                fgl_targets,
                weight=ious.repeat_interleave(4),
                avg_factor=num_boxes)
            if i == num_layers - 1:
                continue
            # The teacher's top class score, the IoU for matched queries.
            weight = all_cls[-1].detach().sigmoid().amax(-1)
            weight = weight.masked_scatter(matched, ious.to(weight))
            losses[f'{name}{kind}loss_ddf'] = self.loss_ddf(
                all_corners[i].reshape(-1, bins),
                all_corners[-1].reshape(-1, bins),
                weight.reshape(-1).repeat_interleave(4),
                matched.reshape(-1).repeat_interleave(4),
                counts=ddf_counts)
        return losses, matched

    @staticmethod
    def _dn_assignment(gts: InstanceList, dn_meta: Dict[str, int],
                       batch_size: int, device: torch.device) -> Tensor:
        """The gt index of each denoising query (-1 for negatives and
        padding), as mmdet's ``DINOHead.get_dn_targets`` lays them out:
        in group g, query ``g * group_size + t`` denoises gt t.

        Returns:
            Tensor: (N, num_denoising_queries).
        """
        num_queries = dn_meta['num_denoising_queries']
        num_groups = dn_meta['num_denoising_groups']
        group_size = num_queries // num_groups
        assigned = torch.full((batch_size, num_queries),
                              -1,
                              dtype=torch.long,
                              device=device)
        for image, gt in enumerate(gts):
            gt_ids = torch.arange(len(gt), device=device)
            positives = torch.arange(num_groups, device=device)[:, None] * \
                group_size + gt_ids
            assigned[image, positives.flatten()] = gt_ids.repeat(num_groups)
        return assigned
