# Copyright (c) OpenMMLab. All rights reserved.
import json
import logging
import os
import os.path as osp
from collections import Counter
from numbers import Real
from typing import Any, List, Optional, Sequence, Set

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS
from mmengine.logging import print_log


# What mmdet's CocoDataset reads of each image and annotation.
IMAGE_KEYS = ('id', 'file_name', 'width', 'height')
ANNOTATION_KEYS = ('id', 'image_id', 'category_id', 'bbox', 'area')
KEYS_NEEDED = (f'COCO images need {", ".join(IMAGE_KEYS)}, annotations need '
               f'{", ".join(ANNOTATION_KEYS)} and categories need id, name')

# How to fix the boxes of each skip reason, for a file where none is left.
FIXES = {
    'outside the image': 'a COCO bbox is [x, y, width, height] in pixels '
    'of its image (not [x1, y1, x2, y2], not normalised), and each image '
    'needs its true width and height',
    'narrower or shorter than 1 px': 'a COCO bbox is [x, y, width, height] '
    'in pixels (not normalised)',
    'area <= 0': "set each annotation's area (width * height for a box)",
    'category id not among the configured classes': 'metainfo classes must '
    'name the categories of the boxes',
    'image id not among the images': "each annotation's image_id must be "
    'the id of an image of the file',
}


