# Copyright (c) OpenMMLab. All rights reserved.
"""RT-DETR (Zhao et al., "DETRs Beat YOLOs on Real-time Object Detection").

A :class:`DetectionTransformer`, so mmdet's Runner, data preprocessor,
metrics, visualiser and inferencer work unchanged. Stages of
``forward_transformer``:

- ``extract_feat``: backbone, then the hybrid encoder (the ``neck``);
- ``pre_transformer``: project the encoder maps to the decoder's width
  (1x1 conv + BN per level) and flatten them into the decoder memory;
- ``forward_encoder``: nothing left to encode (the neck did it);
- ``pre_decoder``: IoU-aware query selection and, in training, the
  contrastive denoising queries;
- ``forward_decoder``: the deformable decoder with iterative refinement.

In training, an optional auxiliary dense head (Co-DETR's collaborative
one-to-many supervision) learns from the encoder maps beside the decoder.
"""
import inspect
from typing import Dict, List, Optional, Tuple

import torch
from mmdet.models.detectors.base_detr import DetectionTransformer
from mmdet.registry import MODELS
from mmdet.structures import OptSampleList, SampleList
from mmdet.utils import ConfigType, OptConfigType
from torch import Tensor, nn

from ...utils.deprecation import warn_deprecated
from ..layers import (DecoderInputProjection, RTDETRCdnQueryGenerator,
                      RTDETRDecoder)
from ..utils import (UnfitWeightsMixin, at_least_float32,
                     note_unfit_weights_hook)

SpatialShapes = List[Tuple[int, int]]


def generate_anchors(spatial_shapes: SpatialShapes,
                     device: torch.device,
                     dtype: torch.dtype = torch.float32,
                     base_size: float = 0.05,
                     eps: float = 0.01) -> Tuple[Tensor, Tensor]:
    """Anchor boxes of every encoder token, in logit space.

    A token of level ``l`` gets a box centred on its pixel, of side
    ``base_size * 2 ** l`` (normalised). Boxes with a coordinate outside
    ``(eps, 1 - eps)`` are invalid and set to ``+inf``.

    Args:
        spatial_shapes (list[tuple[int, int]]): (H, W) of each level.
        device (torch.device): Device of the result.
        dtype (torch.dtype): Dtype of the result.
        base_size (float): Side of the level-0 anchors. Defaults to 0.05.
        eps (float): Margin of the valid range. Defaults to 0.01.

    Returns:
        tuple[Tensor, Tensor]: Anchors as ``logit(cx, cy, w, h)`` of shape
        (1, L, 4), and the valid mask of shape (1, L, 1).
    """
    anchors = []
    for level, (height, width) in enumerate(spatial_shapes):
        ys, xs = torch.meshgrid(
            torch.arange(height, device=device, dtype=dtype),
            torch.arange(width, device=device, dtype=dtype),
            indexing='ij')
        centres = torch.stack([(xs + 0.5) / width, (ys + 0.5) / height], -1)
        sizes = torch.full_like(centres, base_size * 2.0**level)
        anchors.append(torch.cat([centres, sizes], -1).reshape(-1, 4))
    anchors = torch.cat(anchors)[None]
    valid = ((anchors > eps) & (anchors < 1 - eps)).all(-1, keepdim=True)
    anchors = torch.log(anchors / (1 - anchors))
    return anchors.masked_fill(~valid, float('inf')), valid


def gather_tokens(tokens: Tensor, index: Tensor) -> Tensor:
    """The tokens at ``index`` of each image.

    Args:
        tokens (Tensor): Shape (N, L, C).
        index (Tensor): Token indices, (N, K).

    Returns:
        Tensor: Shape (N, K, C).
    """
    return tokens.gather(1, index[..., None].expand(-1, -1, tokens.shape[-1]))


