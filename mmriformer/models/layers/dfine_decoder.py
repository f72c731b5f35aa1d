# Copyright (c) OpenMMLab. All rights reserved.
"""D-FINE's transformer decoder with Fine-grained Distribution Refinement."""
from typing import NamedTuple, Optional, Sequence

import torch
from mmdet.models.layers import inverse_sigmoid
from mmdet.registry import MODELS
from torch import Tensor, nn

from ..utils.edge_distances import distance_to_box
from ..utils.fdr_weighting import distribution_integral, weighting_function
from ..utils.precision import at_least_float32
from .lqe import LocationQualityEstimator
from .mlp import MLP
from .ms_deform_attn import SpatialShapes
from .rtdetr_decoder import RTDETRDecoder


class DFineDecoderOutput(NamedTuple):
    """What :meth:`DFineDecoder.forward` returns.

    ``num_run`` is the number of layers run (``num_layers`` in training,
    ``eval_idx + 1`` in eval mode), ``bins`` is ``reg_max + 1``.

    Attributes:
        logits (Tensor): Class logits of each layer run, corrected by its
            location quality estimator, shape (num_run, N, Lq, num_classes).
        boxes (Tensor): Boxes (cx, cy, w, h), normalised, of each layer run,
            shape (num_run, N, Lq, 4).
        corners (Tensor): Edge-distribution logits of each layer run
            (left, top, right, bottom, ``bins`` each), shape
            (num_run, N, Lq, 4 * bins).
        initial_boxes (Tensor): The boxes every layer's edge offsets are
            measured from (the pre-bbox head's boxes, detached), shape
            (N, Lq, 4); GO-LSD's reference points.
        pre_logits (Tensor): Class logits of layer 0's queries by
            ``cls_branches[0]``, without the quality correction, shape
            (N, Lq, num_classes); D-FINE supervises them with
            ``pre_boxes``.
        pre_boxes (Tensor): The pre-bbox head's boxes, not detached, shape
            (N, Lq, 4).
    """
    logits: Tensor
    boxes: Tensor
    corners: Tensor
    initial_boxes: Tensor
    pre_logits: Tensor
    pre_boxes: Tensor


