# Copyright (c) OpenMMLab. All rights reserved.
"""RIFormer backbones and RT-DETR detectors for MMDetection.

Importing the package registers every module in mmdet's registries.
"""
from .utils.compat import check_environment

check_environment()

from . import datasets  # noqa: E402,F401
from . import engine  # noqa: E402,F401
from . import models  # noqa: E402
from .utils import checkpoint  # noqa: E402,F401
from .version import __version__  # noqa: E402

__all__ = ['__version__', 'models']
