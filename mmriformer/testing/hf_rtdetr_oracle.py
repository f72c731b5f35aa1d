# Copyright (c) OpenMMLab. All rights reserved.
"""The HF transformers side of the RT-DETR oracle; runs in the oracle venv.

Run by :func:`mmriformer.testing.oracle.run_hf_rtdetr_oracle` with the
oracle venv's Python, as a script: it imports only the standard library,
torch and transformers (never mmriformer, mmdet or mmengine, which that
venv does not have). For each requested variant it

1. builds ``RTDetrForObjectDetection`` from a config of that layout with
   random weights (nothing is downloaded), then perturbs every parameter
   and BatchNorm statistic so that no weight keeps its structured initial
   value (zero box deltas, uniform attention, identity norms);
2. saves it with ``save_pretrained`` (``<out>/<variant>/``), and writes the
   same weights in lyuwenyu/RT-DETR's v1 and v2 layouts
   (``<out>/<variant>_official_v1.pth``, ``..._v2.pth``), renamed here
   independently of the converter under test. The basic-block layouts
   (R18, R34) keep their perturbed projection shortcut on the first block
   of stage 1 (64 channels in and out), which our ``PResNet`` has too;
3. runs it in eval mode on one fixed 640x640 image (``<out>/image.pt``,
   uint8 RGB, HWC) scaled to [0, 1] without normalisation, and saves the
   top-300 detections of HF's own post-processing
   (``<out>/<variant>_detections.pt``).

Usage::

    python hf_rtdetr_oracle.py OUT_DIR VARIANT [VARIANT ...]
"""
import json
import math
import os
import sys

import torch

IMAGE_SIZE = 640
# Layouts of the official baselines (lyuwenyu/RT-DETR's configs).
VARIANTS = {
    'r18vd':
    dict(depths=[2, 2, 2, 2],
         layer_type='basic',
         hidden_sizes=[64, 128, 256, 512],
         expansion=0.5,
         decoder_layers=3,
         encoder_dims=256,
         encoder_ffn=1024),
    'r34vd':
    dict(depths=[3, 4, 6, 3],
         layer_type='basic',
         hidden_sizes=[64, 128, 256, 512],
         expansion=0.5,
         decoder_layers=4,
         encoder_dims=256,
         encoder_ffn=1024),
    'r50vd':
    dict(depths=[3, 4, 6, 3],
         layer_type='bottleneck',
         hidden_sizes=[256, 512, 1024, 2048],
         expansion=1.0,
         decoder_layers=6,
         encoder_dims=256,
         encoder_ffn=1024),
    'r50vd_m':
    dict(depths=[3, 4, 6, 3],
         layer_type='bottleneck',
         hidden_sizes=[256, 512, 1024, 2048],
         expansion=0.5,
         decoder_layers=6,
         encoder_dims=256,
         encoder_ffn=1024),
    'r101vd':
    dict(depths=[3, 4, 23, 3],
         layer_type='bottleneck',
         hidden_sizes=[256, 512, 1024, 2048],
         expansion=1.0,
         decoder_layers=6,
         encoder_dims=384,
         encoder_ffn=2048),
}
NUM_CLASSES = 80


def build_model(variant: str):
    """A randomly initialised HF RT-DETR of one official layout."""
    from transformers import (RTDetrConfig, RTDetrForObjectDetection,
                              RTDetrResNetConfig)
    spec = VARIANTS[variant]
    backbone = RTDetrResNetConfig(depths=spec['depths'],
                                  hidden_sizes=spec['hidden_sizes'],
                                  layer_type=spec['layer_type'],
                                  embedding_size=64,
                                  hidden_act='relu',
                                  downsample_in_bottleneck=False,
                                  out_indices=[2, 3, 4])
    in_channels = spec['hidden_sizes'][1:]
    config = RTDetrConfig(
        backbone_config=backbone,
        encoder_in_channels=in_channels,
        encoder_hidden_dim=spec['encoder_dims'],
        encoder_ffn_dim=spec['encoder_ffn'],
        hidden_expansion=spec['expansion'],
        decoder_in_channels=[spec['encoder_dims']] * 3,
        decoder_layers=spec['decoder_layers'],
        # None: HF adds AIFI's position embedding only without an eval size.
        eval_size=None,
        anchor_image_size=None,
        id2label={i: f'class_{i}'
                  for i in range(NUM_CLASSES)},
        label2id={f'class_{i}': i
                  for i in range(NUM_CLASSES)})
    torch.manual_seed(0)
    return RTDetrForObjectDetection(config).eval()


