# Copyright (c) OpenMMLab. All rights reserved.
from .model_io import (WeightsMismatchError, build_model, drop_pretrained,
                       load_config, load_strict, read_checkpoint)
from .reparameterize import reparameterize

__all__ = [
    'WeightsMismatchError', 'build_model', 'drop_pretrained', 'load_config',
    'load_strict', 'read_checkpoint', 'reparameterize'
]