@MODELS.register_module()
class DFineDecoder(RTDETRDecoder):
    """D-FINE's decoder: every layer refines four edge distributions per
    query (Fine-grained Distribution Refinement, FDR).

    Layer 0's queries go through ``pre_bbox_head``, a box delta in logit
    space on the input boxes: its boxes, detached, are the initial boxes
    that all later offsets are measured from. After layer i,
    ``reg_branches[i]`` maps the queries (plus layer i - 1's, detached) to
    logits of four distributions over the edge offsets W(0 .. reg_max)
    (:func:`weighting_function`), *added* to layer i - 1's logits (not
    detached: a layer refines the previous one's distributions). Their
    integral (:func:`distribution_integral`) places the edges of the
    initial box (:func:`distance_to_box`); that box, detached, is layer
    i + 1's reference and the input of its position embedding.
    ``cls_branches[i]`` gives class logits, which layer i's
    :class:`LocationQualityEstimator` corrects from the distributions.

    The layers are :class:`RTDETRDecoderLayer` with D-FINE's options (a
    gated residual after a cross-attention without projections), the
    position embedding and ``eval_idx`` are :class:`RTDETRDecoder`'s, and
    the branches are passed to :meth:`forward`, as there. ``up`` and
    ``reg_scale`` are buffers of shape (1, ), as D-FINE keeps them (frozen
    parameters there), so checkpoints carry them.

    D-FINE's ``layer_scale`` (wider layers after a construction-time
    ``eval_idx``) is not supported: every released D-FINE model has
    ``eval_idx=-1`` and so no wide layer. HF transformers' D-FINE clamps the
    position embedding to [-10, 10]; D-FINE does not, and neither does this.

    Args:
        num_layers (int): Number of decoder layers. Defaults to 6.
        layer_cfg (dict, optional): Keyword arguments of
            :class:`RTDETRDecoderLayer`, over D-FINE's
            ``cross_attn_residual='gate'`` and
            ``cross_attn_projections=False``. Defaults to None.
        eval_idx (int): Index of the last layer run in eval mode; see
            :class:`RTDETRDecoder`. Defaults to -1.
        reg_max (int): Intervals of the edge distributions (``reg_max + 1``
            bins); even and at least 4. Defaults to 32.
        reg_scale (float): Curvature of W and the unit of the offsets (the
            box side / ``reg_scale``); D-FINE-X uses 8. Defaults to 4.
        up (float): Upper bound factor of W. Defaults to 0.5.
        lqe_cfg (dict, optional): Keyword arguments of
            :class:`LocationQualityEstimator` besides ``reg_max``.
            Defaults to None (its defaults, D-FINE's).
        query_pos_method (str): See :class:`RTDETRDecoder`. Defaults to
            ``'default'``.
        query_pos_act_cfg (dict): See :class:`RTDETRDecoder`. Defaults to
            ``dict(type='ReLU')``.
        pre_bbox_act_cfg (dict): mmcv config of the activation of
            ``pre_bbox_head`` (DEIM's ``mlp_act``). Defaults to
            ``dict(type='ReLU')``.
    """

    def __init__(self,
                 num_layers: int = 6,
                 layer_cfg: Optional[dict] = None,
                 eval_idx: int = -1,
                 reg_max: int = 32,
                 reg_scale: float = 4.,
                 up: float = 0.5,
                 lqe_cfg: Optional[dict] = None,
                 query_pos_method: str = 'default',
                 query_pos_act_cfg: dict = dict(type='ReLU'),
                 pre_bbox_act_cfg: dict = dict(type='ReLU')) -> None:
        # Checks reg_max before anything is built.
        weighting_function(reg_max, up, reg_scale)
        layer_cfg = dict(cross_attn_residual='gate',
                         cross_attn_projections=False,
                         **(layer_cfg or {}))
        super().__init__(num_layers, layer_cfg, eval_idx, query_pos_method,
                         query_pos_act_cfg)
        self.reg_max = reg_max
        self.register_buffer('up', torch.tensor([float(up)]))
        self.register_buffer('reg_scale', torch.tensor([float(reg_scale)]))
        self.pre_bbox_head = MLP(self.embed_dims, self.embed_dims, 4, 3,
                                 pre_bbox_act_cfg)
        self.lqe_layers = nn.ModuleList(
            LocationQualityEstimator(reg_max, **(lqe_cfg or {}))
            for _ in range(num_layers))
        self.init_weights()

    def init_weights(self) -> None:
        """Initialise as D-FINE does.

        :meth:`RTDETRDecoder.init_weights`, then Xavier on the layers'
        feed-forward networks, the gates at 0.5, no quality correction and
        a zero ``pre_bbox_head`` output (its boxes start as the input
        boxes).
        """
        super().init_weights()
        for layer in self.layers:
            nn.init.xavier_uniform_(layer.linear1.weight)
            nn.init.xavier_uniform_(layer.linear2.weight)
            layer.gateway.init_weights()
        for lqe in self.lqe_layers:
            lqe.init_weights()
        nn.init.zeros_(self.pre_bbox_head.layers[-1].weight)
        nn.init.zeros_(self.pre_bbox_head.layers[-1].bias)

    def forward(self,
                query: Tensor,
                reference_points: Tensor,
                value: Tensor,
                spatial_shapes: SpatialShapes,
                reg_branches: Sequence[nn.Module],
                cls_branches: Sequence[nn.Module],
                attn_mask: Optional[Tensor] = None,
                value_mask: Optional[Tensor] = None) -> DFineDecoderOutput:
        """Run the layers, refining the edge distributions after each.

        Args:
            query (Tensor): Initial content queries, shape
                (N, Lq, embed_dims).
            reference_points (Tensor): Initial boxes (cx, cy, w, h) after
                the sigmoid, normalised, shape (N, Lq, 4); detach them if no
                gradient should reach them (D-FINE does).
            value (Tensor): Flattened multi-level memory, shape
                (N, L, embed_dims).
            spatial_shapes (Sequence[Tuple[int, int]]): (H, W) of each level
                as Python ints.
            reg_branches (Sequence[nn.Module]): At least ``num_layers``
                modules; ``reg_branches[i]`` maps (N, Lq, embed_dims) to
                (N, Lq, 4 * (reg_max + 1)) edge-distribution logits.
            cls_branches (Sequence[nn.Module]): At least ``num_layers``
                modules; ``cls_branches[i]`` maps (N, Lq, embed_dims) to
                (N, Lq, num_classes) logits.
            attn_mask (Tensor, optional): Bool self-attention mask; see
                :meth:`RTDETRDecoder.forward`. Defaults to None.
            value_mask (Tensor, optional): Bool, shape (N, L); True marks a
                valid memory token. Defaults to None.

        Returns:
            DFineDecoderOutput: Per-layer logits (num_run, N, Lq,
            num_classes), boxes (num_run, N, Lq, 4) and corners
            (num_run, N, Lq, 4 * (reg_max + 1)); the initial boxes
            (N, Lq, 4); the pre-bbox head's logits (N, Lq, num_classes)
            and boxes (N, Lq, 4). ``num_run`` is ``num_layers`` in training
            and ``eval_idx + 1`` in eval mode, so the last entry is the
            prediction to use.
        """
        num_run = self.layers_to_run(reg_branches, cls_branches)
        project = weighting_function(self.reg_max, self.up, self.reg_scale)

        all_logits, all_boxes, all_corners = [], [], []
        ref = reference_points
        # Layer i - 1's queries (detached) and edge logits (not detached).
        prev_query = prev_corners = 0
        for i in range(num_run):
            query = self.layers[i](query, self.query_pos_head(ref), ref, value,
                                   spatial_shapes, attn_mask, value_mask)
            if i == 0:
                pre_boxes = (at_least_float32(self.pre_bbox_head(query)) +
                             inverse_sigmoid(ref)).sigmoid()
                pre_logits = cls_branches[0](query)
                initial_boxes = pre_boxes.detach()
            corners = at_least_float32(
                reg_branches[i](query + prev_query)) + prev_corners
            boxes = distance_to_box(initial_boxes,
                                    distribution_integral(corners, project),
                                    self.reg_scale)
            all_logits.append(self.lqe_layers[i](cls_branches[i](query),
                                                 corners))
            all_boxes.append(boxes)
            all_corners.append(corners)
            prev_query, prev_corners = query.detach(), corners
            ref = boxes.detach()
        return DFineDecoderOutput(
            torch.stack(all_logits), torch.stack(all_boxes),
            torch.stack(all_corners), initial_boxes, pre_logits, pre_boxes)