def perturb_(model, seed: int) -> None:
    """Random weights of sane magnitude in every parameter and statistic.

    Norm scales in [0.5, 1.5], biases ~ N(0, 0.1), other weights
    ~ N(0, 1 / fan_in); BatchNorm means ~ N(0, 0.1) and variances in
    [0.5, 1.5]. Buffers of frozen BatchNorms are covered too (HF keeps the
    backbone's norm weights as buffers).
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in list(model.named_parameters()) + list(
                model.named_buffers()):
            leaf = name.rsplit('.', 1)[-1]
            if not tensor.is_floating_point():
                continue
            shape = tensor.shape
            if leaf in ('running_var', ) or (leaf == 'weight'
                                             and tensor.dim() == 1):
                new = torch.rand(shape, generator=gen) + 0.5
            elif leaf in ('bias', 'running_mean'):
                new = torch.randn(shape, generator=gen) * 0.1
            elif tensor.dim() >= 2:
                fan_in = tensor[0].numel()
                new = torch.randn(shape, generator=gen) / math.sqrt(fan_in)
            else:
                continue
            tensor.copy_(new)
        # Tokens at invalid anchors (the image border of the finest level)
        # are zeroed before enc_output, so they all share one score. Random
        # biases can rank that score above the rest, and then every query
        # is the same (a vacuous comparison). Without the biases they score
        # enc_score_head.bias only, far below valid tokens, as in trained
        # models.
        for layer in model.model.enc_output:
            layer.bias.zero_()


def has_stage1_projection(model) -> bool:
    """Whether the first block of stage 1 has a conv on its shortcut (the
    official layout for basic and bottleneck blocks alike)."""
    block = model.model.backbone.model.encoder.stages[0].layers[0]
    return hasattr(getattr(block, 'shortcut', None), 'convolution')


def make_image(seed: int = 0,
               size: int = IMAGE_SIZE,
               cells: int = 10) -> torch.Tensor:
    """A smooth random square RGB image, uint8 HWC: coloured blobs (a
    bilinear upsampling of random ``cells`` x ``cells`` colours) plus mild
    noise.

    Args:
        seed (int): Of the colours and the noise. Defaults to 0.
        size (int): Side in pixels. Defaults to 640.
        cells (int): Colours per side. Defaults to 10.
    """
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, cells, cells, generator=gen)
    image = torch.nn.functional.interpolate(low,
                                            size=(size, size),
                                            mode='bilinear',
                                            align_corners=False)[0]
    image = image + 0.05 * torch.randn(image.shape, generator=gen)
    image = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    return image.permute(1, 2, 0).contiguous()


def save_detections(outputs, size: int, path: str) -> int:
    """Save HF's own post-processing of a model's outputs on one square
    image: all ``num_queries`` top detections (``scores``, ``labels``,
    ``boxes`` in pixels) with the raw ``logits`` and ``pred_boxes``.

    Args:
        outputs: The model's outputs (batch of one).
        size (int): The image's side in pixels.
        path (str): Where to save them.

    Returns:
        int: The number of detections.
    """
    from transformers.models.rt_detr.image_processing_pil_rt_detr import \
        RTDetrImageProcessorPil

    # threshold -1 keeps all num_queries detections (scores > -1).
    result = RTDetrImageProcessorPil().post_process_object_detection(
        outputs, threshold=-1.0, target_sizes=[(size, size)])[0]
    torch.save(
        dict(scores=result['scores'],
             labels=result['labels'],
             boxes=result['boxes'],
             logits=outputs.logits[0],
             pred_boxes=outputs.pred_boxes[0]), path)
    return len(result['scores'])


def write_report(out_dir: str, report: dict) -> None:
    """Write ``report`` with the versions of torch and transformers to
    ``<out_dir>/report.json``."""
    import transformers
    report['versions'] = dict(torch=torch.__version__,
                              transformers=transformers.__version__)
    with open(os.path.join(out_dir, 'report.json'), 'w') as f:
        json.dump(report, f)


def layer_name(prefix: str, rest: list, norms: dict) -> tuple:
    """The official name of a key inside an HF encoder or decoder layer.

    Args:
        prefix (str): The official layer's prefix, ending with a dot.
        rest (list[str]): The HF key's parts after the layer index.
        norms (dict): HF norm names to official ones in this layer.

    Returns:
        tuple: ``(name, None)``, or ``(name, letter)`` for HF's separate
        q, k and v projections (``letter`` is ``'q'``, ``'k'`` or ``'v'``),
        which the official layout stacks into ``name``.
    """
    if rest[0] in norms:
        return prefix + norms[rest[0]] + '.' + rest[-1], None
    if rest[0] == 'mlp':
        return prefix + rest[1].replace('fc', 'linear') + '.' + rest[-1], None
    if rest[0] == 'encoder_attn':
        return prefix + 'cross_attn.' + '.'.join(rest[1:]), None
    if rest[1] == 'o_proj':
        return prefix + 'self_attn.out_proj.' + rest[-1], None
    return prefix + 'self_attn.in_proj_' + rest[-1], rest[1][0]


def store(out: dict, qkv: dict, key: str, new, letter, value) -> None:
    """Put an HF tensor under its official name ``new`` in ``out``; one of
    HF's separate q, k, v projections (``letter``) goes to ``qkv`` for
    :func:`stack_qkv_`.

    Raises:
        KeyError: ``new`` is None: the HF key has no official name.
    """
    if new is None:
        raise KeyError(f'no official name for {key}')
    if letter:
        qkv.setdefault(new, {})[letter] = value
    else:
        out[new] = value.clone()


def stack_qkv_(out: dict, qkv: dict) -> None:
    """Stack the q, k and v projections that :func:`store` set aside, as
    ``nn.MultiheadAttention``'s ``in_proj``, into ``out``."""
    for name, parts in qkv.items():
        out[name] = torch.cat([parts['q'], parts['k'], parts['v']])


