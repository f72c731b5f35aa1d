# Copyright (c) OpenMMLab. All rights reserved.
"""Running an exported RT-DETR with OpenVINO on the CPU, and writing its
OpenVINO IR.

The IR (a ``.xml`` file with its weights in the ``.bin`` beside it) is
converted from the ONNX export (:func:`export_onnx`) and keeps its
interface (:mod:`mmriformer.deployment.exported_detector`). Its ``rt_info``
holds the class names under ``dataset_meta`` and the precision it was
exported for under ``inference_precision``, so the IR alone suffices.

For f32 and bf16 the weights stay float32 in the file: the precision of
the computation is a setting of the compiled model. It is always given
(``INFERENCE_PRECISION_HINT``), as is the number of threads
(``INFERENCE_NUM_THREADS``), because OpenVINO's defaults depend on the CPU:
on one with bf16 instructions (AVX512-BF16, AMX) it computes in bf16 unless
told otherwise.

An int8 IR is quantised by NNCF's post-training quantisation
(:func:`quantize_ir`), calibrated on real images: the inputs and weights of
its convolutions and matrix products become int8; the rest, and the
modules kept in float (:data:`FLOAT_MODULES`), compute in f32. Measured on
the demo (``configs/demo/rtdetr_riformer_s12_shapes.py``, its checkpoint of
8 epochs, 64 training images for the calibration, mAP on its 100
validation images): f32 0.660, bf16 0.660; int8 with NNCF's default
(CNN) scheme 0.534, because it also quantises the residual additions and
the inputs of the layer norms; with its transformer scheme (used here)
0.656, and 0.658 with the default float modules.

OpenVINO and NNCF are optional (``requirements/optional.txt``); they are
imported when an IR is written or loaded.
"""
import ast
import copy
import importlib
import json
import logging
import os
import os.path as osp
import re
import tempfile
from types import ModuleType
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import onnx
from mmcv.cnn import fuse_conv_bn

from ..models.layers import to_reduction_group_norms
from .exported_detector import (DATASET_META_KEY, INPUT_NAMES, OUTPUT_NAMES,
                                ExportedDetector, parse_dataset_meta)
from .onnx_export import DeployedDetector, export_onnx
from .preprocess import preprocess

PRECISIONS = ('f32', 'bf16', 'int8')
# Modules an int8 IR keeps in float by default (regular expressions
# matched from the start of a module's name in the model, its submodules
# included): the deformable attention's sampling offsets and weights, where
# an error moves where the decoder looks, and the class and box heads,
# whose outputs are the detections. They are small matrix products.
FLOAT_MODULES = (r'.*\.sampling_offsets', r'.*\.attention_weights',
                 r'.*\.cls_branches\.\d+', r'.*\.reg_branches\.\d+')
# ONNX node metadata (torch's exporter) with the modules a node is in.
NAME_SCOPES_KEY = 'pkg.torch.onnx.name_scopes'
# The attribute of DeployedDetector that holds the model.
MODEL_SCOPE = 'detector.'
# rt_info key of the precision the IR was exported (and verified) for.
PRECISION_KEY = 'inference_precision'
# How close to PyTorch an IR must detect, per precision (arguments of
# verify_detector). f32 as the ONNX export. bf16 (8 significant bits) and
# int8 are checked loosely, against a broken export: their accuracy is a
# matter of mAP (tools/deployment/test_onnx.py). Measured on the demo's
# checkpoint (224 x 224 input; 20 validation images of 320 x 240, or the
# three generated images the export tool verifies on): the scores of the
# same detections moved by up to 0.085 in bf16 and 0.089 in int8 (0.047
# and 0.035 on the generated images), their boxes by 1.5 and 2.9 px. On
# the random-weight tiny detector of the tests, in bf16, 1 of the 20
# queries of an image was another (a near-tie of the query selection).
REDUCED_PRECISION = dict(score_tol=0.15, box_tol=5., max_unmatched=0.1)
TOLERANCES = {
    'f32': dict(score_tol=1e-4, box_tol=0.1),
    'bf16': REDUCED_PRECISION,
    'int8': REDUCED_PRECISION,
}


def import_optional(name: str) -> ModuleType:
    """The optional module ``name`` (``openvino`` or ``nncf``).

    Raises:
        ImportError: It is not installed; the message names the fix.
    """
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ImportError(
            f'{name} is not installed; install the optional requirements '
            f'(pip install -r requirements/optional.txt).') from error


