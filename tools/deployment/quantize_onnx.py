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

from mmriformer.deployment import quantize_int8, read_image
from mmriformer.utils.cli_checks import check_output_file
from mmriformer.utils.image_files import find_images


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Quantise an exported RT-DETR to INT8 (onnxruntime, '
        'static).')
    parser.add_argument('model', help='float32 ONNX file from export_onnx.py')
    parser.add_argument('out', help='the INT8 .onnx file to write')
    parser.add_argument('--calibration-images', required=True,
                        metavar='PATH', help='an image or a folder of them')
    parser.add_argument(
        '--max-images', type=int, default=64,
        help='calibrate on the first N images, sorted by name (default 64)')
    parser.add_argument('--force', action='store_true',
                        help='replace OUT if it exists')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    try:
        if args.max_images < 1:
            raise ValueError(f'--max-images {args.max_images}: give at '
                             f'least 1')
        if osp.abspath(args.out) == osp.abspath(args.model):
            raise ValueError(f'{args.out} is the input file; give another '
                             f'path for the INT8 file')
        check_output_file(args.out, args.force)
        paths = find_images(args.calibration_images)[:args.max_images]
        quantize_int8(args.model, args.out,
                      [read_image(path) for path in paths])
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f'error: {error}')
    print(f'Wrote {args.out} ({osp.getsize(args.out) / 2**20:.1f} MiB, '
          f'calibrated on {len(paths)} images; the float32 file: '
          f'{osp.getsize(args.model) / 2**20:.1f} MiB)')


if __name__ == '__main__':
    main()