def official_state(hf_state: dict, version: str) -> dict:
    """The HF weights renamed to lyuwenyu/RT-DETR's layout.

    Written from the official code's module names (PResNet ``conv1``,
    ``res_layers.i.blocks.j.branch2a/b/c``, ``short``; ``HybridEncoder``;
    ``RTDETRTransformer``/``RTDETRTransformerv2``), as an independent check
    of the converter's official path.
    """
    out = {}
    spec_dec = {
        'self_attn_layer_norm': 'norm1',
        'encoder_attn_layer_norm': 'norm2',
        'final_layer_norm': 'norm3'
    }
    spec_enc = {'self_attn_layer_norm': 'norm1', 'final_layer_norm': 'norm2'}
    qkv = {}
    for key, value in hf_state.items():
        k = key[len('model.'):]
        parts = k.split('.')
        new, letter = None, None
        if k.startswith('backbone.model.embedder.embedder.'):
            idx = int(parts[4])
            kind = 'conv' if parts[5] == 'convolution' else 'norm'
            new = f'backbone.conv1.conv1_{idx + 1}.{kind}.{parts[-1]}'
        elif k.startswith('backbone.model.encoder.stages.'):
            stage, block = parts[4], parts[6]
            prefix = f'backbone.res_layers.{stage}.blocks.{block}.'
            kind = 'conv' if 'convolution' in parts else 'norm'
            if parts[7] == 'layer':
                branch = 'abc'[int(parts[8])]
                new = f'{prefix}branch2{branch}.{kind}.{parts[-1]}'
            else:  # shortcut, pooled ('shortcut.1.') or not
                pooled = parts[8] == '1'
                new = (f'{prefix}short.{"conv." if pooled else ""}{kind}.'
                       f'{parts[-1]}')
        elif k.startswith('encoder_input_proj.'):
            kind = {'0': 'conv', '1': 'norm'}[parts[2]] if version == 'v2' \
                else parts[2]
            new = f'encoder.input_proj.{parts[1]}.{kind}.{parts[-1]}'
        elif k.startswith('encoder.aifi.'):
            new, letter = layer_name(
                f'encoder.encoder.{parts[2]}.layers.{parts[4]}.', parts[5:],
                spec_enc)
        elif k.startswith('encoder.'):
            new = k  # lateral/downsample convs, fpn/pan blocks: same names
        elif k.startswith('decoder_input_proj.'):
            kind = {'0': 'conv', '1': 'norm'}[parts[2]]
            new = f'decoder.input_proj.{parts[1]}.{kind}.{parts[-1]}'
        elif k.startswith('decoder.layers.'):
            new, letter = layer_name(f'decoder.decoder.layers.{parts[2]}.',
                                     parts[3:], spec_dec)
        elif k.startswith('decoder.query_pos_head.'):
            new = k
        elif k.startswith('decoder.class_embed.'):
            new = f'decoder.dec_score_head.{parts[2]}.{parts[-1]}'
        elif k.startswith('decoder.bbox_embed.'):
            new = (f'decoder.dec_bbox_head.{parts[2]}.layers.{parts[4]}.'
                   f'{parts[-1]}')
        elif k.startswith('enc_output.'):
            kind = {'0': 'proj', '1': 'norm'}[parts[1]] if version == 'v2' \
                else parts[1]
            new = f'decoder.enc_output.{kind}.{parts[-1]}'
        elif k.startswith(('enc_score_head.', 'enc_bbox_head.',
                           'denoising_class_embed.')):
            new = 'decoder.' + k
        store(out, qkv, key, new, letter, value)
    stack_qkv_(out, qkv)
    if version == 'v2':
        # v2's extra buffers: uniform point scales and fixed-size anchors.
        layers = {
            k.split('.')[3]
            for k in out if k.startswith('decoder.decoder.layers.')
        }
        for i in layers:
            out[f'decoder.decoder.layers.{i}.cross_attn.num_points_scale'] = \
                torch.full((12, ), 0.25)
        out['decoder.anchors'] = torch.zeros(1, 8400, 4)
        out['decoder.valid_mask'] = torch.ones(1, 8400, 1, dtype=torch.bool)
    return out