def skip_reason(ann: dict, width: int, height: int,
                cat_ids: Sequence[int]) -> Optional[str]:
    """Why mmdet's ``CocoDataset`` leaves an annotation out, if it does.

    Makes the checks of ``CocoDataset.parse_data_info``, which skips an
    annotation if any of them fails; the size checks come first, so that a
    box of zero width is reported as such and not as outside its image.
    mmdet has no function that says why, so the checks are made here too;
    ``test_skip_reason_matches_mmdet`` holds them to the real ``CocoDataset``
    box by box.

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
    if w < 1 or h < 1:
        return 'narrower or shorter than 1 px'
    inter_w = max(0, min(x1 + w, width) - max(x1, 0))
    inter_h = max(0, min(y1 + h, height) - max(y1, 0))
    if inter_w * inter_h == 0:
        return 'outside the image'
    if ann['area'] <= 0:
        return 'area <= 0'
    if ann['category_id'] not in cat_ids:
        return 'category id not among the configured classes'
    return None


def is_local(path: str, backend_args: Optional[dict]) -> bool:
    """Whether ``path`` is read from the local file system."""
    return not backend_args and '://' not in path


def _file_names(folder: str) -> Set[str]:
    """Names of the files in ``folder``, as the folder lists them.

    Args:
        folder (str): The folder; '' is the working directory.

    Returns:
        set[str]: The names; empty if the folder cannot be listed.
    """
    try:
        with os.scandir(folder or '.') as entries:
            return {entry.name for entry in entries if entry.is_file()}
    except OSError:
        return set()


def missing_files(paths: Sequence[str]) -> List[str]:
    """The paths that are not files, in their order.

    Each folder is listed once rather than each path looked up: on a network
    file system that is one request per folder, not one per image. Paths a
    listing lacks are still looked up, since a listing spells names exactly
    and a file system may ignore case.

    Args:
        paths (Sequence[str]): Local paths.

    Returns:
        list[str]: The paths that are not files.
    """
    listed = {}
    unlisted = []
    for path in paths:
        folder, name = osp.split(path)
        if folder not in listed:
            listed[folder] = _file_names(folder)
        if name not in listed[folder]:
            unlisted.append(path)
    return [path for path in unlisted if not osp.isfile(path)]


@DATASETS.register_module()
class CheckedCocoDataset(CocoDataset):
    """mmdet's ``CocoDataset`` that checks its input and reports what it
    leaves out.

    ``CocoDataset`` silently skips boxes outside their image, boxes narrower
    or shorter than 1 px, boxes with a zero area, boxes of categories that
    are not configured and annotations of images the file does not list.
    Here they are still skipped (a box partly outside its image is kept and
    clipped by ``Resize``), but counted and logged in one warning per
    annotation file; a file where every box is skipped is an error. Images
    that ``filter_cfg`` leaves out are counted and logged too.

    Errors, each naming the file and the fix: a missing annotation file or
    image folder (with the expected layout and the ``--cfg-options`` that
    retarget the dataset), an annotation file that is empty, not JSON, not
    COCO, lacks a key that mmdet reads, or has no category for some
    configured class; images that are missing (checked when the dataset is
    built) or cannot be decoded (when they are loaded).
    """

    def load_data_list(self) -> List[dict]:
        """Check the files, load the annotations, report skipped boxes."""
        self.skipped = Counter()
        self.num_boxes = None  # annotations in the file
        self._num_parsed = 0  # annotations of the images in the file
        self._check_layout()
        try:
            data_list = super().load_data_list()
        except json.JSONDecodeError as e:
            raise ValueError(f'Annotation file {self.ann_file} is not valid '
                             f'COCO JSON ({e}).') from e
        except AssertionError as e:
            # pycocotools asserts that the file holds a JSON object.
            if 'annotation file format' not in str(e):
                raise
            raise ValueError(
                f'Annotation file {self.ann_file} is not COCO ({e}); a COCO '
                f'file is a JSON object with "images", "annotations" and '
                f'"categories".') from e
        except KeyError as e:
            # pycocotools indexes images, annotations and categories by
            # their ids before parse_data_info can check them.
            raise ValueError(
                f'Annotation file {self.ann_file}: an image, annotation or '
                f'category lacks the key {e}; {KEYS_NEEDED}.') from e
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
        # pycocotools indexes annotations by image; those of images the
        # file does not list never reach parse_data_info.
        orphans = self.num_boxes - self._num_parsed
        if orphans:
            self.skipped['image id not among the images'] += orphans
        self._report_skipped()
        self._check_images(data_list)
        return data_list

    def parse_data_info(self, raw_data_info: dict) -> dict:
        """Parse one image as ``CocoDataset`` does, counting skipped boxes.

        Raises:
            ValueError: The image or one of its annotations lacks a key
                that mmdet reads, or has a malformed bbox.
        """
        if self.num_boxes is None:
            self.num_boxes = len(self.coco.dataset.get('annotations', []))
        img = raw_data_info['raw_img_info']
        self._check_keys(img, IMAGE_KEYS, f'image {img.get("id")}')
        self._num_parsed += len(raw_data_info['raw_ann_info'])
        for ann in raw_data_info['raw_ann_info']:
            self._check_keys(ann, ANNOTATION_KEYS,
                             f'annotation {ann.get("id")}')
            bbox = ann['bbox']
            if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4
                    and all(isinstance(v, Real) for v in bbox)):
                raise ValueError(
                    f'Annotation file {self.ann_file}: annotation '
                    f'{ann["id"]} has bbox={bbox!r}; a COCO bbox is a list '
                    f'of 4 numbers [x, y, width, height] in pixels.')
            reason = skip_reason(ann, img['width'], img['height'],
                                 self.cat_ids)
            if reason is not None:
                self.skipped[reason] += 1
        return super().parse_data_info(raw_data_info)

    def filter_data(self) -> List[dict]:
        """Filter as ``CocoDataset`` does; log how many images it left out
        and why."""
        kept = super().filter_data()
        if len(kept) == len(self.data_list):
            return kept
        kept_ids = {id(info) for info in kept}
        min_size = self.filter_cfg.get('min_size', 0)
        reasons = Counter(
            f'smaller than min_size={min_size} px'
            if min(info['width'], info['height']) < min_size else
            'without boxes of the configured classes'
            for info in self.data_list if id(info) not in kept_ids)
        counts = ', '.join(f'{n} {reason}'
                           for reason, n in sorted(reasons.items()))
        if not kept:
            raise ValueError(
                f'{self.ann_file}: filter_cfg={dict(self.filter_cfg)} leaves '
                f'none of its {len(self.data_list)} images ({counts}); lower '
                f'filter_cfg.min_size or set filter_cfg.filter_empty_gt='
                f'False.')
        print_log(
            f'{self.ann_file}: filter_cfg={dict(self.filter_cfg)} left out '
            f'{len(self.data_list) - len(kept)} of {len(self.data_list)} '
            f'images ({counts}).', logger='current')
        return kept

    def prepare_data(self, idx: int) -> Any:
        """Run the pipeline on one image; name the image and the fix if it
        cannot be read.

        Raises:
            FileNotFoundError: The image does not exist.
            ValueError: The image cannot be decoded.
        """
        try:
            return super().prepare_data(idx)
        except (FileNotFoundError, AssertionError) as e:
            info = self.get_data_info(idx)
            path = info.get('img_path')
            where = (f'Image {path} (image id {info.get("img_id")} of '
                     f'{self.ann_file})')
            fix = 'or remove it from the annotation file'
            if isinstance(e, FileNotFoundError) and path and \
                    osp.abspath(str(e.filename)) == osp.abspath(path):
                raise FileNotFoundError(
                    f'{where} does not exist; put it there, point '
                    f'data_prefix.img at the folder that holds the images, '
                    f'{fix}.') from e
            if isinstance(e, AssertionError) and \
                    str(e).startswith('failed to load image'):
                raise ValueError(
                    f'{where} cannot be decoded: it is damaged or not an '
                    f'image; replace it {fix}.') from e
            raise

    def _check_keys(self, entry: dict, keys: Sequence[str],
                    name: str) -> None:
        missing = [k for k in keys if k not in entry]
        if missing:
            raise ValueError(
                f'Annotation file {self.ann_file}: {name} lacks '
                f'{", ".join(map(repr, missing))}; {KEYS_NEEDED}.')

    def _report_skipped(self) -> None:
        """Log the skipped boxes; raise if no box is left."""
        if not self.skipped:
            return
        total = sum(self.skipped.values())
        counts = ', '.join(f'{n} {reason}'
                           for reason, n in sorted(self.skipped.items()))
        if total == self.num_boxes:
            fixes = '; '.join(FIXES[r] for r in sorted(self.skipped)
                              if r in FIXES)
            raise ValueError(
                f'Annotation file {self.ann_file}: all {total} boxes are '
                f'skipped ({counts}), so nothing is left to learn or '
                f'evaluate; {fixes or "check the boxes"}.')
        print_log(f'{self.ann_file}: skipped {total} boxes ({counts}).',
                  logger='current', level=logging.WARNING)

    def _retarget_hint(self) -> str:
        """The ``--cfg-options`` that point this dataset elsewhere."""
        rel_ann = self.ann_file
        if self.data_root and rel_ann.startswith(self.data_root):
            rel_ann = osp.relpath(rel_ann, self.data_root)
        loaders = ('val_dataloader', 'test_dataloader') if self.test_mode \
            else ('train_dataloader', )
        options = [f'{loader}.dataset.data_root=DIR/' for loader in loaders]
        if self.test_mode:
            options += [f'{metric}.ann_file=DIR/{rel_ann}'
                        for metric in ('val_evaluator', 'test_evaluator')]
        return (f'--cfg-options {" ".join(options)} (plus '
                f'{loaders[0]}.dataset.ann_file=... and '
                f'{loaders[0]}.dataset.data_prefix.img=... if your file and '
                f'folder names differ; a top-level data_root=... does not '
                f'reach the dataloaders)')

    def _check_layout(self) -> None:
        """Raise if the annotation file or the image folder is missing."""
        img_dir = self.data_prefix.get('img', '') or self.data_root or '.'
        if not is_local(self.ann_file, self.backend_args):
            return
        if osp.isfile(self.ann_file):
            if not is_local(img_dir, self.backend_args) or \
                    osp.isdir(img_dir):
                return
            missing = f'Image folder {img_dir}'
        else:
            missing = f'Annotation file {self.ann_file}'
        where = '' if osp.isabs(self.ann_file) else \
            f' (relative to {os.getcwd()})'
        if self.data_root and not osp.isdir(self.data_root):
            where += f', nor does data_root={self.data_root}'
        raise FileNotFoundError(
            f'{missing} does not exist{where}: {type(self).__name__} reads '
            f'COCO data '
            f'laid out as {self.ann_file} (annotations) and '
            f'{osp.join(img_dir, "")} (images); put the data there, or '
            f'retarget the config with {self._retarget_hint()}.')

    def _check_images(self, data_list: List[dict]) -> None:
        """Raise if images listed in the annotation file are missing."""
        paths = [info['img_path'] for info in data_list]
        if not paths or not is_local(paths[0], self.backend_args):
            return
        missing = missing_files(paths)
        if missing:
            raise FileNotFoundError(
                f'{len(missing)} of the {len(paths)} images of '
                f'{self.ann_file} do not exist, e.g. '
                f'{", ".join(missing[:3])}; put them there, point '
                f'data_prefix.img at the folder that holds them, or remove '
                f'them from the annotation file.')
