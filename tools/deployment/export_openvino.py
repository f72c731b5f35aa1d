# Copyright (c) OpenMMLab. All rights reserved.
"""Export an RT-DETR to an OpenVINO IR and check it against PyTorch.

The IR (``OUT.xml`` and its weights in ``OUT.bin``) is converted from the
ONNX export of ``export_onnx.py`` and keeps its interface: ``images``
(float32 RGB in [0, 1], N x 3 x H x W) and ``orig_target_sizes`` (int64
(width, height) rows, N x 2) in; ``labels``, ``boxes`` (xyxy in original
pixels) and ``scores`` of the top ``test_cfg.max_per_img`` detections out.
The class names and the precision go into its ``rt_info``, so the IR alone
runs (``tools/infer.py --backend openvino``,
``tools/deployment/test_onnx.py --backend openvino``).

``--precision`` is the precision the IR is meant to compute in on the CPU,
stored in the IR: f32 (the default) or bf16, with the weights float32 in
the file, or int8: NNCF's post-training quantisation, calibrated on
``--calibration-images`` (needed then; e.g. a few dozen training images),
with the modules of ``--float-modules`` kept in float (by default the
deformable attention's sampling offsets and weights and the class and box
heads; ``FLOAT_MODULES`` in ``mmriformer/deployment/openvino_detector.py``).
Unless ``--no-verify``, OpenVINO then runs the IR in that precision on real
images (``--verify-images``, or a few generated shapes) and its detections
must match PyTorch's: in f32 scores to 1e-4, boxes to 0.1 px and labels
equal, as the ONNX export; in bf16 and int8 loosely, against a broken
export (``TOLERANCES`` there), since their accuracy is a matter of mAP
(``test_onnx.py --backend openvino``); otherwise the tool exits with an
error. An existing OUT.xml or OUT.bin is replaced only with ``--force``.

Example::

    python tools/deployment/export_openvino.py \\
        configs/demo/rtdetr_riformer_s12_shapes.py \\
        work_dirs/demo/epoch_8.pth work_dirs/demo/model.xml --precision bf16
    python tools/deployment/export_openvino.py \\
        configs/demo/rtdetr_riformer_s12_shapes.py \\
        work_dirs/demo/epoch_8.pth work_dirs/demo/model_int8.xml \\
        --precision int8 --calibration-images data/shapes/train
"""
import argparse
import os.path as osp
import pickle
import sys

from mmriformer.deployment import (OpenVINODetector, export_openvino,
                                   verify_detector)
from mmriformer.deployment.cli import (add_calibration_arguments,
                                       calibration_images, export_parser,
                                       prepare_export)
from mmriformer.deployment.openvino_detector import (FLOAT_MODULES,
                                                     PRECISIONS, TOLERANCES,
                                                     weights_file)
from mmriformer.utils.cli_checks import check_output_file


def parse_args() -> argparse.Namespace:
    parser = export_parser(
        'Export an RT-DETR to an OpenVINO IR and check it against PyTorch.',
        'the .xml file to write (the weights go into the .bin beside it)')
    parser.add_argument(
        '--precision', choices=PRECISIONS, default='f32',
        help='the precision the IR computes in on the CPU (default f32)')
    add_calibration_arguments(parser, required=False)
    parser.add_argument(
        '--float-modules', nargs='+', metavar='REGEX', default=FLOAT_MODULES,
        help='int8: modules kept in float, regular expressions matched from '
        'the start of module names of the model, submodules included '
        '(default: %(default)s)')
    args = parser.parse_args()
    if (args.precision == 'int8') != (args.calibration_images is not None):
        parser.error('--precision int8 needs --calibration-images, and only '
                     'it takes them')
    if args.precision != 'int8' and args.float_modules is not FLOAT_MODULES:
        parser.error('--float-modules: for --precision int8 only')
    return args


def main() -> None:
    args = parse_args()
    try:
        for path in (args.out, weights_file(args.out)):
            check_output_file(path, args.force)
        calibration = calibration_images(args) \
            if args.precision == 'int8' else None
        deployed, dataset_meta, size, images = prepare_export(args)
        export_openvino(deployed, args.out, size, dataset_meta,
                        args.precision, args.dynamic_batch, calibration,
                        args.float_modules)
        print(f'Wrote {args.out} and {weights_file(args.out)} '
              f'({osp.getsize(weights_file(args.out)) / 2**20:.1f} MiB, '
              f'{args.precision}, input {size[0]}x{size[1]}, batch '
              f'{"dynamic" if args.dynamic_batch else 1}'
              + (f', calibrated on {len(calibration)} images'
                 if calibration else '') + ')')
        if images is not None:
            detector = OpenVINODetector(args.out)
            diffs = verify_detector(deployed, detector, images,
                                    **TOLERANCES[args.precision])
            print(f'OpenVINO ({detector.precision}, {detector.num_threads} '
                  f'threads) matches PyTorch on {len(images)} images: max '
                  f'score difference {diffs["max_score_diff"]:.2e}, max box '
                  f'difference {diffs["max_box_diff"]:.2e} px, at most '
                  f'{diffs["unmatched"]} detections of an image without a '
                  f'partner')
    except (FileNotFoundError, ImportError, ValueError,
            pickle.UnpicklingError) as error:
        sys.exit(f'error: {error}')


if __name__ == '__main__':
    main()
