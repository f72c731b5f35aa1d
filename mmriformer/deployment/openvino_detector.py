# Copyright (c) OpenMMLab. All rights reserved.
"""Running an exported RT-DETR with OpenVINO on the CPU, and writing its
OpenVINO IR.

The IR (a ``.xml`` file with its weights in the ``.bin`` beside it) is
converted from the ONNX export (:func:`export_onnx`) and keeps its
interface (:mod:`mmriformer.deployment.exported_detector`). Its ``rt_info``
holds the class names under ``dataset_meta`` and the precision it was
exported for under ``inference_precision``, so the IR alone suffices.

The weights stay float32 in the file: the precision of the computation is
a setting of the compiled model. It is always given
(``INFERENCE_PRECISION_HINT``), as is the number of threads
(``INFERENCE_NUM_THREADS``), because OpenVINO's defaults depend on the CPU:
on one with bf16 instructions (AVX512-BF16, AMX) it computes in bf16 unless
told otherwise.

OpenVINO is optional (``requirements/optional.txt``); it is imported when
an IR is written or loaded.
"""
import json
import os
import os.path as osp
import tempfile
from types import ModuleType
from typing import Dict, Optional, Tuple

import numpy as np

from .exported_detector import (DATASET_META_KEY, INPUT_NAMES, OUTPUT_NAMES,
                                ExportedDetector, parse_dataset_meta)
from .onnx_export import DeployedDetector, export_onnx

PRECISIONS = ('f32', 'bf16')
# rt_info key of the precision the IR was exported (and verified) for.
PRECISION_KEY = 'inference_precision'
# How close to PyTorch an IR must detect, per precision (arguments of
# verify_detector). float32 as the ONNX export. bf16 keeps 8 significant
# bits: on the random-weight tiny detector of the tests (64 x 64 input),
# the scores of the same detections moved by up to 6.3e-3 and their boxes
# by 0.25 px (on 320 x 240 images), and on one image 1 of its 20 queries
# was another (a near-tie of the query selection). Scores to 0.05, boxes
# to 2 px and a tenth of the detections without a partner are a loose
# check, until trained models are measured.
TOLERANCES = {
    'f32': dict(score_tol=1e-4, box_tol=0.1),
    'bf16': dict(score_tol=0.05, box_tol=2., max_unmatched=0.1),
}


def import_openvino() -> ModuleType:
    """The ``openvino`` module.

    Raises:
        ImportError: OpenVINO is not installed; the message names the fix.
    """
    try:
        import openvino
    except ImportError as error:
        raise ImportError(
            'OpenVINO is not installed; install the optional requirements '
            '(pip install -r requirements/optional.txt).') from error
    return openvino


def check_precision(precision: str) -> None:
    """Raise a ValueError naming the choices if ``precision`` is not one
    of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise ValueError(f'Precision {precision!r} is not offered; give one '
                         f'of {", ".join(PRECISIONS)} (INT8 is not yet).')


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


def export_openvino(model: DeployedDetector,
                    out: str,
                    size: Tuple[int, int],
                    dataset_meta: dict,
                    precision: str = 'f32',
                    dynamic_batch: bool = False) -> str:
    """Write ``model`` as an OpenVINO IR, converted from its ONNX export.

    Args:
        model (DeployedDetector): The model, in eval mode.
        out (str): Path of the ``.xml`` file; the weights go into the
            ``.bin`` beside it (:func:`weights_file`).
        size (tuple[int, int]): Input (H, W), fixed in the file.
        dataset_meta (dict): ``classes`` and optionally ``palette``,
            stored as JSON in the ``rt_info`` under ``dataset_meta``.
        precision (str): The precision the IR is meant to run in (one of
            :data:`PRECISIONS`), stored in the ``rt_info``; the weights are
            float32 either way. Defaults to 'f32'.
        dynamic_batch (bool): Let the batch size vary; otherwise it is 1.
            Defaults to False.

    Returns:
        str: ``out``.

    Raises:
        ValueError: ``out`` does not end in ``.xml``, the precision is not
            offered, or see :func:`export_onnx` (nothing is written then).
        ImportError: OpenVINO is not installed.
    """
    ov = import_openvino()
    weights_file(out)
    check_precision(precision)
    with tempfile.TemporaryDirectory() as folder:
        # The IR is saved while the ONNX file it may read weights from is
        # still there.
        converted = ov.convert_model(
            export_onnx(model, osp.join(folder, 'model.onnx'), size,
                        dataset_meta, dynamic_batch))
        # torch's exporter can give an input a second tensor name
        # (``clone``); the IR keeps only those of the interface.
        for ports, names in ((converted.inputs, INPUT_NAMES),
                             (converted.outputs, OUTPUT_NAMES)):
            for port, name in zip(ports, names, strict=True):
                port.get_tensor().set_names({name})
        converted.set_rt_info(json.dumps(dataset_meta), [DATASET_META_KEY])
        converted.set_rt_info(precision, [PRECISION_KEY])
        # save_model halves the weights to float16 by default.
        ov.save_model(converted, out, compress_to_fp16=False)
    return out


class OpenVINODetector(ExportedDetector):
    """An exported detector compiled by OpenVINO for the CPU, with the
    attributes of :class:`ExportedDetector` and those below.

    Args:
        path (str): The ``.xml`` file written by
            ``tools/deployment/export_openvino.py``, its ``.bin`` beside it.
        precision (str, optional): Compute in ``'f32'`` or ``'bf16'``.
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
        ov = import_openvino()
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
        self.precision = precision or model.get_rt_info(
            [PRECISION_KEY]).astype(str)
        check_precision(self.precision)
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
        try:
            compiled = core.compile_model(
                model, 'CPU', {
                    'INFERENCE_PRECISION_HINT': self.precision,
                    'INFERENCE_NUM_THREADS': self.num_threads,
                    'NUM_STREAMS': 1
                })
        except RuntimeError as error:  # OpenVINO's exceptions
            raise ValueError(f'OpenVINO cannot compile {path} for this CPU '
                             f'in {self.precision} with {self.num_threads} '
                             f'threads: {error}') from error
        # A CPU without bf16 instructions computes in float32 instead.
        used = compiled.get_property('INFERENCE_PRECISION_HINT')
        if used.get_type_name() != self.precision:
            raise ValueError(
                f'OpenVINO computes in {used.get_type_name()} on this CPU, '
                f'not in {self.precision}: the CPU lacks its instructions; '
                f'give the precision f32.')
        self.request = compiled.create_infer_request()

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
