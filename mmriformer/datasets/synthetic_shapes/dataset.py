# Copyright (c) OpenMMLab. All rights reserved.
"""The dataset of synthetic shapes that the demo configs train on."""
import os.path as osp
from dataclasses import fields
from typing import List, Tuple

import cv2
import numpy as np
from mmdet.registry import DATASETS

from ..coco import CheckedCocoDataset
from .generation import make_split
from .settings import DEFAULT_CLASSES, ShapesSettings

# Dataset arguments that set the drawing; the classes come from metainfo.
_SETTING_KEYS = tuple(
    field.name for field in fields(ShapesSettings) if field.name != 'classes')


@DATASETS.register_module()
class SyntheticShapesDataset(CheckedCocoDataset):
    """COCO-style dataset of synthetic shapes, generated on first use.

    The split is read from ``ann_file``, which must be
    ``annotations/<split>.json`` under ``data_root``, with
    ``data_prefix=dict(img='<split>/')``. The class names in
    ``metainfo['classes']`` pick the shapes that are drawn.

    Args:
        synthesize (bool): Generate the split when it is missing or stale.
            False reads an existing COCO split as it is, which is how the
            demo config trains on other data by ``--cfg-options`` alone.
            Defaults to True.
        **kwargs: The fields of :class:`ShapesSettings` except ``classes``
            (``num_images``, ``image_size``, ``seed``, ``empty_ratio``,
            ``min_objects``, ``max_objects``, ``min_size``, ``max_size``),
            with its defaults; the other arguments go to
            :class:`CheckedCocoDataset`.
    """

    METAINFO = {
        'classes':
        DEFAULT_CLASSES,
        # One colour per supported shape, then enough for other data read
        # with synthesize=False (mmdet's visualiser needs one per class).
        'palette': [(220, 20, 60), (0, 130, 200), (60, 180, 75),
                    (255, 200, 0), (145, 30, 180), (245, 130, 48),
                    (70, 240, 240), (128, 128, 0)] + [
                        tuple(int(c) for c in cv2.cvtColor(
                            np.uint8([[[hue, 200, 230]]]),
                            cv2.COLOR_HSV2RGB)[0, 0])
                        for hue in range(0, 180, 2)
                    ]
    }

    def __init__(self, *args, synthesize: bool = True, **kwargs) -> None:
        self.synthesize = synthesize
        # Kept as given and checked only when drawing, so that a split read
        # with synthesize=False ignores them.
        self.shape_settings = {
            key: kwargs.pop(key)
            for key in _SETTING_KEYS if key in kwargs
        }
        super().__init__(*args, **kwargs)

    def _split_location(self) -> Tuple[str, str]:
        """Dataset root and split name, from ``ann_file`` and
        ``data_prefix``."""
        ann_dir, ann_name = osp.split(osp.abspath(self.ann_file))
        split, ext = osp.splitext(ann_name)
        root = osp.dirname(ann_dir)
        img_dir = self.data_prefix.get('img')
        if (osp.basename(ann_dir) != 'annotations' or ext != '.json'
                or img_dir is None
                or osp.abspath(img_dir) != osp.join(root, split)):
            raise ValueError(
                'SyntheticShapesDataset needs ann_file="annotations/'
                '<split>.json" and data_prefix=dict(img="<split>/") under '
                f'data_root; got ann_file="{self.ann_file}", '
                f'data_prefix={self.data_prefix}')
        return root, split

    def load_data_list(self) -> List[dict]:
        """Generate the split if needed, then load it as COCO.

        Returns:
            list[dict]: Annotations of the images.
        """
        if self.synthesize:
            root, split = self._split_location()
            settings = ShapesSettings(
                classes=tuple(self.metainfo['classes']),
                **self.shape_settings)
            make_split(root, split, settings)
        return super().load_data_list()
