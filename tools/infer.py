# Copyright (c) OpenMMLab. All rights reserved.
"""Detect objects in images with a trained detector and draw the results.

Runs mmdet's ``DetInferencer`` on the config's test pipeline, writes one
image per input with the boxes, class names and scores drawn by
``DetLocalVisualizer`` into ``OUT_DIR/vis/`` and the detections above the
score threshold into ``OUT_DIR/predictions.json``::

    [{"image": "demo/a.jpg",
      "detections": [{"bbox": [x1, y1, x2, y2], "score": 0.91,
                      "label": 0, "class": "person"}, ...]}, ...]

Boxes are in pixels of the original image. Class names come from the
checkpoint's ``meta.dataset_meta`` (as the Runner saves it).

Other files in ``OUT_DIR`` are left alone. Files this run would write over
are replaced only if an earlier run wrote them (``predictions.json`` and the
drawings of the images it lists); an input image is never written over.

Example::

    python tools/infer.py configs/rtdetr_riformer_s24.py epoch_72.pth \\
        demo/ --out-dir work_dirs/infer --score-thr 0.5 --deploy
"""
import argparse
import json
import os
import os.path as osp
import pickle
import sys
from typing import List, Optional

import mmcv
from mmdet.apis import DetInferencer
from mmdet.apis.det_inferencer import IMG_EXTENSIONS
from mmengine.config import Config, DictAction
from mmengine.structures import InstanceData
from torch import nn

from mmriformer.models import switch_to_deploy
from mmriformer.models.detectors.rtdetr import unknown_keys_of_leaves


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


def check_images_decode(images: List[str]) -> None:
    """Raise if an image cannot be decoded, before anything is written.

    Args:
        images (list[str]): Image paths.

    Raises:
        ValueError: An image is damaged or not an image.
    """
    for image in images:
        if mmcv.imread(image) is None:
            raise ValueError(
                f'Image {image} cannot be decoded: it is damaged or not an '
                f'image; replace it or move it out of the input.')


def check_weights_fit(model: nn.Module, checkpoint: dict) -> None:
    """Raise if the checkpoint's weights do not fit ``model`` exactly.

    mmengine loads non-strictly and only logs what does not fit, which
    leaves randomly initialised layers in the model.

    Args:
        model (nn.Module): The model built from the config.
        checkpoint (dict): The loaded checkpoint.

    Raises:
        ValueError: Missing, unexpected or differently shaped weights.
    """
    state = checkpoint.get('state_dict', checkpoint)
    state = {k.removeprefix('module.'): v for k, v in state.items()}
    expected = model.state_dict()
    problems = [f'missing: {k}' for k in expected if k not in state]
    problems += [f'unexpected: {k}' for k in state if k not in expected]
    problems += [
        f'shape of {k}: {tuple(v.shape)} in the checkpoint, '
        f'{tuple(expected[k].shape)} in the model'
        for k, v in state.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if not problems:
        return
    hint = ''
    if unknown_keys_of_leaves(model, list(state), deploy=False):
        hint += (' The checkpoint is in deploy form: give the deploy config '
                 '(e.g. configs/demo/rtdetr_riformer_s12_shapes_deploy.py) '
                 'or add --cfg-options model.backbone.deploy=True '
                 'model.neck.deploy=True.')
    elif unknown_keys_of_leaves(model, list(state), deploy=True):
        hint += (' The checkpoint is in train form: give the train-form '
                 'config, and --deploy to fold the model after loading.')
    head = expected.get('bbox_head.cls_branches.0.weight')
    ckpt_head = state.get('bbox_head.cls_branches.0.weight')
    if head is not None and ckpt_head is not None and \
            ckpt_head.shape[0] != head.shape[0]:
        hint += (f' The checkpoint predicts {ckpt_head.shape[0]} classes: '
                f'add --cfg-options model.bbox_head.num_classes='
                f'{ckpt_head.shape[0]}.')
    raise ValueError(
        f'The checkpoint does not fit the model of the config '
        f'({len(problems)} problems; first: {"; ".join(problems[:5])}).'
        f'{hint}')


class StrictDetInferencer(DetInferencer):
    """:class:`DetInferencer` that refuses weights that do not fit."""

    def _load_weights_to_model(self, model: nn.Module,
                               checkpoint: Optional[dict],
                               cfg: Optional[Config]) -> None:
        """Check the checkpoint, then load it as DetInferencer does."""
        if checkpoint is not None:
            check_weights_fit(model, checkpoint)
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
        try:
            with open(predictions) as f:
                content = json.load(f)
        except (ValueError, UnicodeDecodeError):
            content = None
        # What infer() writes: a non-empty list of {"image", "detections"}.
        if not (isinstance(content, list) and content and all(
                isinstance(p, dict) and isinstance(p.get('image'), str)
                and 'detections' in p for p in content)):
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


def infer(config: str,
          checkpoint: str,
          inputs: str,
          out_dir: str,
          score_thr: float = 0.3,
          device: str = 'cpu',
          deploy: bool = False,
          cfg_options: Optional[dict] = None) -> List[dict]:
    """Detect objects in images, draw them and save the detections.

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
    check_images_decode(images)
    check_outputs(images, out_dir)
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    inferencer = StrictDetInferencer(
        cfg, checkpoint, device=device, show_progress=False)
    if deploy:
        switch_to_deploy(inferencer.model)
    outputs = inferencer(
        images,
        out_dir=out_dir,
        pred_score_thr=score_thr,
        no_save_pred=True,
        return_datasamples=True)
    classes = inferencer.model.dataset_meta['classes']
    predictions = [
        dict(image=image,
             detections=to_detections(sample.pred_instances, classes,
                                      score_thr))
        for image, sample in zip(images, outputs['predictions'])
    ]
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, 'predictions.json'), 'w') as f:
        json.dump(predictions, f, indent=2)
    return predictions


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Detect objects in images and draw the results.')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('input', help='an image or a folder of images')
    parser.add_argument('--out-dir', required=True,
                        help='gets vis/ and predictions.json')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='keep and draw detections scoring above this')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument('--deploy', action='store_true',
                        help='fold the model into its deploy form')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, e.g. '
        'model.bbox_head.num_classes=3')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    try:
        predictions = infer(args.config, args.checkpoint, args.input,
                            args.out_dir, args.score_thr, args.device,
                            args.deploy, args.cfg_options)
    except (FileNotFoundError, ValueError, pickle.UnpicklingError) as error:
        sys.exit(f'error: {error}')
    count = sum(len(p['detections']) for p in predictions)
    print(f'{count} detections above {args.score_thr} in '
          f'{len(predictions)} images: drawn in '
          f'{osp.join(args.out_dir, "vis")}, listed in '
          f'{osp.join(args.out_dir, "predictions.json")}')


if __name__ == '__main__':
    main()
