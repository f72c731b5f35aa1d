# Copyright (c) OpenMMLab. All rights reserved.
"""The HF transformers side of the whole-model D-FINE oracle; runs in the
oracle venv.

Run by :func:`mmriformer.testing.oracle.run_hf_dfine_oracle` with the
oracle venv's Python, as a script: it imports only the standard library,
torch, transformers and its sibling oracle scripts (the backbone's config
and redraw, the decoder's redraw, the image and the post-processing). For
each requested size (``n``, ``s``, ``m``, ``l``, ``x``) it

1. builds ``DFineForObjectDetection`` of that size's official layout
   (Peterande/D-FINE ``configs/dfine/dfine_hgnetv2_*_coco.yml``, 80
   classes; nothing is downloaded) and redraws every weight, variance
   preserving: the backbone as the HGNetV2 oracle does (its BatchNorm
   statistics measured on a calibration batch, then perturbed; loaded
   into HF's frozen norms), and then, everywhere else, matrices
   ~ N(0, 1 / fan_in), norm scales in [0.5, 1.5], biases ~ N(0, 0.1) (the
   sampling offsets' on top of their initial grid); the encoder's
   BatchNorm statistics are measured likewise. ``up``, ``reg_scale`` and
   ``num_points_scale`` keep their values. ``enc_output``'s bias is zero,
   so that the tokens of invalid anchors (zeroed memory) share a low score
   and the 300 selected queries are distinct;
2. saves it with ``save_pretrained`` (``<out>/<size>/``) and writes the
   same weights in Peterande/D-FINE's layout
   (``<out>/<size>_official.pth``, ``{'ema': {'module': ...}}``), renamed
   here from the official module names independently of the converter
   under test, with the buffers the official model also saves (``up`` and
   ``reg_scale`` twice, ``num_points_scale``, the anchors of a 640 eval
   size, and the counters of the backbone's norms where they are trained:
   N, S and M; L and X freeze theirs);
3. runs it in eval mode, in float64, on one fixed image
   (``<out>/image.pt``, 320x320 uint8 RGB, HWC), scaled to [0, 1] without
   normalisation as D-FINE takes it, and saves the top-300 detections of HF's own
   post-processing (``<out>/<size>_detections.pt``: ``scores``,
   ``labels``, ``boxes`` in pixels, and the raw ``logits`` and
   ``pred_boxes``).

Usage::

    python hf_dfine_oracle.py OUT_DIR SIZE [SIZE ...]
"""
import copy
import os
import sys

import torch
from hf_dfine_decoder_oracle import redraw_ as redraw_linear_
from hf_hgnetv2_oracle import FROZEN_NORMS, backbone_config, calibrate_norms_
from hf_hgnetv2_oracle import official_state as official_backbone
from hf_hgnetv2_oracle import redraw_ as redraw_backbone_
from hf_rtdetr_oracle import (make_image, save_detections, stack_qkv_, store,
                              write_report)

IMAGE_SIZE = 320
NUM_CLASSES = 80
# The sizes' official layouts: the HGNetV2 arch and DFineConfig fields.
SIZES = {
    'n':
    dict(arch='B0',
         out_features=['stage3', 'stage4'],
         encoder_in_channels=[512, 1024],
         feat_strides=[16, 32],
         encoder_hidden_dim=128,
         encoder_ffn_dim=512,
         encode_proj_layers=[1],
         hidden_expansion=0.34,
         depth_mult=0.5,
         d_model=128,
         decoder_ffn_dim=512,
         decoder_in_channels=[128, 128],
         num_feature_levels=2,
         decoder_n_points=[6, 6],
         decoder_layers=3),
    's':
    dict(arch='B0',
         out_features=['stage2', 'stage3', 'stage4'],
         encoder_in_channels=[256, 512, 1024],
         feat_strides=[8, 16, 32],
         encoder_hidden_dim=256,
         encoder_ffn_dim=1024,
         encode_proj_layers=[2],
         hidden_expansion=0.5,
         depth_mult=0.34,
         d_model=256,
         decoder_ffn_dim=1024,
         decoder_in_channels=[256, 256, 256],
         num_feature_levels=3,
         decoder_n_points=[3, 6, 3],
         decoder_layers=3),
}
# M, L and X: three levels of the last three stages, a 256-wide decoder
# with points [3, 6, 3]; X's 384-wide encoder is projected to it.
_WIDE = dict(out_features=['stage2', 'stage3', 'stage4'],
             feat_strides=[8, 16, 32],
             encode_proj_layers=[2],
             hidden_expansion=1.0,
             d_model=256,
             decoder_ffn_dim=1024,
             num_feature_levels=3,
             decoder_n_points=[3, 6, 3])