def main(out_dir: str, variants) -> None:
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    os.makedirs(out_dir, exist_ok=True)
    image = make_image()
    torch.save(image, os.path.join(out_dir, 'image.pt'))
    pixels = image.permute(2, 0, 1)[None].float() / 255
    report = {}
    for seed, variant in enumerate(variants):
        model = build_model(variant)
        perturb_(model, seed=100 + seed)
        model.save_pretrained(os.path.join(out_dir, variant))
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        torch.save({'model': official_state(state, 'v1')},
                   os.path.join(out_dir, f'{variant}_official_v1.pth'))
        torch.save(
            {'ema': {
                'module': official_state(state, 'v2'),
                'updates': 0
            }}, os.path.join(out_dir, f'{variant}_official_v2.pth'))
        with torch.no_grad():
            outputs = model(pixel_values=pixels)
        report[variant] = dict(
            detections=save_detections(
                outputs, IMAGE_SIZE,
                os.path.join(out_dir, f'{variant}_detections.pt')),
            stage1_projection=has_stage1_projection(model))
    write_report(out_dir, report)


if __name__ == '__main__':
    if len(sys.argv) < 3 or any(v not in VARIANTS for v in sys.argv[2:]):
        sys.exit(f'usage: {sys.argv[0]} OUT_DIR VARIANT [VARIANT ...] with '
                 f'variants from {sorted(VARIANTS)}')
    main(sys.argv[1], sys.argv[2:])
