# Copyright (c) OpenMMLab. All rights reserved.
"""Static INT8 quantisation of an exported RT-DETR with onnxruntime.

The weights of every convolution and matrix product are stored as int8
(per output channel) and their inputs are quantised to uint8 with scales
calibrated on real images: onnxruntime's static quantisation, QDQ format
(standard ``QuantizeLinear``/``DequantizeLinear`` pairs, which onnxruntime
fuses into integer kernels when it loads the file). Norms, activations,
the deformable sampling and the post-processing stay float32.

Dynamic quantisation (scales computed on every call, no calibration) is
not offered: onnxruntime has no dynamic integer convolution, so it
quantises only the matrix products and adds a quantisation of their
inputs on every call; on the CPUs measured here it was slower than
float32.
"""
import os.path as osp
import tempfile
from typing import Dict, Iterator, Optional, Sequence, Tuple

import numpy as np
import onnx
import onnxruntime as ort
import onnxscript.optimizer
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat,
                                      QuantType, quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

from .exported_detector import INPUT_NAMES
from .onnxruntime_detector import ONNXRuntimeDetector
from .preprocess import preprocess

QUANTIZED_OPS = ('Conv', 'Gemm', 'MatMul')


class ImageCalibration(CalibrationDataReader):
    """Feeds decoded images to the calibration, one per call, prepared as
    the exported file takes them (:func:`preprocess`).

    Args:
        images (Sequence[np.ndarray]): Decoded BGR uint8 images.
        size (tuple[int, int]): The file's input (H, W).
    """

    def __init__(self, images: Sequence[np.ndarray],
                 size: Tuple[int, int]) -> None:
        self.images = images
        self.size = size
        self._next: Optional[Iterator[np.ndarray]] = None
        self.rewind()

    def rewind(self) -> None:
        """Start from the first image again."""
        self._next = iter(self.images)

    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        image = next(self._next, None)
        if image is None:
            return None
        return dict(zip(INPUT_NAMES, preprocess([image], self.size)))


def quantize_int8(model: str, out: str,
                  calibration_images: Sequence[np.ndarray]) -> str:
    """Write a static INT8 quantisation of an exported detector.

    Args:
        model (str): ONNX file written by
            ``tools/deployment/export_onnx.py`` (float32).
        out (str): Path of the quantised file. It keeps the interface and
            the metadata (class names) of ``model``.
        calibration_images (Sequence[np.ndarray]): Decoded BGR uint8
            images like those the detector will see (e.g. a few dozen
            training images). The input range of each quantised operator
            is the min-max over them.

    Returns:
        str: ``out``.

    Raises:
        FileNotFoundError: ``model`` does not exist.
        ValueError: ``model`` is not such a file, or no calibration image
            is given.
    """
    detector = ONNXRuntimeDetector(model)
    if not calibration_images:
        raise ValueError('INT8 calibration needs images like those the '
                         'detector will see; none were given.')
    # The export reshapes, transposes and splits some weights and biases in
    # the graph; only operators with constant ones become integer kernels.
    # onnxscript folds the splits, which onnxruntime's folding keeps.
    graph = onnx.load(model)
    onnxscript.optimizer.fold_constants(graph)
    with tempfile.TemporaryDirectory() as folder:
        folded = osp.join(folder, 'folded.onnx')
        prepared = osp.join(folder, 'prepared.onnx')
        onnx.save(graph, folded)
        # Shape inference and onnxruntime's own folding and fusions.
        quant_pre_process(folded, prepared, skip_symbolic_shape=True)
        quantize_static(
            prepared, out,
            ImageCalibration(calibration_images, detector.input_size),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZED_OPS),
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8)
    return out


def float_kernels(model: str) -> Dict[str, str]:
    """Operators that onnxruntime runs in float32 on dequantised weights.

    onnxruntime turns a quantised operator (its inputs from
    ``DequantizeLinear``) into an integer kernel when it loads the file,
    unless something in the graph prevents it (e.g. a Gemm whose bias is
    not a constant); then it dequantises and runs the float kernel, slower
    than the float32 file would.

    Args:
        model (str): An ONNX file.

    Returns:
        dict[str, str]: Node name to operator type, in the graph as
        onnxruntime optimised it on the CPU; empty when every quantised
        operator runs as an integer kernel.
    """
    with tempfile.TemporaryDirectory() as folder:
        options = ort.SessionOptions()
        options.optimized_model_filepath = osp.join(folder, 'loaded.onnx')
        # Its note that the saved graph is specific to this CPU.
        options.log_severity_level = 3
        ort.InferenceSession(model, options,
                             providers=['CPUExecutionProvider'])
        graph = onnx.load(options.optimized_model_filepath).graph
    dequantized = {o for n in graph.node if n.op_type == 'DequantizeLinear'
                   for o in n.output}
    return {n.name: n.op_type for n in graph.node
            if n.op_type in QUANTIZED_OPS and dequantized & set(n.input)}