SIZES.update(
    m=dict(_WIDE,
           arch='B2',
           encoder_in_channels=[384, 768, 1536],
           encoder_hidden_dim=256,
           encoder_ffn_dim=1024,
           depth_mult=0.67,
           decoder_in_channels=[256, 256, 256],
           decoder_layers=4),
    l=dict(_WIDE,
           arch='B4',
           encoder_in_channels=[512, 1024, 2048],
           encoder_hidden_dim=256,
           encoder_ffn_dim=1024,
           depth_mult=1.0,
           decoder_in_channels=[256, 256, 256],
           decoder_layers=6),
    x=dict(_WIDE,
           arch='B5',
           encoder_in_channels=[512, 1024, 2048],
           encoder_hidden_dim=384,
           encoder_ffn_dim=2048,
           depth_mult=1.0,
           decoder_in_channels=[384, 384, 384],
           decoder_layers=6,
           reg_scale=8.0))


def build_model(size: str):
    """A randomly initialised HF D-FINE of one official layout."""
    from transformers import DFineConfig, DFineForObjectDetection
    spec = dict(SIZES[size])
    backbone = backbone_config(spec.pop('arch'))
    backbone.out_features = spec.pop('out_features')
    config = DFineConfig(backbone_config=backbone,
                         eval_size=None,
                         anchor_image_size=None,
                         id2label={i: f'class_{i}'
                                   for i in range(NUM_CLASSES)},
                         label2id={f'class_{i}': i
                                   for i in range(NUM_CLASSES)},
                         **spec)
    config._attn_implementation = 'eager'
    torch.manual_seed(0)
    return DFineForObjectDetection(config).eval()


def redraw_(model, calibration: torch.Tensor, seed: int) -> None:
    """Random, well-conditioned weights and statistics (module doc)."""
    from transformers import HGNetV2Backbone
    gen = torch.Generator().manual_seed(seed)
    hgnet = HGNetV2Backbone(model.config.backbone_config)
    redraw_backbone_(hgnet, calibration, seed)
    missing, unexpected = model.model.backbone.model.load_state_dict(
        {
            k: v
            for k, v in hgnet.state_dict().items()
            if not k.endswith('num_batches_tracked')
        },
        strict=False)
    if missing or unexpected:
        raise KeyError(f'backbone: missing {missing}, unexpected '
                       f'{unexpected}')
    norms = [
        m for name, m in model.named_modules()
        if isinstance(m, torch.nn.BatchNorm2d)
        and not name.startswith('model.backbone.')
    ]
    parts = [
        module for name, module in model.model.named_children()
        if name != 'backbone'
    ]
    for i, part in enumerate(parts):
        redraw_linear_(part, seed + 1 + i)
    with torch.no_grad():
        for layer in model.model.enc_output:
            if getattr(layer, 'bias', None) is not None:
                layer.bias.zero_()
    calibrate_norms_(model, norms, calibration, gen)


