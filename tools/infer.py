# Copyright (c) OpenMMLab. All rights reserved.
"""Detect objects in images with a trained detector and draw the results.

Two backends run the detector. ``pytorch`` (the default) runs mmdet's
``DetInferencer`` on the config's test pipeline, from a config and a
checkpoint. ``onnxruntime`` runs a file written by
``tools/deployment/export_onnx.py`` alone (no config, no checkpoint, no
mmdet model), with the pre-processing of
``mmriformer/deployment/preprocess.py``; its class names come from the
file. Both write one image per input with the boxes, class names and
scores drawn by ``DetLocalVisualizer`` into ``OUT_DIR/vis/`` and the
detections above the score threshold into ``OUT_DIR/predictions.json``::

    [{"image": "demo/a.jpg",
      "detections": [{"bbox": [x1, y1, x2, y2], "score": 0.91,
                      "label": 0, "class": "person"}, ...]}, ...]

Boxes are in pixels of the original image. With ``pytorch``, class names
come from the checkpoint's ``meta.dataset_meta`` (as the Runner saves it).
The weights are loaded strictly: a checkpoint that does not fit the
config's model stops the run with a hint (another form, another number of
classes).

Each image is decoded once. Nothing is written until every image has been
decoded and detected, so a damaged image leaves ``OUT_DIR`` as it was.
Other files in ``OUT_DIR`` are left alone. Files this run would write over
are replaced only if an earlier run wrote them (``predictions.json`` and the
drawings of the images it lists); an input image is never written over.

Examples::

    python tools/infer.py configs/rtdetr_riformer_s24.py epoch_72.pth \\
        demo/ --out-dir work_dirs/infer --score-thr 0.5 --deploy
    python tools/infer.py --backend onnxruntime model.onnx demo/ \\
        --out-dir work_dirs/infer_ort
"""
import argparse
import json
import os
import os.path as osp
import pickle
import shutil
import sys
import tempfile
from typing import Callable, List, Optional

import mmcv
import numpy as np
import torch
from mmdet.apis import DetInferencer
from mmdet.structures import DetDataSample
from mmdet.visualization import DetLocalVisualizer
from mmengine.config import Config, DictAction
from mmengine.structures import InstanceData
from torch import nn

from mmriformer.apis import load_config, load_strict
from mmriformer.deployment import ONNXRuntimeDetector, read_image
from mmriformer.models import switch_to_deploy
from mmriformer.utils.cli_checks import earlier_records
from mmriformer.utils.image_files import find_images


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
        """Load ``checkpoint`` strictly, then its class names as
        DetInferencer does (which copies the same weights once more).

        Raises:
            ValueError: The weights do not fit ``model``.
        """
        if checkpoint is not None:
            load_strict(model, self.checkpoint_path, cfg, checkpoint)
        super()._load_weights_to_model(model, checkpoint, cfg)


def check_outputs(images: List[str], out_dir: str) -> None:
    """Raise if writing the results into ``out_dir`` would replace an input
    image or a file that no earlier run of this tool wrote.

    The run writes ``out_dir/predictions.json`` and ``out_dir/vis/<image
    name>`` for each image. Of these, existing files are replaced only if an
    earlier run wrote them: its ``predictions.json`` (a list of
    ``{"image", "detections"}``) and the drawings of the images it lists.

    Args:
        images (list[str]): The input images.
        out_dir (str): The output folder.

    Raises:
        ValueError: A file would be replaced that must not be.
    """
    if osp.exists(out_dir) and not osp.isdir(out_dir):
        raise ValueError(f'--out-dir {out_dir} is a file, not a folder; give '
                         f'a new or empty folder.')
    predictions = osp.join(out_dir, 'predictions.json')
    drawings = {image: osp.join(out_dir, 'vis', osp.basename(image))
                for image in images}
    inputs = [osp.realpath(image) for image in images]
    for path in [predictions] + list(drawings.values()):
        if osp.exists(path) and osp.realpath(path) in inputs:
            raise ValueError(
                f'The output {path} would write over the input image of the '
                f'same path; give an --out-dir outside the input folder.')
    earlier = set()
    if osp.isfile(predictions):
        # What infer() writes: a non-empty list of {"image", "detections"}.
        content = earlier_records(predictions, ('image', 'detections'))
        if content is None or not all(
                isinstance(p['image'], str) for p in content):
            raise ValueError(
                f'{predictions} exists and was not written by this tool; it '
                f'is not overwritten: give another --out-dir or remove it.')
        earlier = {predictions} | {
            osp.join(out_dir, 'vis', osp.basename(p['image']))
            for p in content}
    others = [path for path in drawings.values()
              if osp.exists(path) and path not in earlier]
    if others:
        raise ValueError(
            f'{len(others)} files in {osp.join(out_dir, "vis")} have the '
            f'names of drawings this run would write (e.g. {others[0]}) but '
            f'no earlier run of this tool wrote them; they are not '
            f'overwritten: give another --out-dir or remove them.')
    replaced = [path for path in [predictions] + list(drawings.values())
                if path in earlier and osp.exists(path)]
    if replaced:
        print(f'Replacing {len(replaced)} files of an earlier run in '
              f'{out_dir} (predictions.json and drawings)')


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
          cfg_options: Optional[dict] = None) -> List[dict]:
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

    Returns:
        list[dict]: What ``predictions.json`` holds.
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'Config {config} does not exist')
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'Checkpoint {checkpoint} does not exist')
    images = find_images(inputs)
    check_outputs(images, out_dir)
    cfg = load_config(config, cfg_options)
    inferencer = StrictDetInferencer(
        cfg, checkpoint, device=device, show_progress=False)
    if deploy:
        switch_to_deploy(inferencer.model)

    def detect(array: np.ndarray) -> DetDataSample:
        return inferencer(array, return_datasamples=True,
                          no_save_pred=True)['predictions'][0]

    return detect_and_write(images, detect, inferencer.visualizer, out_dir,
                            score_thr)


