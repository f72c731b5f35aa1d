# Copyright (c) OpenMMLab. All rights reserved.
"""Running an exported RT-DETR with onnxruntime.

The interface of the file (input and output names, the metadata key) is
the official RT-DETR export's, plus the class names; see
:mod:`mmriformer.deployment.preprocess` for what goes in and comes out.
"""
import json
import os.path as osp
from typing import Dict, Sequence, Tuple

import numpy as np
import onnxruntime as ort

from .preprocess import preprocess

INPUT_NAMES = ('images', 'orig_target_sizes')
OUTPUT_NAMES = ('labels', 'boxes', 'scores')
# metadata_props key of the JSON dataset meta (``classes``, ``palette``).
DATASET_META_KEY = 'dataset_meta'


class ONNXRuntimeDetector:
    """An exported detector in an onnxruntime session.

    Args:
        path (str): The ``.onnx`` file written by
            ``tools/deployment/export_onnx.py``.
        providers (Sequence[str]): onnxruntime execution providers, in
            order of preference. Defaults to ``('CPUExecutionProvider',)``.

    Attributes:
        path (str): The file.
        input_size (tuple[int, int]): The (H, W) the images are resized to.
        batch_size (int | None): The batch size the file takes; None if it
            takes any (exported with ``--dynamic-batch``).
        dataset_meta (dict): ``classes`` (tuple of names) and, if the
            export knew it, ``palette`` (list of RGB tuples).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not such an ONNX file.
    """

    def __init__(self,
                 path: str,
                 providers: Sequence[str] = ('CPUExecutionProvider', )
                 ) -> None:
        if not osp.isfile(path):
            raise FileNotFoundError(f'ONNX model {path} does not exist')
        not_ours = (f'{path} is not an ONNX detector written by '
                    f'tools/deployment/export_onnx.py')
        self.path = path
        try:
            self.session = ort.InferenceSession(path,
                                                providers=list(providers))
        except Exception as error:  # onnxruntime's own exception types
            raise ValueError(f'{not_ours}: onnxruntime cannot load it '
                             f'({error})') from error
        inputs = self.session.get_inputs()
        names = tuple(i.name for i in inputs), tuple(
            o.name for o in self.session.get_outputs())
        meta = self.session.get_modelmeta().custom_metadata_map
        if names != (INPUT_NAMES, OUTPUT_NAMES) or \
                DATASET_META_KEY not in meta:
            raise ValueError(
                f'{not_ours}: it takes {names[0]} and gives {names[1]} '
                f'(expected {INPUT_NAMES} and {OUTPUT_NAMES}, and the class '
                f'names under the metadata key {DATASET_META_KEY!r})')
        shape = inputs[0].shape
        self.input_size = tuple(shape[2:])
        # onnxruntime names a dynamic dimension instead of sizing it.
        self.batch_size = shape[0] if isinstance(shape[0], int) else None
        dataset_meta = json.loads(meta[DATASET_META_KEY])
        dataset_meta['classes'] = tuple(dataset_meta['classes'])
        if 'palette' in dataset_meta:
            # JSON turned the RGB tuples into lists, which the visualiser
            # would not take for colours.
            dataset_meta['palette'] = [
                tuple(colour) for colour in dataset_meta['palette']
            ]
        self.dataset_meta = dataset_meta

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
            ValueError: onnxruntime failed, e.g. on inputs of other shapes.
        """
        try:
            outputs = self.session.run(
                list(OUTPUT_NAMES),
                dict(zip(INPUT_NAMES, (images, orig_target_sizes))))
        except Exception as error:  # onnxruntime's own exception types
            raise ValueError(f'onnxruntime cannot run {self.path} on images '
                             f'of shape {images.shape}: {error}') from error
        return dict(zip(OUTPUT_NAMES, outputs))

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
