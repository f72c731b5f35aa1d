# Copyright (c) OpenMMLab. All rights reserved.
"""Weights of other implementations in our models' layouts."""