def infer_onnxruntime(model: str,
                      inputs: str,
                      out_dir: str,
                      score_thr: float = 0.3) -> List[dict]:
    """Detect objects in images with onnxruntime, draw and save them.

    The same files as :func:`infer`, from the ONNX file alone.

    Args:
        model (str): ONNX file written by
            ``tools/deployment/export_onnx.py``.
        inputs (str): An image or a folder of images.
        out_dir (str): Gets ``vis/`` (drawn images) and
            ``predictions.json``.
        score_thr (float): Keep and draw detections scoring above this.
            Defaults to 0.3.

    Returns:
        list[dict]: What ``predictions.json`` holds.
    """
    detector = ONNXRuntimeDetector(model)
    images = find_images(inputs)
    check_outputs(images, out_dir)
    visualizer = DetLocalVisualizer(name='infer_onnxruntime')
    visualizer.dataset_meta = detector.dataset_meta

    def detect(array: np.ndarray) -> DetDataSample:
        return DetDataSample(pred_instances=InstanceData(**{
            key: torch.from_numpy(value)
            for key, value in detector.detect(array).items()
        }))

    return detect_and_write(images, detect, visualizer, out_dir, score_thr)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Detect objects in images and draw the results.')
    parser.add_argument(
        'model', nargs='+', metavar='MODEL',
        help='CONFIG CHECKPOINT (pytorch) or MODEL.onnx (onnxruntime)')
    parser.add_argument('input', help='an image or a folder of images')
    parser.add_argument(
        '--backend', choices=('pytorch', 'onnxruntime'), default='pytorch',
        help='pytorch: a config and a checkpoint (default); onnxruntime: '
        'a file of tools/deployment/export_onnx.py')
    parser.add_argument('--out-dir', required=True,
                        help='gets vis/ and predictions.json')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='keep and draw detections scoring above this')
    parser.add_argument('--device', default='cpu',
                        help='e.g. cpu, cuda:0 (pytorch only)')
    parser.add_argument('--deploy', action='store_true',
                        help='fold the model into its deploy form '
                        '(pytorch only)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, e.g. '
        'model.bbox_head.num_classes=3 (pytorch only)')
    args = parser.parse_args()
    if args.backend == 'pytorch' and len(args.model) != 2:
        parser.error('the pytorch backend takes CONFIG CHECKPOINT INPUT')
    if args.backend == 'onnxruntime':
        if len(args.model) != 1:
            parser.error('the onnxruntime backend takes MODEL.onnx INPUT '
                         '(no config or checkpoint)')
        # The exported file is already in deploy form, with its config
        # baked in; onnxruntime runs it on the CPU here.
        pytorch_only = [option for option, given in (
            ('--deploy', args.deploy),
            ('--cfg-options', args.cfg_options),
            ('--device', args.device != 'cpu')) if given]
        if pytorch_only:
            parser.error(f'{", ".join(pytorch_only)}: for the pytorch '
                         f'backend only')
    return args


def main() -> None:
    args = parse_args()
    try:
        if args.backend == 'onnxruntime':
            predictions = infer_onnxruntime(args.model[0], args.input,
                                            args.out_dir, args.score_thr)
        else:
            predictions = infer(*args.model, args.input, args.out_dir,
                                args.score_thr, args.device, args.deploy,
                                args.cfg_options)
    except (FileNotFoundError, ValueError, pickle.UnpicklingError) as error:
        sys.exit(f'error: {error}')
    count = sum(len(p['detections']) for p in predictions)
    print(f'{count} detections above {args.score_thr} in '
          f'{len(predictions)} images: drawn in '
          f'{osp.join(args.out_dir, "vis")}, listed in '
          f'{osp.join(args.out_dir, "predictions.json")}')


if __name__ == '__main__':
    main()
