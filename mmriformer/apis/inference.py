# Copyright (c) OpenMMLab. All rights reserved.
"""Detect objects in images, draw the detections and list them in JSON.

Used by ``tools/infer.py``. Three backends run the detector: :func:`infer`
runs mmdet's ``DetInferencer`` on the config's test pipeline, from a config
and a checkpoint; :func:`infer_exported` runs an exported file alone (no
config, no checkpoint, no mmdet model) in its runtime: onnxruntime (a file
of ``tools/deployment/export_onnx.py``, :func:`infer_onnxruntime`) or
OpenVINO (an IR of ``tools/deployment/export_openvino.py``), with the
pre-processing of :mod:`mmriformer.deployment.preprocess`; its class names
come from the file. All write one image per input with the boxes, class
names and scores drawn by ``DetLocalVisualizer`` into ``OUT_DIR/vis/`` and
the detections above the score threshold into
``OUT_DIR/predictions.json``::

    [{"image": "demo/a.jpg",
      "detections": [{"bbox": [x1, y1, x2, y2], "score": 0.91,
                      "label": 0, "class": "person"}, ...]}, ...]

Boxes are in pixels of the original image. With PyTorch, class names come
from the checkpoint's ``meta.dataset_meta`` (as the Runner saves it), and
the weights load strictly (:func:`~mmriformer.apis.load_strict`).

The outputs are checked before the work
(:func:`~mmriformer.utils.cli_checks.check_output_folder`): files of
``OUT_DIR`` are replaced only with ``force``, other files are left alone,
and an input image is never written over. Each image is decoded once, and
nothing is written until every image has been decoded and detected, so a
damaged image leaves ``OUT_DIR`` as it was.
"""
import json
import os
import os.path as osp
import shutil
import tempfile
from typing import Callable, List, Optional

import mmcv
import numpy as np
import torch
from mmdet.apis import DetInferencer
from mmdet.structures import DetDataSample
from mmdet.visualization import DetLocalVisualizer
from mmengine.config import Config
from mmengine.structures import InstanceData
from torch import nn

from ..deployment.exported_detector import ExportedDetector
from ..deployment.onnxruntime_detector import ONNXRuntimeDetector
from ..deployment.preprocess import read_image
from ..models import switch_to_deploy
from ..utils.cli_checks import check_output_folder
from ..utils.image_files import find_images
from .model_io import load_config, load_strict


class StrictDetInferencer(DetInferencer):
    """:class:`DetInferencer` that loads the weights strictly.

    mmengine loads non-strictly and only logs what does not fit, which
    leaves layers at their initial values; here the load fails instead,
    naming the config and the checkpoint and how to make them agree.

    Args:
        model (Config): The config.
        weights (str): Path of the checkpoint.
        **kwargs: Other arguments of :class:`DetInferencer`.
    """

    def __init__(self, model: Config, weights: str, **kwargs) -> None:
        self.checkpoint_path = weights
        super().__init__(model, weights, **kwargs)

    def _load_weights_to_model(self, model: nn.Module,
                               checkpoint: Optional[dict],
                               cfg: Optional[Config]) -> None:
        """Load ``checkpoint`` strictly, then its class names and the
        palette as DetInferencer does.

        Raises:
            WeightsMismatchError: The weights do not fit ``model``.
        """
        if checkpoint is not None:
            load_strict(model, self.checkpoint_path, cfg, checkpoint)
            # DetInferencer reads the class names and the palette after a
            # non-strict load of the weights: given the weights the model
            # already holds, that load changes nothing.
            checkpoint = dict(checkpoint, state_dict=model.state_dict())
        super()._load_weights_to_model(model, checkpoint, cfg)


def check_outputs(images: List[str], out_dir: str, force: bool) -> None:
    """Check, before the work, that the results may be written into
    ``out_dir``.

    The run writes ``out_dir/predictions.json`` and ``out_dir/vis/<image
    name>`` for each image.

    Args:
        images (list[str]): The input images.
        out_dir (str): The output folder.
        force (bool): Whether existing files may be replaced; an input
            image never is.

    Raises:
        ValueError: An output is an input image, or see
            :func:`~mmriformer.utils.cli_checks.check_output_folder`.
    """
    names = ['predictions.json'] + [
        osp.join('vis', osp.basename(image)) for image in images]
    inputs = [osp.realpath(image) for image in images]
    for name in names:
        path = osp.join(out_dir, name)
        if osp.exists(path) and osp.realpath(path) in inputs:
            raise ValueError(
                f'The output {path} would write over the input image of the '
                f'same path; give an --out-dir outside the input folder.')
    check_output_folder(out_dir, names, force)


def to_detections(instances: InstanceData, classes: tuple,
                  score_thr: float) -> List[dict]:
    """The detections scoring above ``score_thr``, as JSON-ready dicts.

    The threshold is strict (``score > score_thr``), as the visualiser's.
    """
    keep = instances[instances.scores > score_thr]
    rows = zip(keep.bboxes.tolist(), keep.scores.tolist(),
               keep.labels.tolist())
    return [{
        'bbox': bbox,
        'score': score,
        'label': label,
        'class': classes[label]
    } for bbox, score, label in rows]


