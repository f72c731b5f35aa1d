# Copyright (c) OpenMMLab. All rights reserved.
"""ONNX export of the deploy forms and an onnxruntime backend."""
from .onnx_export import (DeployedDetector, config_input_size, export_onnx,
                          foreign_domains, load_detector, verify_onnx)
from .onnxruntime_detector import ONNXRuntimeDetector
from .preprocess import preprocess, read_image

__all__ = [
    'DeployedDetector', 'config_input_size', 'export_onnx',
    'foreign_domains', 'load_detector', 'verify_onnx',
    'ONNXRuntimeDetector', 'preprocess', 'read_image'
]
