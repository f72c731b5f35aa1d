# Copyright (c) OpenMMLab. All rights reserved.
from typing import Tuple

import torch
from mmdet.models.layers import CdnQueryGenerator
from mmdet.models.layers.transformer.utils import inverse_sigmoid
from mmdet.structures.bbox import bbox_xyxy_to_cxcywh
from torch import Tensor


class RTDETRCdnQueryGenerator(CdnQueryGenerator):
    """Contrastive denoising queries as RT-DETR makes them.

    mmdet's generator (written for DINO) with RT-DETR's two differences in
    the box queries, which change the denoising loss:

    - box logits are ``inverse_sigmoid`` with eps 1e-5 (mmdet: 1e-3), so a
      noised box clipped to the image border starts at logit -11.5, not
      -6.9;
    - the slots that pad an image with fewer ground-truth boxes than the
      batch's most start as the empty box at the origin (logit of 0), as
      RT-DETR's zero boxes do, not at logit 0 (a box of half the image in
      its centre). They are not masked from the real queries of their group,
      so their box reaches those queries through self-attention.

    Label queries, noise scales, groups and the attention mask are mmdet's,
    which equal RT-DETR's.
    """

    def generate_dn_bbox_query(self, gt_bboxes: Tensor,
                               num_groups: int) -> Tensor:
        """Noise the ground-truth boxes into positive and negative queries.

        Per group, a positive query moves each corner of its box by less
        than ``box_noise_scale`` times half the box's width (height); a
        negative one by one to two times that. Corners are clipped to the
        image.

        Args:
            gt_bboxes (Tensor): Normalised (x1, y1, x2, y2) boxes of the
                batch, shape (num_target_total, 4).
            num_groups (int): Denoising groups.

        Returns:
            Tensor: Box logits, ``inverse_sigmoid`` of (cx, cy, w, h), shape
            (num_target_total * num_groups * 2, 4): per group, the positives
            and then the negatives.
        """
        boxes = gt_bboxes.repeat(2 * num_groups, 1)
        negative = torch.arange(
            2 * num_groups, device=boxes.device).repeat_interleave(
                len(gt_bboxes)) % 2 == 1
        magnitude = torch.rand_like(boxes) + negative[:, None].to(boxes)
        sign = torch.randint_like(boxes, 0, 2) * 2 - 1
        half_size = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2) / 2
        noisy = boxes + sign * magnitude * half_size * self.box_noise_scale
        return inverse_sigmoid(bbox_xyxy_to_cxcywh(noisy.clamp(0, 1)))

    def collate_dn_queries(self, input_label_query: Tensor,
                           input_bbox_query: Tensor, batch_idx: Tensor,
                           batch_size: int,
                           num_groups: int) -> Tuple[Tensor, Tensor]:
        """Batch the queries as mmdet does; padded box slots start at the
        logit of the empty box (see the class docstring).

        Returns:
            tuple[Tensor, Tensor]: Label queries (N, D, embed_dims) and box
            logits (N, D, 4), D the number of denoising queries.
        """
        labels, boxes = super().collate_dn_queries(input_label_query,
                                                   input_bbox_query,
                                                   batch_idx, batch_size,
                                                   num_groups)
        # Each image fills the first (its box count) slots of every
        # max-count-long run of positives or negatives.
        counts = torch.bincount(batch_idx, minlength=batch_size)
        run = boxes.shape[1] // (2 * num_groups)
        slot = torch.arange(boxes.shape[1], device=boxes.device) % max(run, 1)
        filled = slot[None, :, None] < counts[:, None, None]
        empty = inverse_sigmoid(boxes.new_zeros(()))
        return labels, torch.where(filled, boxes, empty)