def check_precision(precision: str) -> None:
    """Raise a ValueError naming the choices if ``precision`` is not one
    of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise ValueError(f'Precision {precision!r} is not offered; give one '
                         f'of {", ".join(PRECISIONS)}.')


def weights_file(xml: str) -> str:
    """The ``.bin`` file of the IR ``xml``, beside it.

    Raises:
        ValueError: ``xml`` does not end in ``.xml``.
    """
    if not xml.endswith('.xml'):
        raise ValueError(f'{xml}: an OpenVINO IR is a .xml file with its '
                         f'weights in the .bin beside it; give a path '
                         f'ending in .xml.')
    return xml[:-len('.xml')] + '.bin'


def default_num_threads() -> int:
    """The CPUs this process may run on: the threads an
    :class:`OpenVINODetector` uses unless told otherwise."""
    return len(os.sched_getaffinity(0))


def compile_on_cpu(model, precision: str, num_threads: int, name: str):
    """Compile an IR for this CPU in ``precision`` with ``num_threads``
    threads in one stream, not in OpenVINO's defaults for the CPU.

    Args:
        model (openvino.Model): A float IR, or an int8 IR with
            ``precision`` ``'int8'`` (its float parts compute in f32).
        precision (str): One of :data:`PRECISIONS`.
        num_threads (int): Threads of the computation.
        name (str): What ``model`` is, for the errors.

    Returns:
        openvino.CompiledModel: The compiled model.

    Raises:
        ValueError: OpenVINO cannot compile it so, or the CPU lacks the
            instructions of the precision.
    """
    ov = import_optional('openvino')
    hint = 'f32' if precision == 'int8' else precision
    try:
        compiled = ov.Core().compile_model(
            model, 'CPU', {
                'INFERENCE_PRECISION_HINT': hint,
                'INFERENCE_NUM_THREADS': num_threads,
                'NUM_STREAMS': 1
            })
    except RuntimeError as error:  # OpenVINO's exceptions
        raise ValueError(f'OpenVINO cannot compile {name} for this CPU in '
                         f'{precision} with {num_threads} threads: '
                         f'{error}') from error
    # A CPU without bf16 instructions computes in float32 instead.
    used = compiled.get_property('INFERENCE_PRECISION_HINT')
    if used.get_type_name() != hint:
        raise ValueError(
            f'OpenVINO computes in {used.get_type_name()} on this CPU, not '
            f'in {hint}: the CPU lacks its instructions; give the precision '
            f'f32.')
    return compiled


def name_nodes_by_module(graph: onnx.ModelProto) -> None:
    """Prefix the name of each node of an ONNX export of a
    :class:`DeployedDetector` with the model's module that computes it, in
    place (e.g. ``decoder.layers.0.cross_attn.sampling_offsets/node_MatMul_12``
    instead of ``node_MatMul_12``), as torch's exporter records it in the
    node's metadata. OpenVINO names its operations after the nodes, so
    :func:`quantize_ir` can keep modules in float by name. Nodes outside
    the model (the post-processing) keep their names.

    Args:
        graph (onnx.ModelProto): The export.
    """
    for node in graph.graph.node:
        scopes = next((ast.literal_eval(p.value) for p in node.metadata_props
                       if p.key == NAME_SCOPES_KEY), [])
        # The innermost module; the last scope is the node's own name.
        modules = [s for s in scopes[:-1] if s.startswith(MODEL_SCOPE)]
        if modules:
            node.name = f'{modules[-1][len(MODEL_SCOPE):]}/{node.name}'


def quantize_ir(model, calibration_images: Sequence[np.ndarray],
                float_modules: Sequence[str] = FLOAT_MODULES):
    """NNCF's post-training INT8 quantisation of a float IR.

    The transformer scheme of NNCF (``ModelType.TRANSFORMER``): the inputs
    and weights of convolutions and matrix products become int8 (weights
    per output channel), while residual additions and the inputs of
    normalisations stay float; then NNCF's bias correction. The ranges of
    the inputs are calibrated on ``calibration_images``.

    Args:
        model (openvino.Model): A float IR converted from the ONNX export,
            its operations named by :func:`name_nodes_by_module`.
        calibration_images (Sequence[np.ndarray]): Decoded BGR uint8
            images like those the detector will see (e.g. a few dozen
            training images).
        float_modules (Sequence[str]): Modules kept in float: regular
            expressions matched from the start of a module's name in the
            model (e.g. ``decoder.layers.0.cross_attn``), its submodules
            included. Defaults to :data:`FLOAT_MODULES`.

    Returns:
        openvino.Model: The quantised IR.

    Raises:
        ValueError: No calibration image is given, or a pattern of
            ``float_modules`` is not a regular expression or names no
            module that computes anything.
        ImportError: NNCF is not installed.
    """
    nncf = import_optional('nncf')
    if not calibration_images:
        raise ValueError('INT8 calibration needs images like those the '
                         'detector will see; none were given.')
    for pattern in float_modules:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f'The module pattern {pattern!r} is not a '
                             f'regular expression: {error}') from error
    size = tuple(d.get_length() for d in model.inputs[0].get_partial_shape()
                 [2:])
    dataset = nncf.Dataset(
        [dict(zip(INPUT_NAMES, preprocess([image], size)))
         for image in calibration_images])
    # A node's name is its module's name, '/' and its own name.
    scope = nncf.IgnoredScope(
        patterns=[rf'(?:{pattern})(?:\.[^/]*)?/' for pattern in float_modules])
    # NNCF logs a line for every operation it leaves unquantised.
    logger = logging.getLogger('nncf')
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        return nncf.quantize(model, dataset,
                             model_type=nncf.ModelType.TRANSFORMER,
                             subset_size=len(calibration_images),
                             ignored_scope=scope)
    except nncf.ValidationError as error:
        raise ValueError(
            f'A module to keep in float names no module of the model that '
            f'computes anything ({error}); the names are those of the '
            f"model's named_modules(), e.g. decoder.layers.0.cross_attn."
        ) from error
    finally:
        logger.setLevel(level)


def export_openvino(model: DeployedDetector,
                    out: str,
                    size: Tuple[int, int],
                    dataset_meta: dict,
                    precision: str = 'f32',
                    dynamic_batch: bool = False,
                    calibration_images: Optional[Sequence[np.ndarray]] = None,
                    float_modules: Sequence[str] = FLOAT_MODULES) -> str:
    """Write ``model`` as an OpenVINO IR, converted from its ONNX export.

    Args:
        model (DeployedDetector): The model, in eval mode.
        out (str): Path of the ``.xml`` file; the weights go into the
            ``.bin`` beside it (:func:`weights_file`).
        size (tuple[int, int]): Input (H, W), fixed in the file.
        dataset_meta (dict): ``classes`` and optionally ``palette``,
            stored as JSON in the ``rt_info`` under ``dataset_meta``.
        precision (str): The precision the IR is meant to run in (one of
            :data:`PRECISIONS`), stored in the ``rt_info``. For f32 and
            bf16 the weights are float32 in the file; int8 quantises the IR
            (:func:`quantize_ir`). Defaults to 'f32'.
        dynamic_batch (bool): Let the batch size vary; otherwise it is 1.
            Defaults to False.
        calibration_images (Sequence[np.ndarray], optional): For int8
            only, and needed then: see :func:`quantize_ir`.
        float_modules (Sequence[str]): For int8 only: see
            :func:`quantize_ir`. Defaults to :data:`FLOAT_MODULES`.

    Returns:
        str: ``out``.

    Raises:
        ValueError: ``out`` does not end in ``.xml``, the precision is not
            offered, calibration images are given for a float precision,
            or see :func:`quantize_ir` and :func:`export_onnx` (nothing is
            written then).
        ImportError: OpenVINO (or, for int8, NNCF) is not installed.
    """
    ov = import_optional('openvino')
    weights_file(out)
    check_precision(precision)
    if precision != 'int8' and calibration_images:
        raise ValueError(f'Calibration images are for an int8 IR; an IR in '
                         f'{precision} takes none.')
    # OpenVINO would fold the batch norms into their convolutions itself,
    # but under names of its own, which float_modules could not reach.
    model = fuse_conv_bn(copy.deepcopy(model))
    if precision != 'int8':
        # One-group norms as reductions keep the channels-last layout. Not
        # for int8: NNCF's int8 of that form moved a test model's scores by
        # 0.19 against PyTorch, of GroupNorm's by 0.16; nor in export_onnx:
        # onnxruntime runs both forms at the same speed.
        model = to_reduction_group_norms(model)
    with tempfile.TemporaryDirectory() as folder:
        graph = onnx.load(
            export_onnx(model, osp.join(folder, 'model.onnx'), size,
                        dataset_meta, dynamic_batch))
        name_nodes_by_module(graph)
        named = osp.join(folder, 'named.onnx')
        onnx.save(graph, named)
        # The IR is saved while the ONNX file it may read weights from is
        # still there.
        converted = ov.convert_model(named)
        # torch's exporter can give an input a second tensor name
        # (``clone``); the IR keeps only those of the interface.
        for ports, names in ((converted.inputs, INPUT_NAMES),
                             (converted.outputs, OUTPUT_NAMES)):
            for port, name in zip(ports, names, strict=True):
                port.get_tensor().set_names({name})
        if precision == 'int8':
            converted = quantize_ir(converted, calibration_images,
                                    float_modules)
        converted.set_rt_info(json.dumps(dataset_meta), [DATASET_META_KEY])
        converted.set_rt_info(precision, [PRECISION_KEY])
        # save_model halves the float weights to float16 by default.
        ov.save_model(converted, out, compress_to_fp16=False)
    return out


class OpenVINODetector(ExportedDetector):
    """An exported detector compiled by OpenVINO for the CPU, with the
    attributes of :class:`ExportedDetector` and those below.

    Args:
        path (str): The ``.xml`` file written by
            ``tools/deployment/export_openvino.py``, its ``.bin`` beside it.
        precision (str, optional): Compute in ``'f32'`` or ``'bf16'`` (a
            float IR), or ``'int8'`` (an int8 IR, its float parts in f32).
            Defaults to the precision the IR was exported for.
        num_threads (int, optional): Threads of the computation. Defaults
            to the CPUs this process may run on
            (:func:`default_num_threads`).

    Attributes:
        precision (str): The precision OpenVINO computes in.
        num_threads (int): Its threads.

    Raises:
        FileNotFoundError: ``path`` or its ``.bin`` does not exist.
        ValueError: ``path`` is not such an IR, the precision is not
            offered or the CPU cannot compute in it, or ``num_threads`` is
            below 1.
        ImportError: OpenVINO is not installed.
    """

    backend = 'OpenVINO'

    def __init__(self,
                 path: str,
                 precision: Optional[str] = None,
                 num_threads: Optional[int] = None) -> None:
        ov = import_optional('openvino')
        if not osp.isfile(path):
            raise FileNotFoundError(f'OpenVINO IR {path} does not exist')
        not_ours = (f'{path} is not an OpenVINO IR written by '
                    f'tools/deployment/export_openvino.py')
        if not path.endswith('.xml'):
            raise ValueError(
                f'{not_ours}: an IR is a .xml file with its .bin beside it '
                f'(an ONNX file runs with onnxruntime; export_openvino.py '
                f'writes an IR from the config and the checkpoint).')
        if not osp.isfile(weights_file(path)):
            raise FileNotFoundError(
                f'The weights {weights_file(path)} of the OpenVINO IR {path} '
                f'do not exist; keep the .bin beside the .xml.')
        core = ov.Core()
        try:
            model = core.read_model(path)
        except RuntimeError as error:  # OpenVINO's exceptions
            raise ValueError(f'{not_ours}: OpenVINO cannot read it '
                             f'({error})') from error
        names = tuple(p.get_any_name() for p in model.inputs), tuple(
            p.get_any_name() for p in model.outputs)
        keys = (DATASET_META_KEY, PRECISION_KEY)
        if names != (INPUT_NAMES, OUTPUT_NAMES) or \
                not all(model.has_rt_info([key]) for key in keys):
            raise ValueError(
                f'{not_ours}: it takes {names[0]} and gives {names[1]} '
                f'(expected {INPUT_NAMES} and {OUTPUT_NAMES}, and the rt_info '
                f'keys {keys})')
        exported = model.get_rt_info([PRECISION_KEY]).astype(str)
        self.precision = precision or exported
        check_precision(self.precision)
        if (self.precision == 'int8') != (exported == 'int8'):
            raise ValueError(
                f'{path} is an IR in {exported}: it runs in '
                f'{"int8 only" if exported == "int8" else "f32 or bf16"}, '
                f'not in {self.precision} (export_openvino.py --precision '
                f'int8 writes an int8 IR).')
        self.num_threads = default_num_threads() if num_threads is None \
            else num_threads
        if self.num_threads < 1:
            raise ValueError(f'{self.num_threads} threads: give at least 1')
        self.path = path
        self.dataset_meta = parse_dataset_meta(
            model.get_rt_info([DATASET_META_KEY]).astype(str))
        shape = model.inputs[0].get_partial_shape()
        self.input_size = (shape[2].get_length(), shape[3].get_length())
        self.batch_size = shape[0].get_length() if shape[0].is_static \
            else None
        self.request = compile_on_cpu(model, self.precision,
                                      self.num_threads,
                                      path).create_infer_request()

    def __call__(self, images: np.ndarray,
                 orig_target_sizes: np.ndarray) -> Dict[str, np.ndarray]:
        """See :meth:`ExportedDetector.__call__`."""
        # OpenVINO converts inputs of other types, and reads past those of
        # other shapes, instead of refusing them.
        batch = self.batch_size or len(images)
        expected = ((batch, 3, *self.input_size), 'float32'), ((batch, 2),
                                                               'int64')
        given = tuple((array.shape, str(array.dtype))
                      for array in (images, orig_target_sizes))
        if given != expected:
            raise ValueError(
                f'OpenVINO cannot run {self.path} on images and '
                f'orig_target_sizes of shapes and types {given}: it takes '
                f'{expected}')
        try:
            outputs = self.request.infer(
                dict(zip(INPUT_NAMES, (images, orig_target_sizes))))
        except RuntimeError as error:  # OpenVINO's exceptions
            raise ValueError(f'OpenVINO cannot run {self.path} on images '
                             f'of shape {images.shape}: {error}') from error
        return {name: outputs[name] for name in OUTPUT_NAMES}