def detect_and_write(images: List[str],
                     detect: Callable[[np.ndarray], DetDataSample],
                     visualizer: DetLocalVisualizer, out_dir: str,
                     score_thr: float) -> List[dict]:
    """Detect objects in each image, then draw and save the detections.

    Args:
        images (list[str]): Image paths, checked by :func:`check_outputs`.
        detect (Callable): Maps a decoded BGR image to a sample with
            ``pred_instances`` (``bboxes`` in original pixels, ``scores``,
            ``labels``).
        visualizer (DetLocalVisualizer): Draws; its ``dataset_meta`` gives
            the class names.
        out_dir (str): Gets ``vis/`` and ``predictions.json``.
        score_thr (float): Keep and draw detections scoring above this.

    Returns:
        list[dict]: What ``predictions.json`` holds.
    """
    classes = visualizer.dataset_meta['classes']
    predictions = []
    # The drawings wait in a temporary folder until every image has been
    # decoded and detected, so that an image that fails leaves out_dir as
    # it was.
    with tempfile.TemporaryDirectory() as staging:
        for image in images:
            array = read_image(image)
            sample = detect(array)
            predictions.append(
                dict(image=image,
                     detections=to_detections(sample.pred_instances,
                                              classes, score_thr)))
            # What DetInferencer draws for an image given by its path.
            visualizer.add_datasample(
                osp.basename(image), mmcv.bgr2rgb(array), sample,
                draw_gt=False, pred_score_thr=score_thr,
                out_file=osp.join(staging, osp.basename(image)))
        os.makedirs(osp.join(out_dir, 'vis'), exist_ok=True)
        for image in images:
            name = osp.basename(image)
            shutil.move(osp.join(staging, name),
                        osp.join(out_dir, 'vis', name))
    with open(osp.join(out_dir, 'predictions.json'), 'w') as f:
        json.dump(predictions, f, indent=2)
    return predictions


def infer(config: str,
          checkpoint: str,
          inputs: str,
          out_dir: str,
          score_thr: float = 0.3,
          device: str = 'cpu',
          deploy: bool = False,
          cfg_options: Optional[dict] = None,
          force: bool = False) -> List[dict]:
    """Detect objects in images with PyTorch, draw and save them.

    Args:
        config (str): Config of the model.
        checkpoint (str): Checkpoint of the model.
        inputs (str): An image or a folder of images.
        out_dir (str): Gets ``vis/`` (drawn images) and
            ``predictions.json``.
        score_thr (float): Keep and draw detections scoring above this.
            Defaults to 0.3.
        device (str): Device to run on. Defaults to 'cpu'.
        deploy (bool): Fold the model into its deploy form after loading.
            Defaults to False.
        cfg_options (dict, optional): Overrides merged into the config.
        force (bool): Replace the files of ``out_dir`` this run writes.
            Defaults to False.

    Returns:
        list[dict]: What ``predictions.json`` holds.

    Raises:
        FileNotFoundError: The config, the checkpoint or the inputs do not
            exist.
        ValueError: An output may not be written (see
            :func:`check_outputs`), an image cannot be decoded, or the
            checkpoint does not fit the config's model.
    """
    cfg = load_config(config, cfg_options)
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'Checkpoint {checkpoint} does not exist')
    images = find_images(inputs)
    check_outputs(images, out_dir, force)
    inferencer = StrictDetInferencer(
        cfg, checkpoint, device=device, show_progress=False)
    if deploy:
        switch_to_deploy(inferencer.model)

    def detect(array: np.ndarray) -> DetDataSample:
        return inferencer(array, return_datasamples=True,
                          no_save_pred=True)['predictions'][0]

    return detect_and_write(images, detect, inferencer.visualizer, out_dir,
                            score_thr)


def infer_exported(detector: ExportedDetector,
                   inputs: str,
                   out_dir: str,
                   score_thr: float = 0.3,
                   force: bool = False) -> List[dict]:
    """Detect objects in images with an exported detector, draw and save
    them.

    The same files as :func:`infer`, from the exported file alone.

    Args:
        detector (ExportedDetector): The file in its runtime, e.g. an
            :class:`~mmriformer.deployment.ONNXRuntimeDetector` or an
            :class:`~mmriformer.deployment.OpenVINODetector`.
        inputs (str): An image or a folder of images.
        out_dir (str): Gets ``vis/`` (drawn images) and
            ``predictions.json``.
        score_thr (float): Keep and draw detections scoring above this.
            Defaults to 0.3.
        force (bool): Replace the files of ``out_dir`` this run writes.
            Defaults to False.

    Returns:
        list[dict]: What ``predictions.json`` holds.

    Raises:
        FileNotFoundError: The inputs do not exist.
        ValueError: An output may not be written (see
            :func:`check_outputs`), or an image cannot be decoded.
    """
    images = find_images(inputs)
    check_outputs(images, out_dir, force)
    visualizer = DetLocalVisualizer(name=f'infer_{detector.backend}')
    visualizer.dataset_meta = detector.dataset_meta

    def detect(array: np.ndarray) -> DetDataSample:
        return DetDataSample(pred_instances=InstanceData(**{
            key: torch.from_numpy(value)
            for key, value in detector.detect(array).items()
        }))

    return detect_and_write(images, detect, visualizer, out_dir, score_thr)


def infer_onnxruntime(model: str,
                      inputs: str,
                      out_dir: str,
                      score_thr: float = 0.3,
                      force: bool = False) -> List[dict]:
    """Detect objects in images with onnxruntime, draw and save them:
    :func:`infer_exported` of an ONNX file.

    Args:
        model (str): ONNX file written by
            ``tools/deployment/export_onnx.py``.
        inputs, out_dir, score_thr, force: As for :func:`infer_exported`.

    Returns:
        list[dict]: What ``predictions.json`` holds.

    Raises:
        FileNotFoundError: The model or the inputs do not exist.
        ValueError: ``model`` is not an ONNX detector of export_onnx.py, or
            as for :func:`infer_exported`.
    """
    return infer_exported(ONNXRuntimeDetector(model), inputs, out_dir,
                          score_thr, force)
