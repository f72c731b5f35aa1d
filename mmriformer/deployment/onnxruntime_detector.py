# Copyright (c) OpenMMLab. All rights reserved.
"""Running an exported RT-DETR with onnxruntime.

The interface of the file: :mod:`mmriformer.deployment.exported_detector`.
"""
import os.path as osp
from typing import Dict, Sequence

import numpy as np
import onnxruntime as ort

from .exported_detector import (DATASET_META_KEY, INPUT_NAMES, OUTPUT_NAMES,
                                ExportedDetector, parse_dataset_meta)


class ONNXRuntimeDetector(ExportedDetector):
    """An exported detector in an onnxruntime session, with the attributes
    of :class:`ExportedDetector`.

    Args:
        path (str): The ``.onnx`` file written by
            ``tools/deployment/export_onnx.py``.
        providers (Sequence[str]): onnxruntime execution providers, in
            order of preference. Defaults to ``('CPUExecutionProvider',)``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not such an ONNX file.
    """

    backend = 'onnxruntime'

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
        self.dataset_meta = parse_dataset_meta(meta[DATASET_META_KEY])

    def __call__(self, images: np.ndarray,
                 orig_target_sizes: np.ndarray) -> Dict[str, np.ndarray]:
        """See :meth:`ExportedDetector.__call__`."""
        try:
            outputs = self.session.run(
                list(OUTPUT_NAMES),
                dict(zip(INPUT_NAMES, (images, orig_target_sizes))))
        except Exception as error:  # onnxruntime's own exception types
            raise ValueError(f'onnxruntime cannot run {self.path} on images '
                             f'of shape {images.shape}: {error}') from error
        return dict(zip(OUTPUT_NAMES, outputs))
