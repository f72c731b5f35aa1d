# Copyright (c) OpenMMLab. All rights reserved.
"""What the runtimes of an exported RT-DETR share.

The interface of the file (input and output names, the metadata key) is
the official RT-DETR export's, plus the class names; see
:mod:`mmriformer.deployment.preprocess` for what goes in and comes out.
onnxruntime (:class:`~mmriformer.deployment.ONNXRuntimeDetector`) runs the
ONNX file, OpenVINO (:class:`~mmriformer.deployment.OpenVINODetector`) the
IR converted from it; both detect through :meth:`ExportedDetector.detect`.
"""
import json
from abc import ABC, abstractmethod
from typing import Dict, Optional, Tuple

import numpy as np

from .preprocess import preprocess

INPUT_NAMES = ('images', 'orig_target_sizes')
OUTPUT_NAMES = ('labels', 'boxes', 'scores')
# Metadata key (ONNX metadata_props, OpenVINO rt_info) of the JSON dataset
# meta (``classes``, ``palette``).
DATASET_META_KEY = 'dataset_meta'


def parse_dataset_meta(text: str) -> dict:
    """The dataset meta stored as JSON in an exported file.

    Args:
        text (str): The JSON object, with ``classes`` and optionally
            ``palette``.

    Returns:
        dict: ``classes`` as a tuple of names and ``palette``, if given,
        as a list of RGB tuples.
    """
    dataset_meta = json.loads(text)
    dataset_meta['classes'] = tuple(dataset_meta['classes'])
    if 'palette' in dataset_meta:
        # JSON turned the RGB tuples into lists, which the visualiser would
        # not take for colours.
        dataset_meta['palette'] = [
            tuple(colour) for colour in dataset_meta['palette']
        ]
    return dataset_meta


class ExportedDetector(ABC):
    """An exported detector run by some runtime.

    Subclasses load the file, set the attributes below and run a batch in
    :meth:`__call__`.

    Attributes:
        backend (str): The runtime's name, for messages.
        path (str): The file.
        input_size (tuple[int, int]): The (H, W) the images are resized to.
        batch_size (int | None): The batch size the file takes; None if it
            takes any (exported with ``--dynamic-batch``).
        dataset_meta (dict): ``classes`` (tuple of names) and, if the
            export knew it, ``palette`` (list of RGB tuples).
    """

    backend: str
    path: str
    input_size: Tuple[int, int]
    batch_size: Optional[int]
    dataset_meta: dict

    @abstractmethod
    def __call__(self, images: np.ndarray,
                 orig_target_sizes: np.ndarray) -> Dict[str, np.ndarray]:
        """Detect objects in a batch of preprocessed images.

        Args:
            images (np.ndarray): Float32 RGB in [0, 1], (N, 3, H, W); a
                file exported without ``--dynamic-batch`` takes N = 1 only.
            orig_target_sizes (np.ndarray): Int64 (width, height) of the
                original images, (N, 2).

        Returns:
            dict[str, np.ndarray]: ``labels`` (N, K) int64, ``boxes``
            (N, K, 4) float32 xyxy in original pixels and ``scores`` (N, K)
            float32, by descending score.

        Raises:
            ValueError: The runtime failed, e.g. on inputs of other shapes.
        """

    def detect(self, image: np.ndarray) -> Dict[str, np.ndarray]:
        """Detect objects in one decoded image, pre-processed as
        :func:`~mmriformer.deployment.preprocess` documents.

        Args:
            image (np.ndarray): BGR uint8 image, (h0, w0, 3).

        Returns:
            dict[str, np.ndarray]: With mmdet's names: ``bboxes`` (K, 4)
            xyxy in the image's pixels, ``scores`` (K, ) by descending
            score and ``labels`` (K, ).
        """
        outputs = self(*preprocess([image], self.input_size))
        return dict(bboxes=outputs['boxes'][0],
                    scores=outputs['scores'][0],
                    labels=outputs['labels'][0])

    @property
    def classes(self) -> Tuple[str, ...]:
        """tuple[str]: The class names, indexed by label."""
        return self.dataset_meta['classes']