@MODELS.register_module()
class RTDETR(UnfitWeightsMixin, DetectionTransformer):
    """RT-DETR detector.

    A checkpoint that does not fit (another arch, ``num_classes`` or form)
    leaves the model refusing to predict until it has trained; see
    :class:`~mmriformer.models.utils.UnfitWeightsMixin`.

    Args:
        backbone (dict): Backbone config, e.g. RIFormer with
            ``out_indices=(2, 4, 6)``.
        neck (dict): Hybrid encoder config (``HybridEncoder``).
        decoder (dict): Keyword arguments of :class:`RTDETRDecoder`.
        bbox_head (dict): Head config (``RTDETRHead``). Its
            ``num_pred_layer`` is set here to ``decoder.num_layers + 1``, as
            mmdet's DeformableDETR sets it; an explicit one that agrees is
            deprecated, one that disagrees is refused.
        num_queries (int): Queries selected from the encoder. Defaults to
            300.
        decoder_input_proj (dict, optional): Keyword arguments of
            :class:`DecoderInputProjection` besides the widths, e.g.
            ``dict(norm_cfg=dict(type='SyncBN'))``. Defaults to None (BN).
        dn_cfg (dict, optional): Contrastive denoising config:
            ``label_noise_scale``, ``box_noise_scale`` and ``group_cfg``.
            None disables denoising. Defaults to None.
        train_cfg (dict, optional): Training config (the assigner).
        aux_head (dict, optional): An mmdet dense head trained on the
            encoder's maps beside the decoder and unused in prediction,
            Co-DETR's auxiliary head (Zong et al., "DETRs with
            Collaborative Hybrid Assignments Training"): its one-to-many
            assignment gives the backbone and encoder many positives per
            object. Its losses are ``aux_``-prefixed; see
            :func:`~mmriformer.utils.co_detr_recipe.atss_aux_head`. None
            trains without one. Defaults to None.
        test_cfg (dict, optional): Testing config (``max_per_img``).
        data_preprocessor (dict, optional): Data preprocessor config.
        init_cfg (dict, optional): Initialisation config.
    """

    # The decoder class that ``decoder`` configures; D-FINE's subclass
    # swaps it.
    decoder_type = RTDETRDecoder

    def __init__(self,
                 *args,
                 decoder: ConfigType,
                 bbox_head: ConfigType,
                 decoder_input_proj: OptConfigType = None,
                 dn_cfg: OptConfigType = None,
                 num_queries: int = 300,
                 aux_head: OptConfigType = None,
                 **kwargs) -> None:
        self.dn_cfg = dn_cfg
        self.decoder_input_proj_cfg = decoder_input_proj or {}
        bbox_head = dict(
            bbox_head, num_pred_layer=self._num_pred_layer(decoder, bbox_head))
        super().__init__(
            *args,
            decoder=decoder,
            bbox_head=bbox_head,
            num_queries=num_queries,
            **kwargs)
        self.aux_head = self._build_aux_head(aux_head)
        # Convolutions run channels-last (about 20% faster training on CPU,
        # the preferred layout of cuDNN too); extract_feat feeds them so.
        self.to(memory_format=torch.channels_last)
        self.register_load_state_dict_post_hook(note_unfit_weights_hook)

    @classmethod
    def _num_pred_layer(cls, decoder: ConfigType,
                        bbox_head: ConfigType) -> int:
        """Prediction layers of the head: one per decoder layer and one that
        scores the encoder's tokens for query selection.

        Raises:
            ValueError: ``bbox_head.num_pred_layer`` is given and differs.
        """
        # The decoder is built later (in _init_layers); without num_layers
        # in its config it takes its own default.
        num_layers = decoder.get(
            'num_layers',
            inspect.signature(
                cls.decoder_type).parameters['num_layers'].default)
        num_pred_layer = num_layers + 1
        given = bbox_head.get('num_pred_layer')
        if given is None:
            return num_pred_layer
        if given != num_pred_layer:
            raise ValueError(
                f'bbox_head.num_pred_layer={given} disagrees with '
                f'decoder.num_layers={num_layers}: RTDETR sets it to '
                f'decoder.num_layers + 1 = {num_pred_layer}; remove '
                f'bbox_head.num_pred_layer and set decoder.num_layers only.')
        warn_deprecated(
            'RTDETR: bbox_head.num_pred_layer is deprecated and will be '
            'removed in the next release; RTDETR sets it to '
            'decoder.num_layers + 1, so remove it from the config.',
            stacklevel=3)
        return num_pred_layer

    def _init_layers(self) -> None:
        """Build the decoder with its input projection, the memory
        projection and the denoiser."""
        self.decoder = self.decoder_type(**self.decoder)
        embed_dims = self.decoder.embed_dims
        backbone_dims = getattr(self.backbone, 'out_channels', None)
        neck_in = list(getattr(self.neck, 'in_channels', []))
        if backbone_dims is not None and list(backbone_dims) != neck_in:
            raise ValueError(
                f'neck.in_channels={neck_in} but the backbone gives '
                f'{list(backbone_dims)}; set neck.in_channels to the '
                f"backbone's out channels.")
        neck_dims = getattr(self.neck, 'out_channels', [embed_dims])
        head_dims = getattr(self.bbox_head, 'embed_dims', embed_dims)
        if head_dims != embed_dims:
            raise ValueError(
                f'bbox_head.embed_dims={head_dims} but the decoder works on '
                f'{embed_dims} channels; set bbox_head.embed_dims to '
                f'{embed_dims}.')
        self.decoder_input_proj = DecoderInputProjection(
            neck_dims, embed_dims,
            self.decoder.layers[0].cross_attn.num_levels,
            **self.decoder_input_proj_cfg)
        self.memory_proj = nn.Sequential(
            nn.Linear(embed_dims, embed_dims), nn.LayerNorm(embed_dims))
        self.dn_query_generator = None
        if self.dn_cfg is not None:
            self.dn_query_generator = RTDETRCdnQueryGenerator(
                num_classes=self.bbox_head.num_classes,
                embed_dims=embed_dims,
                num_matching_queries=self.num_queries,
                **self.dn_cfg)

    def _build_aux_head(self, cfg: OptConfigType) -> Optional[nn.Module]:
        """Build ``aux_head`` for the neck's maps.

        Raises:
            ValueError: Its input width or number of levels is not the
                neck's.
        """
        if not cfg:
            return None
        head = MODELS.build(cfg)
        widths = list(self.neck.out_channels)
        if set(widths) != {head.in_channels}:
            raise ValueError(
                f'aux_head.in_channels={head.in_channels} but the neck '
                f'gives {widths}; set aux_head.in_channels to '
                f'{widths[0]}.')
        num_levels = head.prior_generator.num_levels
        if num_levels != len(widths):
            raise ValueError(
                f'aux_head has {num_levels} levels (its anchor strides) but '
                f'the neck gives {len(widths)} maps; give it one stride '
                f'per map.')
        return head

    def init_weights(self) -> None:
        """Initialise the layers owned here; submodules do their own."""
        super().init_weights()
        self.decoder_input_proj.init_weights()
        # As the official enc_output: Xavier weight, default bias.
        self.memory_proj[0].reset_parameters()
        nn.init.xavier_uniform_(self.memory_proj[0].weight)
        self.decoder.init_weights()

    def extract_feat(self, batch_inputs: Tensor) -> Tuple[Tensor]:
        """Backbone and hybrid encoder on channels-last images.

        Args:
            batch_inputs (Tensor): Images, (N, 3, H, W).

        Returns:
            tuple[Tensor]: Encoder maps at strides 8, 16 and 32.
        """
        x = self.backbone(
            batch_inputs.contiguous(memory_format=torch.channels_last))
        return self.neck(x)

    def forward_transformer(self,
                            img_feats: Tuple[Tensor],
                            batch_data_samples: OptSampleList = None) -> Dict:
        """Run the stages after ``extract_feat``; see the module docstring.

        Returns:
            dict: Inputs of the head's ``loss`` and ``predict``.
        """
        encoder_inputs, decoder_inputs = self.pre_transformer(
            img_feats, batch_data_samples)
        encoder_outputs = self.forward_encoder(**encoder_inputs)
        query_inputs, head_inputs = self.pre_decoder(
            **encoder_outputs, batch_data_samples=batch_data_samples)
        decoder_inputs.update(query_inputs)
        head_inputs.update(self.forward_decoder(**decoder_inputs))
        return head_inputs

    def pre_transformer(self,
                        img_feats: Tuple[Tensor],
                        batch_data_samples: OptSampleList = None
                        ) -> Tuple[Dict, Dict]:
        """Project the encoder maps to the decoder's width and flatten them
        into one memory sequence.

        Args:
            img_feats (tuple[Tensor]): Encoder maps, each (N, C, H_l, W_l).
            batch_data_samples (list[DetDataSample], optional): Samples,
                only checked for padding.

        Returns:
            tuple[dict, dict]: Inputs of ``forward_encoder`` and of
            ``forward_decoder``.
        """
        if batch_data_samples is not None:
            for sample in batch_data_samples:
                if tuple(sample.img_shape) != tuple(
                        sample.batch_input_shape):
                    raise ValueError(
                        f'RT-DETR needs unpadded batches (boxes are '
                        f'normalised to the whole input), but an image of '
                        f'shape {tuple(sample.img_shape)} was padded to '
                        f'{tuple(sample.batch_input_shape)}. Resize every '
                        f'image to one size (Resize with keep_ratio=False), '
                        f'as the RT-DETR configs do.')
        feats = self.decoder_input_proj(img_feats)
        spatial_shapes = [tuple(f.shape[-2:]) for f in feats]
        memory = torch.cat([f.flatten(2).transpose(1, 2) for f in feats], 1)
        return dict(memory=memory, spatial_shapes=spatial_shapes), dict(
            memory=memory, spatial_shapes=spatial_shapes)

    def forward_encoder(self, memory: Tensor,
                        spatial_shapes: SpatialShapes) -> Dict:
        """The hybrid encoder already ran as the neck: pass through."""
        return dict(memory=memory, spatial_shapes=spatial_shapes)

    def pre_decoder(self,
                    memory: Tensor,
                    spatial_shapes: SpatialShapes,
                    batch_data_samples: OptSampleList = None
                    ) -> Tuple[Dict, Dict]:
        """Select the top-k encoder tokens as queries; add denoising ones.

        Args:
            memory (Tensor): Encoder memory, shape (N, L, C).
            spatial_shapes (list[tuple[int, int]]): (H, W) of each level.
            batch_data_samples (list[DetDataSample], optional): Samples with
                ground truth, used by denoising in training.

        Returns:
            tuple[dict, dict]: Inputs of ``forward_decoder`` (``query``,
            ``reference_points``, ``attn_mask``) and of the head
            (``enc_outputs_class``, ``enc_outputs_coord``, ``dn_meta``).
        """
        if memory.shape[1] < self.num_queries:
            raise ValueError(
                f'The input gives {memory.shape[1]} encoder tokens (maps '
                f'{spatial_shapes}), fewer than num_queries='
                f'{self.num_queries}; use larger images or fewer queries.')
        # Anchors and boxes in float32 at least, also under autocast: the
        # box logits of the decoder's refinements all start from these.
        anchors, valid = generate_anchors(
            spatial_shapes, memory.device,
            torch.promote_types(memory.dtype, torch.float32))
        output_memory = self.memory_proj(memory * valid.to(memory.dtype))
        enc_head = self.decoder.num_layers
        enc_logits = self.bbox_head.cls_branches[enc_head](output_memory)
        enc_boxes_unact = at_least_float32(
            self.bbox_head.reg_branches[enc_head](output_memory)) + anchors
        topk = torch.topk(enc_logits.max(-1)[0], self.num_queries, dim=1)[1]
        topk_logits = gather_tokens(enc_logits, topk)
        topk_boxes_unact = gather_tokens(enc_boxes_unact, topk)
        # Content queries are the selected tokens, detached as in RT-DETR:
        # the encoder learns from its own (top-k) loss, not through them.
        query = gather_tokens(output_memory, topk).detach()
        reference = topk_boxes_unact.detach()
        attn_mask, dn_meta = None, None
        if self.training and self.dn_query_generator is not None:
            dn_query, dn_boxes, attn_mask, dn_meta = self.dn_query_generator(
                batch_data_samples)
            query = torch.cat([dn_query, query], 1)
            reference = torch.cat([dn_boxes, reference], 1)
        decoder_inputs = dict(
            query=query,
            reference_points=reference.sigmoid(),
            attn_mask=attn_mask)
        head_inputs = dict(
            enc_outputs_class=topk_logits,
            enc_outputs_coord=topk_boxes_unact.sigmoid(),
            dn_meta=dn_meta)
        return decoder_inputs, head_inputs

    def forward_decoder(self, query: Tensor, reference_points: Tensor,
                        memory: Tensor, spatial_shapes: SpatialShapes,
                        attn_mask: Optional[Tensor] = None) -> Dict:
        """Run the decoder; the head's branches predict after each layer.

        Returns:
            dict: ``all_layers_cls_scores`` (num_layers, N, Q, C) and
            ``all_layers_bbox_preds`` (num_layers, N, Q, 4), normalised
            (cx, cy, w, h).
        """
        logits, boxes = self.decoder(
            query, reference_points, memory, spatial_shapes,
            reg_branches=self.bbox_head.reg_branches,
            cls_branches=self.bbox_head.cls_branches,
            attn_mask=attn_mask)
        return dict(all_layers_cls_scores=logits, all_layers_bbox_preds=boxes)

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Predict as :class:`DetectionTransformer` does, after
        :meth:`check_weights_loaded`."""
        self.check_weights_loaded()
        return super().predict(batch_inputs, batch_data_samples, rescale)

    def loss(self, batch_inputs: Tensor,
             batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Compute the losses: :class:`RTDETRHead`'s, and ``aux_head``'s
        on the encoder maps, prefixed ``aux_``."""
        self.mark_trained()
        img_feats = self.extract_feat(batch_inputs)
        head_inputs = self.forward_transformer(img_feats, batch_data_samples)
        losses = self.bbox_head.loss(
            **head_inputs, batch_data_samples=batch_data_samples)
        if self.aux_head is not None:
            aux = self.aux_head.loss(img_feats, batch_data_samples)
            losses.update({f'aux_{k}': v for k, v in aux.items()})
        if self.dn_query_generator is not None:
            # With no ground truth in the batch there are no denoising
            # queries; a zero term keeps every parameter in the graph so
            # DDP ranks stay in step.
            unused = self.dn_query_generator.label_embedding.weight.sum()
            losses['dn_loss_cls'] = losses['dn_loss_cls'] + 0 * unused
        return losses
