# Copyright (c) OpenMMLab. All rights reserved.
import json
from collections import Counter
from typing import List, Optional, Sequence

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS
from mmengine.logging import print_log


def skip_reason(ann: dict, width: int, height: int,
                cat_ids: Sequence[int]) -> Optional[str]:
    """Why mmdet's ``CocoDataset`` leaves an annotation out, if it does.

    Mirrors the checks of ``CocoDataset.parse_data_info``, in its order.

    Args:
        ann (dict): A COCO annotation.
        width (int): Width of its image.
        height (int): Height of its image.
        cat_ids (Sequence[int]): Category ids of the configured classes.

    Returns:
        str | None: The reason, or None for a kept annotation.
    """
    if ann.get('ignore', False):
        return 'marked ignore'
    x1, y1, w, h = ann['bbox']
    inter_w = max(0, min(x1 + w, width) - max(x1, 0))
    inter_h = max(0, min(y1 + h, height) - max(y1, 0))
    if inter_w * inter_h == 0:
        return 'outside the image'
    if ann['area'] <= 0 or w < 1 or h < 1:
        return 'narrower or shorter than 1 px'
    if ann['category_id'] not in cat_ids:
        return 'category id not among the configured classes'
    return None


@DATASETS.register_module()
class CheckedCocoDataset(CocoDataset):
    """mmdet's ``CocoDataset`` that reports what it leaves out.

    ``CocoDataset`` silently skips boxes outside their image, boxes narrower
    or shorter than 1 px and boxes of categories that are not configured.
    Here they are still skipped (a box partly outside its image is kept and
    clipped by ``Resize``), but counted and logged in one warning per
    annotation file. An annotation file that is empty, not JSON, or has no
    category for some configured class is an error.
    """

    def load_data_list(self) -> List[dict]:
        """Load the annotations, then report skipped boxes."""
        self.skipped = Counter()
        try:
            data_list = super().load_data_list()
        except json.JSONDecodeError as e:
            raise ValueError(f'Annotation file {self.ann_file} is not valid '
                             f'COCO JSON ({e}).') from e
        classes = self.metainfo['classes']
        if len(self.cat_ids) != len(classes):
            raise ValueError(
                f'Annotation file {self.ann_file} has categories for only '
                f'{len(self.cat_ids)} of the {len(classes)} configured '
                f'classes {tuple(classes)}; metainfo classes must be '
                f'category names of the file.')
        if not data_list:
            raise ValueError(
                f'Annotation file {self.ann_file} has no images; point '
                f'ann_file at a COCO file with images and annotations.')
        if self.skipped:
            counts = ', '.join(f'{n} {reason}'
                               for reason, n in sorted(self.skipped.items()))
            print_log(f'{self.ann_file}: skipped {sum(self.skipped.values())}'
                      f' boxes ({counts}).', logger='current',
                      level=30)  # WARNING
        return data_list

    def parse_data_info(self, raw_data_info: dict) -> dict:
        """Parse one image as ``CocoDataset`` does, counting skipped boxes."""
        img = raw_data_info['raw_img_info']
        for ann in raw_data_info['raw_ann_info']:
            reason = skip_reason(ann, img['width'], img['height'],
                                 self.cat_ids)
            if reason is not None:
                self.skipped[reason] += 1
        return super().parse_data_info(raw_data_info)
