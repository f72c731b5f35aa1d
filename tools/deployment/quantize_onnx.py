# Copyright (c) OpenMMLab. All rights reserved.
"""Quantise an exported RT-DETR to INT8 with onnxruntime (static, QDQ).

Weights of every convolution and matrix product become int8 per output
channel; their inputs are quantised with ranges calibrated on the given
images, which should look like what the detector will see (a few dozen
training images). The file keeps the export's interface and class names,
so ``tools/infer.py --backend onnxruntime`` and
``tools/deployment/test_onnx.py`` (its mAP) take it as they take the
float32 file. See :mod:`mmriformer.deployment.quantize`.

Example::

    python tools/deployment/quantize_onnx.py work_dirs/demo/model.onnx \\
        work_dirs/demo/model_int8.onnx \\
        --calibration-images data/shapes/train --max-images 64
"""
import argparse
import os.path as osp
import sys

from mmriformer.deployment import quantize_int8
from mmriformer.deployment.cli import (add_calibration_arguments,
                                       calibration_images)
from mmriformer.utils.cli_checks import check_output_file


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Quantise an exported RT-DETR to INT8 (onnxruntime, '
        'static).')
    parser.add_argument('model', help='float32 ONNX file from export_onnx.py')
    parser.add_argument('out', help='the INT8 .onnx file to write')
    add_calibration_arguments(parser, required=True)
    parser.add_argument('--force', action='store_true',
                        help='replace OUT if it exists')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    try:
        if osp.abspath(args.out) == osp.abspath(args.model):
            raise ValueError(f'{args.out} is the input file; give another '
                             f'path for the INT8 file')
        check_output_file(args.out, args.force)
        images = calibration_images(args)
        quantize_int8(args.model, args.out, images)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f'error: {error}')
    print(f'Wrote {args.out} ({osp.getsize(args.out) / 2**20:.1f} MiB, '
          f'calibrated on {len(images)} images; the float32 file: '
          f'{osp.getsize(args.model) / 2**20:.1f} MiB)')


if __name__ == '__main__':
    main()
