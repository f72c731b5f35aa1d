# Copyright (c) OpenMMLab. All rights reserved.
"""What the deployment command lines share.

``tools/deployment/export_onnx.py`` and ``export_openvino.py`` take the
same model arguments and do the same work before the export
(:func:`export_parser`, :func:`prepare_export`); ``tools/infer.py`` and
``tools/deployment/test_onnx.py`` open an exported file in the runtime
asked for, with the same OpenVINO settings (:func:`add_runtime_arguments`,
:func:`check_runtime_arguments`, :func:`open_exported`).
"""
import argparse
import os
import os.path as osp
import tempfile
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmengine.config import Config, DictAction

from ..datasets import generate_shapes_dataset
from ..utils.image_files import find_images
from .exported_detector import ExportedDetector
from .onnx_export import DeployedDetector, config_input_size, load_detector
from .onnxruntime_detector import ONNXRuntimeDetector
from .openvino_detector import PRECISIONS, OpenVINODetector
from .preprocess import read_image


def export_parser(description: str, out_help: str) -> argparse.ArgumentParser:
    """A parser with the arguments of every export tool: ``config``,
    ``checkpoint``, ``out``, ``--size``, ``--dynamic-batch``,
    ``--no-verify``, ``--verify-images``, ``--force`` and
    ``--cfg-options``.

    Args:
        description (str): What the tool does.
        out_help (str): What ``out`` is.

    Returns:
        argparse.ArgumentParser: The parser, for the tool's own arguments.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('out', help=out_help)
    parser.add_argument(
        '--size', type=int, nargs=2, metavar=('H', 'W'),
        help="input size, multiples of 32; defaults to the test "
        "pipeline's Resize scale")
    parser.add_argument('--dynamic-batch', action='store_true',
                        help='let the batch size vary (fixed to 1 without)')
    parser.add_argument('--no-verify', action='store_true',
                        help='skip the check against PyTorch')
    parser.add_argument('--verify-images', nargs='+', metavar='IMAGE',
                        help='images for the check (default: 3 generated)')
    parser.add_argument('--force', action='store_true',
                        help='replace the files written if they exist')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, e.g. '
        'model.bbox_head.num_classes=3')
    return parser


def export_input_size(cfg: Config,
                      size: Optional[Sequence[int]] = None
                      ) -> Tuple[int, int]:
    """The (H, W) an export takes: ``size`` if given, else the config's
    (:func:`config_input_size`).

    Raises:
        ValueError: The size is not a multiple of 32 (the data
            preprocessor would pad it, which RT-DETR refuses), or see
            :func:`config_input_size`.
    """
    height, width = size or config_input_size(cfg)
    if height % 32 or width % 32:
        raise ValueError(f'The input size {height}x{width} is not a '
                         f'multiple of 32; give --size H W in multiples '
                         f'of 32.')
    return height, width


def verification_images(
        paths: Optional[Sequence[str]] = None) -> List[np.ndarray]:
    """The images an export is verified on: those given, decoded, or three
    generated shapes images of 320 x 240 (not square, so the rescaling of
    boxes is checked).

    Args:
        paths (Sequence[str], optional): Image files.

    Returns:
        list[np.ndarray]: Decoded BGR uint8 images.
    """
    if paths:
        return [read_image(path) for path in paths]
    with tempfile.TemporaryDirectory() as root:
        generate_shapes_dataset(root, 'val', num_images=3,
                                image_size=(320, 240), empty_ratio=0.)
        folder = osp.join(root, 'val')
        return [read_image(osp.join(folder, name))
                for name in sorted(os.listdir(folder))]


def prepare_export(args: argparse.Namespace) -> Tuple[
        DeployedDetector, dict, Tuple[int, int], Optional[List[np.ndarray]]]:
    """The work of an export tool before the export.

    Args:
        args (argparse.Namespace): The arguments of :func:`export_parser`.

    Returns:
        tuple: The config's model with the checkpoint's weights in deploy
        form (:class:`DeployedDetector`), its dataset meta, the input
        (H, W) and the images to verify the export on (None with
        ``--no-verify``).

    Raises:
        FileNotFoundError: The config, the checkpoint or an image is
            missing.
        ValueError: See :func:`load_detector`, :func:`export_input_size`
            and :func:`read_image`.
    """
    model, cfg, dataset_meta = load_detector(args.config, args.checkpoint,
                                             args.cfg_options)
    size = export_input_size(cfg, args.size)
    images = None if args.no_verify else verification_images(
        args.verify_images)
    return DeployedDetector(model), dataset_meta, size, images


def add_calibration_arguments(parser: argparse.ArgumentParser,
                              required: bool) -> None:
    """Add ``--calibration-images`` and ``--max-images``, the images an
    INT8 quantisation is calibrated on (:func:`calibration_images`)."""
    parser.add_argument(
        '--calibration-images', required=required, metavar='PATH',
        help='an image or a folder of them, like those the detector will '
        'see (e.g. training images)')
    parser.add_argument(
        '--max-images', type=int, default=64,
        help='calibrate on the first N images, sorted by name (default 64)')


def calibration_images(args: argparse.Namespace) -> List[np.ndarray]:
    """The decoded images of :func:`add_calibration_arguments`.

    Raises:
        FileNotFoundError: The path does not exist.
        ValueError: ``--max-images`` is below 1, or the path holds no image.
    """
    if args.max_images < 1:
        raise ValueError(f'--max-images {args.max_images}: give at least 1')
    paths = find_images(args.calibration_images)[:args.max_images]
    return [read_image(path) for path in paths]


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the OpenVINO settings ``--precision`` and ``--num-threads``."""
    parser.add_argument(
        '--precision', choices=PRECISIONS,
        help='compute in this precision (openvino only; default: the one '
        'the IR was exported for)')
    parser.add_argument(
        '--num-threads', type=int,
        help='threads of the computation (openvino only; default: the CPUs '
        'this process may use)')


def check_runtime_arguments(parser: argparse.ArgumentParser,
                            args: argparse.Namespace) -> None:
    """Exit through ``parser.error`` if OpenVINO settings are given for
    another backend than ``args.backend``."""
    if args.backend != 'openvino':
        openvino_only = [option for option, given in (
            ('--precision', args.precision),
            ('--num-threads', args.num_threads is not None)) if given]
        if openvino_only:
            parser.error(f'{", ".join(openvino_only)}: for the openvino '
                         f'backend only')


def open_exported(args: argparse.Namespace, path: str) -> ExportedDetector:
    """The exported file ``path`` in the runtime ``args.backend``
    (``onnxruntime`` or ``openvino``); for OpenVINO, print the precision
    and the threads it computes with.

    Args:
        args (argparse.Namespace): With ``backend`` and the arguments of
            :func:`add_runtime_arguments`.
        path (str): The exported file.

    Returns:
        ExportedDetector: The detector.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not a file the runtime runs, or see
            :class:`OpenVINODetector`.
    """
    if args.backend == 'onnxruntime':
        return ONNXRuntimeDetector(path)
    detector = OpenVINODetector(path, args.precision, args.num_threads)
    print(f'OpenVINO computes in {detector.precision} with '
          f'{detector.num_threads} threads')
    return detector
