# Copyright (c) OpenMMLab. All rights reserved.
"""What ``tools/analysis_tools/`` measures: the speed of a detector's
backends (:mod:`.benchmark`), its parameters and MACs (:mod:`.complexity`)
and the MACs per second the CPU allows (:mod:`.ceiling`)."""
from .benchmark import (BACKENDS, DTYPES, ONNX_BACKENDS, OPENVINO_BACKENDS,
                        ROW_KEYS, BackendMismatch, backend_missing,
                        benchmark_config, build_forms, check_backends_agree,
                        check_benchmark_paths, check_device, format_table,
                        load_peer_rows, onnxruntime_missing, openvino_missing,
                        resolve_backends, torch_runner)
from .ceiling import conv_stack, format_ceiling, openvino_ceiling
from .complexity import (PAPER, PAPER_SIZE, PARTS, analyze, build_detector,
                         check_complexity_paths, count_macs, count_params,
                         deploy_copy, format_result, paper_figures, sdpa_macs)

__all__ = [
    'BACKENDS', 'DTYPES', 'ONNX_BACKENDS', 'OPENVINO_BACKENDS', 'ROW_KEYS',
    'BackendMismatch', 'backend_missing', 'benchmark_config', 'build_forms',
    'check_backends_agree', 'check_benchmark_paths', 'check_device',
    'format_table', 'load_peer_rows', 'onnxruntime_missing',
    'openvino_missing', 'resolve_backends', 'torch_runner', 'PAPER',
    'PAPER_SIZE', 'PARTS', 'analyze', 'build_detector',
    'check_complexity_paths', 'count_macs', 'count_params', 'deploy_copy',
    'format_result', 'paper_figures', 'sdpa_macs', 'conv_stack',
    'format_ceiling', 'openvino_ceiling'
]
