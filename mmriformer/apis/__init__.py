# Copyright (c) OpenMMLab. All rights reserved.
from .inference import (StrictDetInferencer, infer, infer_exported,
                        infer_onnxruntime)
from .model_io import (WeightsMismatchError, build_model, drop_pretrained,
                       load_config, load_strict, read_checkpoint)
from .reparameterize import reparameterize

__all__ = [
    'StrictDetInferencer', 'WeightsMismatchError', 'build_model',
    'drop_pretrained', 'infer', 'infer_exported', 'infer_onnxruntime',
    'load_config', 'load_strict', 'read_checkpoint', 'reparameterize'
]