def official_state(hf_state: dict, arch: str, strides: list) -> dict:
    """The HF weights renamed to Peterande/D-FINE's ``DFINE`` layout.

    Written from the official module names (``HGNetv2``; ``HybridEncoder``
    with ``ConvNormLayer`` ``conv``/``norm``, ``RepNCSPELAN4``
    ``cv1``..``cv4``, ``SCDown`` in a Sequential; ``DFINETransformer`` with
    its ``TransformerDecoder`` as ``decoder.decoder``), as an independent
    check of the converter's official path.

    Args:
        hf_state (dict): The HF state dict.
        arch (str): The backbone's HGNetV2 arch.
        strides (list[int]): The feature strides, for the anchors.
    """
    elan = {
        'conv1': 'cv1',
        'csp_rep1': 'cv2.0',
        'conv2': 'cv2.1',
        'csp_rep2': 'cv3.0',
        'conv3': 'cv3.1',
        'conv4': 'cv4'
    }
    aifi = {
        'self_attn.o_proj': 'self_attn.out_proj',
        'self_attn_layer_norm': 'norm1',
        'mlp.layers.0': 'linear1',
        'mlp.layers.1': 'linear2',
        'final_layer_norm': 'norm2'
    }
    decoder_layer = {
        'self_attn.o_proj': 'self_attn.out_proj',
        'self_attn_layer_norm': 'norm1',
        'encoder_attn': 'cross_attn',
        'mlp.layers.0': 'linear1',
        'mlp.layers.1': 'linear2',
        'final_layer_norm': 'norm3'
    }

    def layer_name(prefix: str, rest: str, table: dict) -> tuple:
        """The official name of a key inside an attention layer, and
        ``'q'``, ``'k'`` or ``'v'`` for HF's separate projections, which
        the official layout stacks (else None)."""
        if rest[:10] == 'self_attn.' and rest[10:17] in ('q_proj.', 'k_proj.',
                                                         'v_proj.'):
            return f'{prefix}self_attn.in_proj_{rest[17:]}', rest[10]
        for old, new in table.items():
            if rest.startswith(old + '.'):
                return prefix + new + rest[len(old):], None
        return prefix + rest, None

    backbone_prefix = 'model.backbone.model.'
    out = official_backbone(
        {
            k[len(backbone_prefix):]: v
            for k, v in hf_state.items() if k.startswith(backbone_prefix)
        }, arch)
    # HF freezes the backbone's norms; D-FINE-N, S and M train theirs,
    # which save counters.
    for key in list(out):
        if arch not in FROZEN_NORMS and key.endswith('.running_mean'):
            out[key[:-len('running_mean')] + 'num_batches_tracked'] = \
                torch.tensor(1000)
    qkv = {}
    for key, value in hf_state.items():
        if key.startswith(backbone_prefix):
            continue
        parts = key.split('.')
        new, letter = None, None
        if key.startswith('model.encoder_input_proj.'):
            kind = {'0': 'conv', '1': 'norm'}[parts[3]]
            new = f'encoder.input_proj.{parts[2]}.{kind}.{parts[-1]}'
        elif key.startswith('model.decoder_input_proj.'):
            kind = {'0': 'conv', '1': 'norm'}[parts[3]]
            new = f'decoder.input_proj.{parts[2]}.{kind}.{parts[-1]}'
        elif key.startswith('model.encoder.aifi.'):
            new, letter = layer_name(
                f'encoder.encoder.{parts[3]}.layers.{parts[5]}.',
                '.'.join(parts[6:]), aifi)
        elif key.startswith('model.encoder.'):
            rest = '.'.join(parts[2:])
            if parts[2] in ('fpn_blocks', 'pan_blocks'):
                rest = '.'.join(parts[2:4] + [elan[parts[4]]] + parts[5:])
            elif parts[2] == 'downsample_convs':
                rest = '.'.join(parts[2:4] + ['0', 'cv' + parts[4][-1]] +
                                parts[5:])
            new = 'encoder.' + rest
        elif key.startswith(('model.decoder.class_embed.', 'class_embed.')):
            new = f'decoder.dec_score_head.{parts[-2]}.{parts[-1]}'
        elif key.startswith(('model.decoder.bbox_embed.', 'bbox_embed.')):
            new = (f'decoder.dec_bbox_head.{parts[-4]}.layers.{parts[-2]}.'
                   f'{parts[-1]}')
        elif key.startswith('model.decoder.layers.'):
            new, letter = layer_name(f'decoder.decoder.layers.{parts[3]}.',
                                     '.'.join(parts[4:]), decoder_layer)
        elif key.startswith('model.decoder.lqe_layers.'):
            new = 'decoder.decoder.' + '.'.join(parts[2:])
        elif key in ('model.decoder.up', 'model.decoder.reg_scale'):
            # Official: DFINETransformer's parameter, held again by its
            # TransformerDecoder.
            out['decoder.decoder.' + parts[-1]] = value.clone()
            new = 'decoder.' + parts[-1]
        elif key.startswith(('model.decoder.query_pos_head.',
                             'model.decoder.pre_bbox_head.')):
            new = 'decoder.' + '.'.join(parts[2:])
        elif key.startswith('model.enc_output.'):
            kind = {'0': 'proj', '1': 'norm'}[parts[2]]
            new = f'decoder.enc_output.{kind}.{parts[-1]}'
        elif key.startswith(('model.enc_score_head.', 'model.enc_bbox_head.',
                             'model.denoising_class_embed.')):
            new = 'decoder.' + key[len('model.'):]
        store(out, qkv, key, new, letter, value)
    stack_qkv_(out, qkv)
    # The official configs' eval size (640) fixes anchors as buffers.
    tokens = sum((640 // stride)**2 for stride in strides)
    out['decoder.anchors'] = torch.zeros(1, tokens, 4)
    out['decoder.valid_mask'] = torch.ones(1, tokens, 1, dtype=torch.bool)
    return out


def main(out_dir: str, sizes) -> None:
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    os.makedirs(out_dir, exist_ok=True)
    image = make_image(size=IMAGE_SIZE, cells=8)
    torch.save(image, os.path.join(out_dir, 'image.pt'))
    pixels = image.permute(2, 0, 1)[None].double() / 255
    calibration = torch.rand((2, 3, IMAGE_SIZE, IMAGE_SIZE),
                             generator=torch.Generator().manual_seed(1))
    report = {}
    for seed, size in enumerate(sizes):
        model = build_model(size)
        redraw_(model, calibration, seed=300 + seed)
        model.save_pretrained(os.path.join(out_dir, size))
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        official = official_state(state, SIZES[size]['arch'],
                                  model.config.feat_strides)
        torch.save({'ema': {
            'module': official,
            'updates': 0
        }}, os.path.join(out_dir, f'{size}_official.pth'))
        with torch.no_grad():
            outputs = copy.deepcopy(model).double()(pixel_values=pixels)
        report[size] = dict(
            hf_tensors=len(state),
            official_tensors=len(official),
            detections=save_detections(
                outputs, IMAGE_SIZE,
                os.path.join(out_dir, f'{size}_detections.pt')))
    write_report(out_dir, report)


if __name__ == '__main__':
    if len(sys.argv) < 3 or any(s not in SIZES for s in sys.argv[2:]):
        sys.exit(f'usage: {sys.argv[0]} OUT_DIR SIZE [SIZE ...] with sizes '
                 f'from {sorted(SIZES)}')
    main(sys.argv[1], sys.argv[2:])
