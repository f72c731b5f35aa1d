# Copyright (c) OpenMMLab. All rights reserved.
"""The images a command-line tool is given."""
import os
import os.path as osp
from typing import List

from mmdet.apis.det_inferencer import IMG_EXTENSIONS


def find_images(path: str) -> List[str]:
    """The image at ``path``, or the images directly inside a folder.

    Args:
        path (str): An image file or a folder.

    Returns:
        list[str]: Image paths, sorted.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not an image, or a folder without images.
    """
    if osp.isdir(path):
        images = sorted(
            osp.join(path, name) for name in os.listdir(path)
            if name.lower().endswith(IMG_EXTENSIONS)
            and osp.isfile(osp.join(path, name)))
        if not images:
            raise ValueError(f'No images ({", ".join(IMG_EXTENSIONS)}) in '
                             f'the folder {path}')
        return images
    if not osp.exists(path):
        raise FileNotFoundError(f'Image or folder {path} does not exist')
    if not path.lower().endswith(IMG_EXTENSIONS):
        raise ValueError(f'{path} is not an image '
                         f'({", ".join(IMG_EXTENSIONS)})')
    return [path]
