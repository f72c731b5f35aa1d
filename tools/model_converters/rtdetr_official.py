# Copyright (c) OpenMMLab. All rights reserved.
"""Convert official RT-DETR, D-FINE and DEIM-D-FINE weights to an mmdet
checkpoint of our model.

Example::

    python tools/model_converters/rtdetr_official.py \\
        PekingU_rtdetr_r50vd/ rtdetr_r50vd_coco.pth
    python tools/model_converters/rtdetr_official.py \\
        rtdetr_r50vd_6x_coco_from_paddle.pth rtdetr_r50vd_coco.pth

SRC is an HF transformers ``RTDetrForObjectDetection`` folder (config.json
and model.safetensors, as ``save_pretrained`` writes it) or an official
lyuwenyu/RT-DETR ``.pth`` (v1 or v2, weights under ``ema``/``module`` or
``model``). The config is the baseline of the source's ResNet-vd depth
(``configs/rtdetr_r{18,34,50,101}vd.py``) unless ``--config`` names one. The
result is checked by a strict load into that config's model before it is
written: ``{'meta': {'dataset_meta': {'classes': ...}, 'converted_from':
...}, 'state_dict': ...}``.

SRC may be a D-FINE as well: an HF ``DFineForObjectDetection`` folder
(``ustc-community/dfine-*``) or a Peterande/D-FINE or
Intellindust-AI-Lab/DEIM ``.pth`` (DEIM-D-FINE, the same layout). The
config is then ``configs/dfine/dfine_hgnetv2_{n,s,m,l,x}_coco.py`` of the
source's size, read from its HGNetV2 arch, encoder width and decoder
layers; DEIM's weights go there too unless ``--config`` names a
``configs/deim/deim_hgnetv2_*`` config (the same model, DEIM's recipe)::

    python tools/model_converters/rtdetr_official.py \\
        dfine-small-coco/ dfine_hgnetv2_s_coco.pth
    python tools/model_converters/rtdetr_official.py \\
        dfine_s_coco.pth dfine_hgnetv2_s_coco.pth

SRC may also be one of the official ImageNet backbone files
(``ResNet{18,34}_vd_pretrained_from_paddle.pth``,
``ResNet50_vd_ssld_v2_pretrained_from_paddle.pth``,
``ResNet101_vd_ssld_pretrained_from_paddle.pth``): the result then holds
``backbone.*`` weights, checked by a strict load into the backbone of the
config of its depth, for ``init_cfg=dict(type='Pretrained',
checkpoint=OUT, prefix='backbone.')``::

    python tools/model_converters/rtdetr_official.py \\
        ResNet18_vd_pretrained_from_paddle.pth checkpoints/r18vd_in1k.pth

The mappings are in :mod:`mmriformer.converters.rtdetr` and
:mod:`mmriformer.converters.dfine`.
"""
import argparse
import pickle
import sys

from mmriformer.converters.rtdetr import convert_checkpoint
from mmriformer.utils.cli_checks import check_output_file


def parse_args():
    parser = argparse.ArgumentParser(
        description='Convert HF transformers, lyuwenyu/RT-DETR, '
        'Peterande/D-FINE or DEIM weights into a checkpoint of our model.')
    parser.add_argument('src',
                        help='HF save_pretrained folder (RT-DETR or '
                        'D-FINE), official RT-DETR, D-FINE or DEIM .pth, or '
                        'official ImageNet PResNet .pth')
    parser.add_argument('out', help='output checkpoint (.pth)')
    parser.add_argument('--force', action='store_true',
                        help='replace OUT if it exists')
    parser.add_argument('--config',
                        help='config of the target model (default: the '
                        'baseline configs/rtdetr_r*vd.py of the source depth, '
                        'or configs/dfine/dfine_hgnetv2_*_coco.py of the '
                        'D-FINE size)')
    return parser.parse_args()


def main():
    args = parse_args()
    try:
        check_output_file(args.out, args.force)
        config = convert_checkpoint(args.src, args.out, args.config)
    except (FileNotFoundError, ValueError, pickle.UnpicklingError) as error:
        sys.exit(f'error: {error}')
    print(f'wrote {args.out} (loads strictly into {config})')


if __name__ == '__main__':
    main()
