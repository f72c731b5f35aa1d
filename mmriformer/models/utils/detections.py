# Copyright (c) OpenMMLab. All rights reserved.
from typing import Tuple

from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from torch import Tensor


def topk_detections(cls_logits: Tensor, bbox_preds: Tensor,
                    num_keep: int) -> Tuple[Tensor, Tensor, Tensor]:
    """RT-DETR's NMS-free post-processing: the top ``num_keep`` sigmoid
    scores over all (query, class) pairs of each image.

    A query may be kept for several classes, as in the official
    ``RTDETRPostProcessor``. Tensor operations only, so the same code runs
    in :meth:`RTDETRHead.predict_by_feat` and inside the exported graph.

    Args:
        cls_logits (Tensor): Class logits, (N, Q, C).
        bbox_preds (Tensor): Boxes as normalised (cx, cy, w, h), (N, Q, 4).
        num_keep (int): Detections kept per image, K <= Q * C.

    Returns:
        tuple[Tensor, Tensor, Tensor]: ``labels`` (N, K) int64, ``boxes``
        (N, K, 4) as normalised (x1, y1, x2, y2) clamped to [0, 1], and
        ``scores`` (N, K), by descending score.
    """
    num_classes = cls_logits.shape[-1]
    scores, index = cls_logits.sigmoid().flatten(1).topk(num_keep, dim=1)
    labels = index % num_classes
    query = (index // num_classes)[..., None].expand(-1, -1, 4)
    boxes = bbox_cxcywh_to_xyxy(bbox_preds.gather(1, query)).clamp(0, 1)
    return labels, boxes, scores
