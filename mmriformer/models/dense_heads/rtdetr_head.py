# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer
from mmdet.models.dense_heads import DINOHead
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.bbox import (bbox_cxcywh_to_xyxy, bbox_overlaps,
                                   bbox_xyxy_to_cxcywh)
from mmdet.utils import InstanceList, reduce_mean
from mmengine.structures import InstanceData
from torch import Tensor, nn

from ..losses import IoUAwareClassificationLoss
from ..utils import at_least_float32, topk_detections


@MODELS.register_module()
class RTDETRHead(DINOHead):
    """RT-DETR's prediction branches and losses.

    The branches (``cls_branches`` and ``reg_branches``, one per decoder
    layer plus one for the encoder's query selection) are applied inside the
    decoder and the detector, so this head receives finished predictions.
    Losses are DINO's families (final layer, ``d{i}.`` per earlier layer,
    ``enc_`` for the selected encoder tokens, ``dn_`` for denoising), with
    the classification loss made IoU-aware when ``loss_cls`` is an
    :class:`IoUAwareClassificationLoss` (:class:`RTDETRVarifocalLoss`, or
    DEIM's :class:`MatchabilityAwareLoss`): the target of a matched query
    at its class is the IoU of its box with the ground truth.

    With ``box_matching='union'`` (DEIM's criterion, ``use_uni_set``), the
    L1 and GIoU losses of every decoder layer and of the encoder's tokens
    are taken on the union of their Hungarian matchings (each query keeps
    the gt it is matched to most often; ties go to the lower gt index) and
    averaged over the queries in the union; the classification losses keep
    each output's own matching. Denoising is unchanged.

    Predictions are NMS-free: the top ``test_cfg.max_per_img`` of the
    sigmoid (query x class) scores.

    Args:
        *args: See :class:`mmdet.models.dense_heads.DINOHead`.
        box_matching (str): ``'own'``, each output's box losses on its own
            matching (RT-DETR's, DINO's), or ``'union'`` (DEIM's). Defaults
            to ``'own'``.
        reg_act_cfg (dict): mmcv config of the activation between the box
            branches' linear layers; DEIM's ``mlp_act: silu`` is
            ``dict(type='SiLU')``. Defaults to ``dict(type='ReLU')``,
            mmdet's.
        **kwargs: See :class:`mmdet.models.dense_heads.DINOHead`. In a
            config, leave ``num_pred_layer`` out: the detector
            (:class:`RTDETR`) sets it from its decoder.
    """

    def __init__(self,
                 *args,
                 box_matching: str = 'own',
                 reg_act_cfg: dict = dict(type='ReLU'),
                 **kwargs) -> None:
        if box_matching not in ('own', 'union'):
            raise ValueError(f"box_matching must be 'own' or 'union', got "
                             f'{box_matching!r}')
        self.box_matching = box_matching
        # mmdet's __init__ builds the branches (_init_layers).
        self.reg_act_cfg = reg_act_cfg
        super().__init__(*args, **kwargs)

    def _init_layers(self) -> None:
        """mmdet's branches, with ``reg_act_cfg`` in place of the ReLUs of
        the box branches (no parameters, so the same checkpoint keys)."""
        super()._init_layers()
        for branch in self.reg_branches:
            for i, module in enumerate(branch):
                if isinstance(module, nn.ReLU):
                    branch[i] = build_activation_layer(self.reg_act_cfg)

    def init_weights(self) -> None:
        """Initialise as RT-DETR does: each layer's branches drawn on their
        own, then the class prior and zero last box layers.

        mmdet's DETR heads deep-copy one branch for every layer, so all
        layers would start identical; the official heads
        (``dec_score_head``, ``dec_bbox_head``, ``enc_*_head``) are separate
        ``nn.Linear`` layers with PyTorch's default init. mmdet's
        :meth:`DeformableDETRHead.init_weights` then sets what the official
        code sets: class biases to ``-log((1 - 0.01) / 0.01)`` and the last
        box layer to zero (as a two-stage head, its offsets too).
        """
        for branch in (*self.cls_branches, *self.reg_branches):
            for module in branch.modules():
                if isinstance(module, nn.Linear):
                    module.reset_parameters()
        super().init_weights()

    def loss(self, all_layers_cls_scores: Tensor,
             all_layers_bbox_preds: Tensor, enc_outputs_class: Tensor,
             enc_outputs_coord: Tensor, batch_data_samples: SampleList,
             dn_meta: Optional[Dict[str, int]] = None) -> dict:
        """Compute the losses.

        Args:
            all_layers_cls_scores (Tensor): Logits of every decoder layer,
                (num_layers, N, num_dn + num_queries, num_classes).
            all_layers_bbox_preds (Tensor): Boxes of every decoder layer,
                normalised (cx, cy, w, h), (num_layers, N, Q, 4).
            enc_outputs_class (Tensor): Logits of the selected encoder
                tokens, (N, num_queries, num_classes).
            enc_outputs_coord (Tensor): Their boxes, (N, num_queries, 4).
            batch_data_samples (list[DetDataSample]): Samples with
                ``gt_instances``.
            dn_meta (dict, optional): Denoising layout, None without
                denoising.

        Returns:
            dict[str, Tensor]: The losses.
        """
        batch_gt_instances = [s.gt_instances for s in batch_data_samples]
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        # Matching costs and losses in float32 at least (also under
        # autocast, where the class logits come in float16/bfloat16).
        return self.loss_by_feat(
            at_least_float32(all_layers_cls_scores),
            at_least_float32(all_layers_bbox_preds),
            at_least_float32(enc_outputs_class),
            at_least_float32(enc_outputs_coord), batch_gt_instances,
            batch_img_metas, dn_meta)

    def loss_by_feat(
            self,
            all_layers_cls_scores: Tensor,
            all_layers_bbox_preds: Tensor,
            enc_cls_scores: Tensor,
            enc_bbox_preds: Tensor,
            batch_gt_instances: InstanceList,
            batch_img_metas: List[dict],
            dn_meta: Optional[Dict[str, int]] = None,
            batch_gt_instances_ignore: Optional[InstanceList] = None
    ) -> Dict[str, Tensor]:
        """DINO's losses; with ``box_matching='union'``, the matching
        queries' box losses on the union of matchings (see the class).

        Args: see :meth:`mmdet.models.dense_heads.DINOHead.loss_by_feat`.

        Returns:
            dict[str, Tensor]: The losses, named as DINO's.
        """
        if self.box_matching == 'own':
            return super().loss_by_feat(all_layers_cls_scores,
                                        all_layers_bbox_preds,
                                        enc_cls_scores, enc_bbox_preds,
                                        batch_gt_instances, batch_img_metas,
                                        dn_meta, batch_gt_instances_ignore)
        if batch_gt_instances_ignore is not None:
            raise NotImplementedError(
                f'{type(self).__name__} does not support ignored boxes')
        gts, metas = batch_gt_instances, batch_img_metas
        cls, boxes, dn_cls, dn_boxes = self.split_outputs(
            all_layers_cls_scores, all_layers_bbox_preds, dn_meta)
        outputs = [*zip(cls, boxes), (enc_cls_scores, enc_bbox_preds)]
        own = [self._assign(c, b, gts, metas) for c, b in outputs]
        names = [f'd{i}.' for i in range(len(cls) - 1)] + ['', 'enc_']
        losses = self._union_losses(outputs, own, self._union(own, gts),
                                    names, gts, metas)[0]
        if dn_cls is not None:
            dn_losses = self.loss_dn(dn_cls, dn_boxes, gts, metas, dn_meta)
            for i, layer_losses in enumerate(zip(*dn_losses)):
                name = '' if i == len(cls) - 1 else f'd{i}.'
                for kind, loss in zip(('cls', 'bbox', 'iou'), layer_losses):
                    losses[f'{name}dn_loss_{kind}'] = loss
        return losses

    def predict(self,
                all_layers_cls_scores: Tensor,
                all_layers_bbox_preds: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True,
                **unused_encoder_outputs) -> InstanceList:
        """Predict boxes from the last decoder layer run.

        Args:
            all_layers_cls_scores (Tensor): (num_layers, N, Q, num_classes).
            all_layers_bbox_preds (Tensor): (num_layers, N, Q, 4).
            batch_data_samples (list[DetDataSample]): Samples with metainfo.
            rescale (bool): Return boxes in original image pixels.
            **unused_encoder_outputs: Encoder outputs, used only by the loss.

        Returns:
            list[InstanceData]: ``scores``, ``labels`` and ``bboxes`` (x1, y1,
            x2, y2) of each image.
        """
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        # In float32 under autocast too: box scaling, and mmdet's metrics
        # and visualiser (numpy has no bfloat16).
        return self.predict_by_feat(
            at_least_float32(all_layers_cls_scores),
            at_least_float32(all_layers_bbox_preds), batch_img_metas,
            rescale)

    def select_detections(self, cls_logits: Tensor,
                          bbox_preds: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """The top ``test_cfg.max_per_img`` detections of each image (one
        per query by default, as mmdet's DETR heads), batched.

        :meth:`predict_by_feat` and the ONNX export
        (:class:`~mmriformer.deployment.DeployedDetector`) both select
        through this, so the two cannot drift.

        Args:
            cls_logits (Tensor): Class logits, (N, Q, num_classes).
            bbox_preds (Tensor): Normalised (cx, cy, w, h), (N, Q, 4).

        Returns:
            tuple[Tensor, Tensor, Tensor]: See :func:`topk_detections`.
        """
        num_keep = self.test_cfg.get('max_per_img', cls_logits.shape[1])
        return topk_detections(cls_logits, bbox_preds, num_keep)

    def predict_by_feat(self,
                        all_layers_cls_scores: Tensor,
                        all_layers_bbox_preds: Tensor,
                        batch_img_metas: List[dict],
                        rescale: bool = True) -> InstanceList:
        """Detections of the last decoder layer, in image pixels.

        The selection is :meth:`select_detections`.

        Args:
            all_layers_cls_scores (Tensor): (num_layers, N, Q, num_classes).
            all_layers_bbox_preds (Tensor): Normalised (cx, cy, w, h),
                (num_layers, N, Q, 4).
            batch_img_metas (list[dict]): Image metas with ``img_shape``
                and, to rescale, ``scale_factor``.
            rescale (bool): Return boxes in original image pixels rather
                than in the network input's.

        Returns:
            list[InstanceData]: ``scores`` (K,), ``labels`` (K,) and
            ``bboxes`` (K, 4) as (x1, y1, x2, y2) of each image.
        """
        labels, boxes, scores = self.select_detections(
            all_layers_cls_scores[-1], all_layers_bbox_preds[-1])
        results = []
        for img_labels, img_boxes, img_scores, meta in zip(
                labels, boxes, scores, batch_img_metas):
            height, width = meta['img_shape']
            img_boxes = img_boxes * img_boxes.new_tensor(
                [width, height, width, height])
            if rescale:
                img_boxes = img_boxes / img_boxes.new_tensor(
                    meta['scale_factor']).repeat(2)
            results.append(
                InstanceData(
                    bboxes=img_boxes, scores=img_scores, labels=img_labels))
        return results

    @staticmethod
    def split_outputs(all_layers_cls_scores: Tensor,
                      all_layers_bbox_preds: Tensor,
                      dn_meta: Optional[Dict[str, int]]) -> Tuple[Tensor]:
        """Split denoising from matching queries; without denoising
        (``dn_meta`` None) everything is matching."""
        if dn_meta is None:
            return all_layers_cls_scores, all_layers_bbox_preds, None, None
        return DINOHead.split_outputs(all_layers_cls_scores,
                                      all_layers_bbox_preds, dn_meta)

    def loss_by_feat_single(self, cls_scores: Tensor, bbox_preds: Tensor,
                            batch_gt_instances: InstanceList,
                            batch_img_metas: List[dict]) -> Tuple[Tensor]:
        """Losses of one layer's matching queries (Hungarian targets)."""
        targets = self.get_targets(list(cls_scores), list(bbox_preds),
                                   batch_gt_instances, batch_img_metas)
        return self._loss_from_targets(cls_scores, bbox_preds, targets,
                                       batch_img_metas)

    def _loss_dn_single(self, dn_cls_scores: Tensor, dn_bbox_preds: Tensor,
                        batch_gt_instances: InstanceList,
                        batch_img_metas: List[dict],
                        dn_meta: Dict[str, int]) -> Tuple[Tensor]:
        """Losses of one layer's denoising queries (fixed targets)."""
        targets = self.get_dn_targets(batch_gt_instances, batch_img_metas,
                                      dn_meta)
        return self._loss_from_targets(dn_cls_scores, dn_bbox_preds, targets,
                                       batch_img_metas)

    def _loss_from_targets(self, cls_scores: Tensor, bbox_preds: Tensor,
                           targets: tuple,
                           batch_img_metas: List[dict]) -> Tuple[Tensor]:
        """Classification, L1 and IoU losses given per-query targets.

        Args:
            cls_scores (Tensor): Logits, (N, Q, num_classes).
            bbox_preds (Tensor): Normalised (cx, cy, w, h), (N, Q, 4).
            targets (tuple): Output of ``get_targets``/``get_dn_targets``.
            batch_img_metas (list[dict]): Image metas (for ``img_shape``).

        Returns:
            tuple[Tensor]: ``loss_cls``, ``loss_bbox`` and ``loss_iou``, each
            normalised by the number of ground-truth boxes over all ranks.
        """
        pixel_boxes = self._pixel_boxes(bbox_preds, targets[2],
                                        batch_img_metas)
        return (self._cls_loss(cls_scores, targets, pixel_boxes),
                *self._box_losses(bbox_preds, targets, pixel_boxes))

    def _cls_loss(self, cls_scores: Tensor, targets: tuple,
                  pixel_boxes: Tuple[Tensor, Tensor]) -> Tensor:
        """Classification loss given per-query targets.

        Args:
            cls_scores (Tensor): Logits, (N, Q, num_classes).
            targets (tuple): Output of ``get_targets``/``get_dn_targets``.
            pixel_boxes (tuple[Tensor, Tensor]): :meth:`_pixel_boxes` of the
                predictions and these targets; their IoU is the soft label
                of an IoU-aware loss.

        Returns:
            Tensor: ``loss_cls``.
        """
        labels, label_weights, _, _, num_total_pos, num_total_neg = targets
        labels = torch.cat(labels)
        label_weights = torch.cat(label_weights)
        cls_scores = cls_scores.reshape(-1, self.cls_out_channels)
        cls_avg_factor = num_total_pos * 1.0 + \
            num_total_neg * self.bg_cls_weight
        if self.sync_cls_avg_factor:
            cls_avg_factor = reduce_mean(
                cls_scores.new_tensor([cls_avg_factor]))
        cls_avg_factor = max(cls_avg_factor, 1)
        if not isinstance(self.loss_cls, IoUAwareClassificationLoss):
            return self.loss_cls(
                cls_scores, labels, label_weights, avg_factor=cls_avg_factor)
        # One-hot of the matched class (background is dropped), valued by the
        # IoU of the matched box.
        positive = F.one_hot(labels, self.num_classes + 1)
        positive = positive[:, :self.num_classes].bool()
        pred_xyxy, target_xyxy = pixel_boxes
        ious = bbox_overlaps(pred_xyxy.detach(), target_xyxy, is_aligned=True)
        return self.loss_cls(
            cls_scores,
            positive * ious[:, None],
            weight=label_weights[:, None],
            avg_factor=cls_avg_factor,
            positive=positive)

    def _box_losses(self, bbox_preds: Tensor, targets: tuple,
                    pixel_boxes: Tuple[Tensor, Tensor]
                    ) -> Tuple[Tensor, Tensor]:
        """L1 and IoU losses given per-query targets.

        Args:
            bbox_preds (Tensor): Normalised (cx, cy, w, h), (N, Q, 4).
            targets (tuple): Output of ``get_targets``/``get_dn_targets``.
            pixel_boxes (tuple[Tensor, Tensor]): :meth:`_pixel_boxes` of
                ``bbox_preds`` and these targets.

        Returns:
            tuple[Tensor, Tensor]: ``loss_bbox`` and ``loss_iou``.
        """
        _, _, bbox_targets, bbox_weights, num_total_pos, _ = targets
        pred_xyxy, target_xyxy = pixel_boxes
        bbox_weights = torch.cat(bbox_weights)
        num_total_pos = bbox_preds.new_tensor([num_total_pos])
        num_total_pos = torch.clamp(reduce_mean(num_total_pos), min=1).item()
        loss_iou = self.loss_iou(
            pred_xyxy, target_xyxy, bbox_weights, avg_factor=num_total_pos)
        loss_bbox = self.loss_bbox(
            bbox_preds.reshape(-1, 4),
            torch.cat(bbox_targets),
            bbox_weights,
            avg_factor=num_total_pos)
        return loss_bbox, loss_iou

    @staticmethod
    def _pixel_boxes(bbox_preds: Tensor, bbox_targets: List[Tensor],
                     batch_img_metas: List[dict]) -> Tuple[Tensor, Tensor]:
        """Predicted and target boxes as (x1, y1, x2, y2) in pixels.

        Args:
            bbox_preds (Tensor): Normalised (cx, cy, w, h), (N, Q, 4).
            bbox_targets (list[Tensor]): Normalised (cx, cy, w, h) of each
                image, each (Q, 4).
            batch_img_metas (list[dict]): Image metas (for ``img_shape``).

        Returns:
            tuple[Tensor, Tensor]: Predictions and targets, each (N * Q, 4).
        """
        num_queries = bbox_preds.shape[1]
        factors = torch.cat([
            bbox_preds.new_tensor([w, h, w, h]).expand(num_queries, 4)
            for h, w in (meta['img_shape'] for meta in batch_img_metas)
        ])
        pred_xyxy = bbox_cxcywh_to_xyxy(bbox_preds.reshape(-1, 4)) * factors
        target_xyxy = bbox_cxcywh_to_xyxy(torch.cat(bbox_targets)) * factors
        return pred_xyxy, target_xyxy

    def _union_losses(self, outputs: Sequence[Tuple[Tensor, Tensor]],
                      own: Sequence[Tensor], union: Tensor,
                      prefixes: Sequence[str], gts: InstanceList,
                      metas: List[dict]) -> Tuple[Dict[str, Tensor], tuple]:
        """Each output's class loss on its own matching and box losses on
        the union.

        Args:
            outputs (Sequence[tuple[Tensor, Tensor]]): Logits
                (N, Q, num_classes) and normalised (cx, cy, w, h) boxes
                (N, Q, 4) of each output.
            own (Sequence[Tensor]): Each output's gt index per query, -1 if
                unmatched, (N, Q); ``union`` itself where they are the same.
            union (Tensor): The union's gt index per query, (N, Q).
            prefixes (Sequence[str]): Each output's prefix of the names
                ``loss_cls``, ``loss_bbox`` and ``loss_iou``.
            gts (list[InstanceData]): Ground truth of each image.
            metas (list[dict]): Image metas.

        Returns:
            tuple[dict[str, Tensor], tuple]: The losses, and the union's
            targets (see :meth:`_targets`).
        """
        union_targets = self._targets(union, gts, metas)
        losses = {}
        for (cls, boxes), assigned, prefix in zip(outputs, own, prefixes):
            union_pixels = self._pixel_boxes(boxes, union_targets[2], metas)
            if assigned is union:
                own_targets, own_pixels = union_targets, union_pixels
            else:
                own_targets = self._targets(assigned, gts, metas)
                own_pixels = self._pixel_boxes(boxes, own_targets[2], metas)
            losses[f'{prefix}loss_cls'] = self._cls_loss(
                cls, own_targets, own_pixels)
            loss_bbox, loss_iou = self._box_losses(boxes, union_targets,
                                                   union_pixels)
            losses[f'{prefix}loss_bbox'] = loss_bbox
            losses[f'{prefix}loss_iou'] = loss_iou
        return losses, union_targets

    @torch.no_grad()
    def _assign(self, cls_scores: Tensor, bbox_preds: Tensor,
                gts: InstanceList, metas: List[dict]) -> Tensor:
        """Hungarian matching of one output's queries.

        Args:
            cls_scores (Tensor): Logits, (N, Q, num_classes).
            bbox_preds (Tensor): Normalised (cx, cy, w, h), (N, Q, 4).
            gts (list[InstanceData]): Ground truth of each image.
            metas (list[dict]): Image metas.

        Returns:
            Tensor: The gt index of each query, -1 if unmatched, (N, Q).
        """
        assigned = []
        for scores, boxes, gt, meta in zip(cls_scores, bbox_preds, gts, metas):
            height, width = meta['img_shape']
            boxes = bbox_cxcywh_to_xyxy(boxes) * boxes.new_tensor(
                [width, height, width, height])
            preds = InstanceData(scores=scores, bboxes=boxes)
            result = self.assigner.assign(pred_instances=preds,
                                          gt_instances=gt,
                                          img_meta=meta)
            assigned.append(result.gt_inds - 1)
        return torch.stack(assigned)

    @staticmethod
    def _union(assignments: Sequence[Tensor], gts: InstanceList) -> Tensor:
        """D-FINE's union of matchings: each query takes the gt it is
        matched to in most of them (the lower gt index on a tie).

        Args:
            assignments (Sequence[Tensor]): gt index per query, -1 if
                unmatched, each (N, Q).
            gts (list[InstanceData]): Ground truth of each image.

        Returns:
            Tensor: The union's gt index per query, (N, Q).
        """
        num_gts = max(len(gt) for gt in gts)
        if num_gts == 0:
            return assignments[0]
        counts = sum(
            F.one_hot(assigned + 1, num_gts + 1)[..., 1:]
            for assigned in assignments)
        return torch.where(counts.amax(-1) > 0, counts.argmax(-1), -1)

    def _targets(self, assigned: Tensor, gts: InstanceList,
                 metas: List[dict]) -> tuple:
        """Per-query targets of an assignment, laid out as mmdet's
        ``get_targets`` returns them (for :meth:`_loss_from_targets`).

        Args:
            assigned (Tensor): gt index per query, -1 if unmatched, (N, Q).
            gts (list[InstanceData]): Ground truth of each image.
            metas (list[dict]): Image metas.

        Returns:
            tuple: Labels, label weights, normalised (cx, cy, w, h) box
            targets and box weights (lists of per-image tensors), and the
            numbers of matched and unmatched queries.
        """
        labels, label_weights, bbox_targets, bbox_weights = [], [], [], []
        for img_assigned, gt, meta in zip(assigned, gts, metas):
            height, width = meta['img_shape']
            matched = img_assigned >= 0
            gt_ids = img_assigned[matched]
            img_labels = img_assigned.new_full(img_assigned.shape,
                                               self.num_classes)
            img_labels[matched] = gt.labels[gt_ids]
            img_boxes = gt.bboxes.new_zeros(len(img_assigned), 4)
            img_boxes[matched] = bbox_xyxy_to_cxcywh(
                gt.bboxes[gt_ids] /
                gt.bboxes.new_tensor([width, height, width, height]))
            labels.append(img_labels)
            label_weights.append(gt.bboxes.new_ones(len(img_assigned)))
            bbox_targets.append(img_boxes)
            bbox_weights.append(matched[:, None].expand(-1, 4).to(img_boxes))
        num_pos = int((assigned >= 0).sum())
        return (labels, label_weights, bbox_targets, bbox_weights, num_pos,
                assigned.numel() - num_pos)
