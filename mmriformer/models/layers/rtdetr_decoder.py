# Copyright (c) OpenMMLab. All rights reserved.
"""RT-DETR's transformer decoder with iterative box refinement."""
from typing import Optional, Sequence, Tuple, Union

import torch
from mmcv.cnn import build_activation_layer
from mmdet.models.layers import inverse_sigmoid
from mmdet.registry import MODELS
from torch import Tensor, nn

from ..utils.precision import at_least_float32
from .gated_residual import GatedResidual
from .mlp import MLP
from .ms_deform_attn import MSDeformableAttention, SpatialShapes


class RTDETRDecoderLayer(nn.Module):
    """RT-DETR's post-norm decoder layer.

    Self-attention, deformable cross-attention and a feed-forward network
    (ReLU; DEIM's SiLU by ``act_cfg``), each followed by dropout, the
    residual sum and a LayerNorm.

    Submodule names follow RT-DETR's ``TransformerDecoderLayer``
    (``self_attn``, ``norm1``, ``cross_attn``, ``norm2``, ``linear1``,
    ``linear2``, ``norm3``), so its checkpoints convert by prefix only.

    D-FINE's layer is this one with two options: a gated residual after the
    cross-attention (``cross_attn_residual='gate'``: a
    :class:`GatedResidual` named ``gateway`` in place of ``norm2``) and a
    cross-attention without value and output projections
    (``cross_attn_projections=False``).

    Args:
        embed_dims (int): Channels of the queries. Defaults to 256.
        num_heads (int): Heads of both attentions. Defaults to 8.
        feedforward_channels (int): Hidden channels of the FFN.
            Defaults to 1024.
        dropout (float): Dropout after each sublayer and inside the FFN and
            the self-attention. Defaults to 0.
        num_levels (int): Feature levels of the cross-attention.
            Defaults to 3.
        num_points (int | Sequence[int]): Points per head of the
            cross-attention, on every level or on each level (RT-DETRv2).
            Defaults to 4.
        cross_attn_method (str): Sampling of the cross-attention,
            ``'default'`` (bilinear) or ``'discrete'`` (nearest pixel,
            RT-DETRv2's deployment option); see
            :class:`MSDeformableAttention`'s ``method``. Defaults to
            ``'default'``.
        act_cfg (dict): mmcv config of the FFN's activation; DEIM's
            ``activation: silu`` is ``dict(type='SiLU')``. Defaults to
            ``dict(type='ReLU')``.
        cross_attn_residual (str): How the cross-attention's output joins
            the queries: ``'add'`` (sum and LayerNorm, RT-DETR's) or
            ``'gate'`` (:class:`GatedResidual`, D-FINE's). Defaults to
            ``'add'``.
        cross_attn_projections (bool): ``projections`` of the
            cross-attention (:class:`MSDeformableAttention`); D-FINE's is
            False. Defaults to True.
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 feedforward_channels: int = 1024,
                 dropout: float = 0.,
                 num_levels: int = 3,
                 num_points: Union[int, Sequence[int]] = 4,
                 cross_attn_method: str = 'default',
                 act_cfg: dict = dict(type='ReLU'),
                 cross_attn_residual: str = 'add',
                 cross_attn_projections: bool = True) -> None:
        super().__init__()
        if cross_attn_residual not in ('add', 'gate'):
            raise ValueError(f"cross_attn_residual must be 'add' or 'gate', "
                             f'got {cross_attn_residual!r}')
        self.embed_dims = embed_dims
        self.self_attn = nn.MultiheadAttention(
            embed_dims, num_heads, dropout=dropout, batch_first=True)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(embed_dims)
        self.cross_attn = MSDeformableAttention(
            embed_dims,
            num_heads,
            num_levels,
            num_points,
            method=cross_attn_method,
            projections=cross_attn_projections)
        self.dropout2 = nn.Dropout(dropout)
        if cross_attn_residual == 'gate':
            self.gateway = GatedResidual(embed_dims)
        else:
            self.norm2 = nn.LayerNorm(embed_dims)
        self.linear1 = nn.Linear(embed_dims, feedforward_channels)
        self.activate = build_activation_layer(act_cfg)
        self.dropout3 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(feedforward_channels, embed_dims)
        self.dropout4 = nn.Dropout(dropout)
        self.norm3 = nn.LayerNorm(embed_dims)

    def forward(self,
                query: Tensor,
                query_pos: Tensor,
                reference_points: Tensor,
                value: Tensor,
                spatial_shapes: SpatialShapes,
                attn_mask: Optional[Tensor] = None,
                value_mask: Optional[Tensor] = None) -> Tensor:
        """Update the queries once.

        Args:
            query (Tensor): Content queries, shape (N, Lq, embed_dims).
            query_pos (Tensor): Position embedding of the queries, added to
                the self-attention's queries and keys (not its values) and
                to the cross-attention's queries; shape (N, Lq, embed_dims).
            reference_points (Tensor): Normalised (cx, cy, w, h) boxes,
                shape (N, Lq, 4).
            value (Tensor): Flattened multi-level memory, shape
                (N, L, embed_dims).
            spatial_shapes (Sequence[Tuple[int, int]]): (H, W) of each level
                as Python ints.
            attn_mask (Tensor, optional): Bool self-attention mask of shape
                (Lq, Lq) or (N * num_heads, Lq, Lq); True means query i may
                NOT attend to query j (nn.MultiheadAttention's convention).
                Defaults to None.
            value_mask (Tensor, optional): Bool, shape (N, L); True marks a
                valid memory token. Defaults to None.

        Returns:
            Tensor: Updated queries, shape (N, Lq, embed_dims).
        """
        q = k = query + query_pos
        attended = self.self_attn(
            q, k, query, attn_mask=attn_mask, need_weights=False)[0]
        query = self.norm1(query + self.dropout1(attended))

        attended = self.dropout2(
            self.cross_attn(query + query_pos, reference_points, value,
                            spatial_shapes, value_mask))
        if hasattr(self, 'gateway'):
            query = self.gateway(query, attended)
        else:
            query = self.norm2(query + attended)

        ffn_out = self.linear2(
            self.dropout3(self.activate(self.linear1(query))))
        query = query + self.dropout4(ffn_out)
        # Keep the sum finite in float16 under AMP (RT-DETR PR #464).
        return self.norm3(query.clamp(min=-65504, max=65504))


@MODELS.register_module()
class RTDETRDecoder(nn.Module):
    """RT-DETR's decoder: post-norm layers that refine one box per query.

    Each layer takes the boxes of the previous one as reference points and
    as the input of ``query_pos_head`` (an MLP on the box, not a sine
    embedding: RT-DETR's of 2 layers, hidden width ``2 * embed_dims``, or
    DEIM's ``query_pos_method: as_reg`` of 3 layers of ``embed_dims``, the
    shape of the box branches). After the layer, ``reg_branches[i]``
    predicts a box delta in logit space and ``cls_branches[i]`` the class
    logits.

    The branches are passed to :meth:`forward` instead of being owned here,
    as mmdet's ``DeformableDetrTransformerDecoder`` takes ``reg_branches``:
    in an mmdet detector they belong to the bbox head (with one more entry,
    which scores the encoder's proposals), where its losses,
    ``init_weights`` and checkpoints expect them. The decoder only uses
    entries ``0 .. num_layers - 1``.

    ``eval_idx`` selects the decoder depth at inference: in eval mode only
    layers ``0 .. eval_idx`` run, so a model trained with all layers can be
    evaluated with fewer without retraining (RT-DETR-R50-m uses 3 of 6).
    Training always runs every layer. ``eval_idx`` can be changed on a
    built model.

    Args:
        num_layers (int): Number of decoder layers. Defaults to 6.
        layer_cfg (dict, optional): Keyword arguments of
            :class:`RTDETRDecoderLayer`. Defaults to None (its defaults).
        eval_idx (int): Index of the last layer run in eval mode; negative
            values count from the end. Defaults to -1 (all layers).
        query_pos_method (str): The layout of ``query_pos_head``:
            ``'default'`` (RT-DETR's) or ``'as_reg'`` (DEIM's). Defaults to
            ``'default'``.
        query_pos_act_cfg (dict): mmcv config of ``query_pos_head``'s
            activation; DEIM's ``mlp_act: silu`` is ``dict(type='SiLU')``.
            Defaults to ``dict(type='ReLU')``.
    """

    def __init__(self,
                 num_layers: int = 6,
                 layer_cfg: Optional[dict] = None,
                 eval_idx: int = -1,
                 query_pos_method: str = 'default',
                 query_pos_act_cfg: dict = dict(type='ReLU')) -> None:
        super().__init__()
        layer_cfg = layer_cfg or {}
        self.num_layers = num_layers
        self.layers = nn.ModuleList(
            RTDETRDecoderLayer(**layer_cfg) for _ in range(num_layers))
        self.embed_dims = self.layers[0].embed_dims
        # (hidden width, layers) of each layout.
        layouts = {
            'default': (2 * self.embed_dims, 2),
            'as_reg': (self.embed_dims, 3)
        }
        if query_pos_method not in layouts:
            raise ValueError(
                f'query_pos_method must be one of {sorted(layouts)}, got '
                f'{query_pos_method!r}')
        hidden_dims, pos_layers = layouts[query_pos_method]
        self.query_pos_head = MLP(4, hidden_dims, self.embed_dims, pos_layers,
                                  query_pos_act_cfg)
        self.eval_idx = eval_idx
        # This class's, not a subclass's: theirs may use modules built
        # after this returns.
        RTDETRDecoder.init_weights(self)

    @property
    def eval_idx(self) -> int:
        """int: Last layer run in eval mode, in ``[0, num_layers)``."""
        return self._eval_idx

    @eval_idx.setter
    def eval_idx(self, eval_idx: int) -> None:
        if not -self.num_layers <= eval_idx < self.num_layers:
            raise ValueError(f'eval_idx must be in [-{self.num_layers}, '
                             f'{self.num_layers}), got {eval_idx}')
        self._eval_idx = eval_idx % self.num_layers

    def init_weights(self) -> None:
        """Initialise as RT-DETR does.

        Xavier on the first two layers of the query position head (all of
        RT-DETR's; DEIM's third keeps PyTorch's default, as in its code) and
        the deformable attentions' own scheme; everything else keeps
        PyTorch's defaults. A detector that applies a blanket Xavier to the
        decoder (as mmdet's DINO does) must call this afterwards to restore
        the sampling offsets and the uniform attention weights.
        """
        for layer in self.query_pos_head.layers[:2]:
            nn.init.xavier_uniform_(layer.weight)
        for layer in self.layers:
            layer.cross_attn.init_weights()

    def layers_to_run(self, reg_branches: Sequence[nn.Module],
                      cls_branches: Sequence[nn.Module]) -> int:
        """How many layers :meth:`forward` runs in the current mode.

        Raises:
            ValueError: There are fewer branches than layers.
        """
        if min(len(reg_branches), len(cls_branches)) < self.num_layers:
            raise ValueError(
                f'{self.num_layers} layers need as many reg and cls '
                f'branches, got {len(reg_branches)} and {len(cls_branches)}')
        return self.num_layers if self.training else self.eval_idx + 1

    def forward(self,
                query: Tensor,
                reference_points: Tensor,
                value: Tensor,
                spatial_shapes: SpatialShapes,
                reg_branches: Sequence[nn.Module],
                cls_branches: Sequence[nn.Module],
                attn_mask: Optional[Tensor] = None,
                value_mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Run the layers and predict boxes and logits after each.

        Args:
            query (Tensor): Initial content queries (RT-DETR: the selected
                encoder memory, detached), shape (N, Lq, embed_dims).
            reference_points (Tensor): Initial boxes (cx, cy, w, h) after
                the sigmoid, normalised to [0, 1], shape (N, Lq, 4). Used as
                given; detach them if no gradient should reach them (RT-DETR
                does).
            value (Tensor): Flattened multi-level memory, shape
                (N, L, embed_dims).
            spatial_shapes (Sequence[Tuple[int, int]]): (H, W) of each level
                as Python ints, e.g. ``[tuple(f.shape[-2:]) for f in feats]``.
            reg_branches (Sequence[nn.Module]): At least ``num_layers``
                modules (e.g. an ``nn.ModuleList``); ``reg_branches[i]``
                maps (N, Lq, embed_dims) to a (N, Lq, 4) delta added to the
                logit of layer i's reference box.
            cls_branches (Sequence[nn.Module]): At least ``num_layers``
                modules; ``cls_branches[i]`` maps (N, Lq, embed_dims) to
                (N, Lq, num_classes) logits.
            attn_mask (Tensor, optional): Bool self-attention mask of shape
                (Lq, Lq) or (N * num_heads, Lq, Lq); True blocks query i from
                attending to query j (e.g. the denoising groups' mask). No
                row may be fully blocked. Defaults to None.
            value_mask (Tensor, optional): Bool, shape (N, L); True marks a
                valid memory token. Defaults to None.

        Returns:
            tuple[Tensor, Tensor]: Per-layer class logits of shape
            (num_run, N, Lq, num_classes) and boxes (cx, cy, w, h) after the
            sigmoid of shape (num_run, N, Lq, 4). ``num_run`` is
            ``num_layers`` in training and ``eval_idx + 1`` in eval mode, so
            the last entry is always the prediction to use.
        """
        num_run = self.layers_to_run(reg_branches, cls_branches)

        all_logits, all_boxes = [], []
        ref = reference_points  # boxes layer i samples around, detached
        prev_box = reference_points  # the same boxes, not detached
        for i in range(num_run):
            query = self.layers[i](query, self.query_pos_head(ref), ref, value,
                                   spatial_shapes, attn_mask, value_mask)
            delta = at_least_float32(reg_branches[i](query))
            # "Look forward twice" (DINO): the box reported for layer i
            # refines the undetached box of layer i - 1, so layer i's loss
            # also trains layer i - 1's reg branch. Its value equals the next
            # reference, which stays detached as in Deformable DETR.
            all_boxes.append((delta + inverse_sigmoid(prev_box)).sigmoid())
            all_logits.append(cls_branches[i](query))
            prev_box = (delta + inverse_sigmoid(ref)).sigmoid()
            ref = prev_box.detach()
        return torch.stack(all_logits), torch.stack(all_boxes)
