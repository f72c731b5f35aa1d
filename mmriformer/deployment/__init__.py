# Copyright (c) OpenMMLab. All rights reserved.
"""ONNX export of the deploy forms, its onnxruntime and OpenVINO backends,
INT8 quantisation of an export and its evaluation."""
from .detections import compare_detections
from .evaluation import evaluate_onnx
from .exported_detector import ExportedDetector
from .onnx_export import (DeployedDetector, config_input_size, export_onnx,
                          foreign_domains, load_detector, verify_detector,
                          verify_onnx)
from .onnxruntime_detector import ONNXRuntimeDetector
from .openvino_detector import OpenVINODetector, export_openvino
from .preprocess import preprocess, read_image
from .quantize import float_kernels, quantize_int8

__all__ = [
    'DeployedDetector', 'config_input_size', 'export_onnx',
    'foreign_domains', 'load_detector', 'verify_detector', 'verify_onnx',
    'ExportedDetector', 'ONNXRuntimeDetector', 'OpenVINODetector',
    'export_openvino', 'preprocess', 'read_image', 'evaluate_onnx',
    'quantize_int8', 'float_kernels', 'compare_detections'
]
