# Copyright (c) OpenMMLab. All rights reserved.
"""Pre- and post-processing of an exported RT-DETR, in NumPy and OpenCV.

An ONNX file written by ``tools/deployment/export_onnx.py`` takes images
prepared as the configs' test pipeline and data preprocessor prepare them,
so that onnxruntime and the PyTorch backend detect the same boxes. To use
it from another language, do the following.

Pre-processing, per image:

1. Decode the file to 8-bit BGR, 3 channels: OpenCV's
   ``imdecode(bytes, IMREAD_COLOR)`` (what mmcv's ``LoadImageFromFile``
   calls; it applies the EXIF orientation and drops alpha). Keep the
   decoded width ``w0`` and height ``h0``.
2. Resize to the model's input size (``W``, ``H``: the last two dimensions
   of the ``images`` input, e.g. 640 x 640), ignoring the aspect ratio:
   OpenCV's ``resize(image, (W, H), interpolation=INTER_LINEAR)`` (mmcv's
   ``Resize(keep_ratio=False)``). Another bilinear resize gives slightly
   different pixels and so slightly different scores.
3. Swap BGR to RGB, convert to float32 and divide by 255 (nothing else:
   RT-DETR's mean is 0 and its std 255).
4. Transpose HWC to CHW and stack the images into ``images``, float32,
   shape (N, 3, H, W). ``orig_target_sizes`` is int64, shape (N, 2), one
   ``(w0, h0)`` row per image: width first, as the official RT-DETR export
   takes it.

The model computes, NMS-free (the post-processing is inside the graph):
sigmoid scores of every (query, class) pair, the top ``K`` of them per
image (``K`` is the config's ``test_cfg.max_per_img``), the class
``index % num_classes`` and the box of query ``index // num_classes``,
converted from normalised (cx, cy, w, h) to (x1, y1, x2, y2), clipped to
[0, 1] and multiplied by ``(w0, h0, w0, h0)``.

Outputs: ``labels`` int64 (N, K), ``boxes`` float32 (N, K, 4) in pixels
of the original images, ``scores`` float32 (N, K), each image's detections
sorted by descending score. Keep those above a threshold (the tools keep
``score > 0.3`` by default). Class names and the drawing palette are in the
file's metadata (``metadata_props``, key ``dataset_meta``, a JSON object
with ``classes`` and, when known, ``palette``).
"""
from typing import Sequence, Tuple

import cv2
import numpy as np


def read_image(path: str) -> np.ndarray:
    """Decode an image as the test pipeline's ``LoadImageFromFile`` does
    with its defaults (step 1 of the module docstring), which every config
    here uses.

    Args:
        path (str): Image path.

    Returns:
        np.ndarray: The BGR uint8 image, shape (H, W, 3).

    Raises:
        ValueError: The image is damaged or not an image.
    """
    with open(path, 'rb') as f:
        data = np.frombuffer(f.read(), np.uint8)
    # imdecode refuses an empty buffer with an assertion of its own.
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ValueError(
            f'Image {path} cannot be decoded: it is damaged or not an '
            f'image; replace it or move it out of the input.')
    return image


def preprocess(images: Sequence[np.ndarray],
               size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """Steps 2 to 4 of the module docstring: the model's two inputs.

    Args:
        images (Sequence[np.ndarray]): Decoded BGR uint8 images, each of
            shape (h0, w0, 3).
        size (tuple[int, int]): The model's input (H, W).

    Returns:
        tuple[np.ndarray, np.ndarray]: ``images``, float32 RGB in [0, 1] of
        shape (N, 3, H, W), and ``orig_target_sizes``, int64 (w0, h0) rows
        of shape (N, 2).
    """
    height, width = size
    batch = np.stack([
        cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        for image in images
    ])
    batch = batch[..., ::-1].astype(np.float32) / 255
    orig_sizes = np.array([image.shape[1::-1] for image in images],
                          dtype=np.int64)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2)), orig_sizes
