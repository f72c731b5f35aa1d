# Copyright (c) OpenMMLab. All rights reserved.
from .compat import check_environment, transformers_problem

__all__ = ['check_environment', 'transformers_problem']
