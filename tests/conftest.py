# Copyright (c) OpenMMLab. All rights reserved.
import pytest
from mmengine.registry import DefaultScope

import mmriformer  # noqa: F401  (registers our modules)


@pytest.fixture(autouse=True)
def mmdet_scope():
    """Build modules in mmdet's scope, as mmdet configs do."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield
