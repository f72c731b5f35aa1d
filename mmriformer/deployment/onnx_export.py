# Copyright (c) OpenMMLab. All rights reserved.
"""Exporting an RT-DETR's deploy form to ONNX and checking the file.

The exported graph is the official RT-DETR interface: images in, top-k
detections out, post-processing inside and NMS-free (see
:mod:`mmriformer.deployment.preprocess`). It is written by torch's
``torch.export``-based exporter (opsets 16 and 17: the TorchScript-based
one). Its graph optimiser is left off: in onnxscript 0.7 its
Min/Max-to-Clip rewrite leaves a dangling input on the clamps of mmdet's
``inverse_sigmoid``; onnxruntime folds the graph when it loads it anyway.
"""
import copy
import io
import json
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx
import onnxscript.optimizer
import torch
from mmdet.registry import DATASETS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch import Tensor, nn

from ..apis.model_io import (build_model, load_config, load_strict,
                             read_checkpoint)
from ..models import switch_to_deploy
from .detections import compare_detections
from .exported_detector import (DATASET_META_KEY, INPUT_NAMES, OUTPUT_NAMES,
                                ExportedDetector)
from .onnxruntime_detector import ONNXRuntimeDetector
from .preprocess import preprocess

# Standard ONNX operator domains; anything else (mkldnn, aten) would tie
# the file to PyTorch.
STANDARD_DOMAINS = ('', 'ai.onnx', 'ai.onnx.ml')


def pixel_normalisation(preprocessor: nn.Module) -> Tuple[Tensor, Tensor]:
    """The per-channel affine map from RGB pixels in [0, 1] to what the
    detector's data preprocessor feeds the backbone.

    mmdet's ``DetDataPreprocessor`` computes ``(p - mean) / std`` from
    pixels ``p`` in [0, 255], after turning BGR into RGB when
    ``bgr_to_rgb`` (so ``mean`` and ``std`` are in RGB order); for ``x =
    p / 255`` that is ``x * (255 / std) - mean / std``.

    Args:
        preprocessor (nn.Module): An mmengine ``ImgDataPreprocessor``
            (mmdet's ``DetDataPreprocessor``).

    Returns:
        tuple[Tensor, Tensor]: ``scale`` and ``shift``, each (1, 3, 1, 1),
        for RGB input.

    Raises:
        ValueError: The preprocessor does not normalise or keeps BGR (the
            official interface is RGB in [0, 1]).
    """
    if not getattr(preprocessor, '_enable_normalize', False) or \
            not getattr(preprocessor, '_channel_conversion', False):
        raise ValueError(
            'The export takes RGB images in [0, 1]; the config\'s data '
            'preprocessor must set mean, std and bgr_to_rgb=True.')
    mean = preprocessor.mean.detach().float().reshape(1, -1, 1, 1)
    std = preprocessor.std.detach().float().reshape(1, -1, 1, 1)
    return 255 / std, mean / std


class DeployedDetector(nn.Module):
    """An RT-DETR with the official export's interface.

    The images come in RGB, in [0, 1], as the official RT-DETR export takes
    them. The config's data preprocessor is folded into the graph: RT-DETR's
    own (mean 0, std 255) is exactly that input and adds no operator;
    another normalisation (e.g. ImageNet's mean and std for a RIFormer
    backbone) becomes one multiply and one subtract per channel
    (:func:`pixel_normalisation`). The head's own selection
    (:meth:`RTDETRHead.select_detections`, as in ``predict``) runs inside.

    Args:
        detector (nn.Module): An :class:`~mmriformer.models.RTDETR` in eval
            mode, usually in deploy form.
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector
        scale, shift = pixel_normalisation(detector.data_preprocessor)
        self.identity_normalisation = bool((scale == 1).all()
                                           and (shift == 0).all())
        self.register_buffer('pixel_scale', scale, persistent=False)
        self.register_buffer('pixel_shift', shift, persistent=False)

    def normalise(self, images: Tensor) -> Tensor:
        """RGB images in [0, 1], (N, 3, H, W), as the data preprocessor
        gives them to the backbone."""
        if self.identity_normalisation:
            return images
        return images * self.pixel_scale - self.pixel_shift

    def forward(self, images: Tensor,
                orig_target_sizes: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Detect objects in a batch of images.

        Args:
            images (Tensor): Float RGB in [0, 1], (N, 3, H, W).
            orig_target_sizes (Tensor): Int64 (width, height) of the
                original images, (N, 2).

        Returns:
            tuple[Tensor, Tensor, Tensor]: ``labels`` (N, K) int64,
            ``boxes`` (N, K, 4) xyxy in original pixels and ``scores``
            (N, K), K = ``max_per_img``, by descending score.
        """
        outputs = self.detector.forward_transformer(
            self.detector.extract_feat(self.normalise(images)))
        labels, boxes, scores = self.detector.bbox_head.select_detections(
            outputs['all_layers_cls_scores'][-1],
            outputs['all_layers_bbox_preds'][-1])
        scale = orig_target_sizes.to(boxes.dtype).repeat(1, 2)[:, None]
        boxes = boxes * scale
        return labels, boxes, scores


def config_input_size(cfg: Config) -> Tuple[int, int]:
    """The (H, W) the config's test pipeline resizes images to.

    Raises:
        ValueError: The pipeline has no fixed-size ``Resize`` with
            ``keep_ratio=False``.
    """
    for step in cfg.test_dataloader.dataset.pipeline:
        if step['type'] == 'Resize' and not step.get('keep_ratio', False):
            width, height = step['scale']  # mmcv's scale is (w, h)
            return height, width
    raise ValueError(f'The test pipeline of {cfg.filename} has no Resize '
                     f'with keep_ratio=False; give the input size (--size).')


def load_detector(config: str,
                  checkpoint: str,
                  cfg_options: Optional[dict] = None
                  ) -> Tuple[nn.Module, Config, dict]:
    """Build the config's model, load the checkpoint strictly and fold it.

    A train-form checkpoint goes with the train-form config and is folded
    after loading; a deploy-form checkpoint (from
    ``tools/model_converters/reparameterize.py``) needs the deploy config.

    Args:
        config (str): Config file.
        checkpoint (str): Checkpoint file.
        cfg_options (dict, optional): Overrides merged into the config.

    Returns:
        tuple[nn.Module, Config, dict]: The model in deploy form and eval
        mode, the config, and the dataset meta (``classes``, ``palette``)
        as the PyTorch backend of ``tools/infer.py`` draws with it.

    Raises:
        FileNotFoundError: A file is missing.
        ValueError: The checkpoint is none, has no class names, or does not
            fit the config's model
            (:class:`~mmriformer.apis.model_io.WeightsMismatchError`).
    """
    cfg = load_config(config, cfg_options)
    ckpt = read_checkpoint(checkpoint)
    model = build_model(cfg)
    load_strict(model, checkpoint, config, ckpt)
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = cfg.test_dataloader.dataset
        metainfo = DATASETS.get(dataset.type)._load_metainfo(
            copy.deepcopy(dataset.get('metainfo')))
    dataset_meta = dict(ckpt.get('meta', {}).get('dataset_meta', {}))
    if 'classes' not in dataset_meta:
        raise ValueError(
            f'The checkpoint {checkpoint} has no class names (meta.'
            f'dataset_meta.classes, which the Runner and the converters '
            f'save); add them to it.')
    # The palette as mmdet's DetInferencer picks it: the test dataset's,
    # else the checkpoint's, else random.
    if 'palette' in metainfo:
        dataset_meta['palette'] = metainfo['palette']
    return switch_to_deploy(model).eval(), cfg, dataset_meta


def export_onnx(model: DeployedDetector,
                out: str,
                size: Tuple[int, int],
                dataset_meta: dict,
                dynamic_batch: bool = False,
                opset: int = 20,
                simplify: bool = False) -> str:
    """Write ``model`` as an ONNX file.

    Args:
        model (DeployedDetector): The model, in eval mode.
        out (str): Path of the file.
        size (tuple[int, int]): Input (H, W), fixed in the file.
        dataset_meta (dict): ``classes`` and optionally ``palette``,
            stored as JSON in the metadata under ``dataset_meta``.
        dynamic_batch (bool): Let the batch size vary (opset 18 or later);
            otherwise it is 1. Defaults to False.
        opset (int): ONNX opset, at least 16 (GridSample). Defaults to 20,
            the first with a ``Gelu`` operator, which onnxruntime runs as
            one kernel and its quantiser keeps between integer matrix
            products; 18 (the lowest of torch's ``torch.export``-based
            exporter) writes GELU as six elementwise operators; 16 and 17
            take the deprecated TorchScript-based exporter.
        simplify (bool): Fold constants and drop unused nodes (onnxscript's
            folding, without its pattern rewrites). Defaults to False.

    Returns:
        str: ``out``.

    Raises:
        ValueError: ``opset`` below 16, a dynamic batch below 18, or the
            graph holds operators of non-standard domains (nothing is
            written then).
    """
    if opset < 16:
        raise ValueError(f'opset {opset} < 16 lacks GridSample, which the '
                         f'deformable attention needs')
    if dynamic_batch and opset < 18:
        # The TorchScript-based exporter records the batch size of the
        # reshapes in the deformable attention as a constant.
        raise ValueError(f'A dynamic batch needs opset 18 or later, not '
                         f'{opset}')
    # torch.export specialises a dimension of size 1, so a dynamic batch is
    # traced with 2 images.
    batch = 2 if dynamic_batch else 1
    args = (torch.rand(batch, 3, *size),
            torch.tensor([[size[1], size[0]]] * batch))
    names = dict(input_names=list(INPUT_NAMES),
                 output_names=list(OUTPUT_NAMES), opset_version=opset)
    with torch.no_grad():
        if opset >= 18:
            dynamic_shapes = None
            if dynamic_batch:
                n = torch.export.Dim('N')
                dynamic_shapes = {'images': {0: n},
                                  'orig_target_sizes': {0: n}}
            written = torch.onnx.export(
                model.eval(), args, dynamo=True, optimize=False,
                dynamic_shapes=dynamic_shapes, **names).model_proto
        else:
            # The torch.export-based exporter writes opset 18 and cannot
            # convert this graph down (onnx has no opset 18 to 17 adapter of
            # Split); the TorchScript-based one writes 16 and 17 itself.
            buffer = io.BytesIO()
            torch.onnx.export(model.eval(), args, buffer, dynamo=False,
                              **names)
            written = onnx.load_from_string(buffer.getvalue())
    if simplify:
        onnxscript.optimizer.fold_constants(written)
        onnxscript.optimizer.remove_unused_nodes(written)
    domains = foreign_domains(written)
    if domains:
        raise ValueError(f'The exported graph has operators of the domains '
                         f'{domains}, which only PyTorch runs')
    onnx.helper.set_model_props(
        written, {DATASET_META_KEY: json.dumps(dataset_meta)})
    onnx.save(written, out)
    return out


def foreign_domains(model: onnx.ModelProto) -> List[str]:
    """Operator domains of ``model``'s graph outside the standard ones."""
    return sorted({node.domain for node in model.graph.node} -
                  set(STANDARD_DOMAINS))


def pytorch_detections(detector: nn.Module, images: np.ndarray,
                       orig_sizes: np.ndarray) -> List[Dict[str, Tensor]]:
    """The detector's own predictions on preprocessed images: mmdet's data
    preprocessor (on the images' pixels in [0, 255], BGR as loaded) and
    mmdet's head.

    Args:
        detector (nn.Module): The RT-DETR, in eval mode.
        images (np.ndarray): As the ONNX file takes them, RGB in [0, 1],
            (N, 3, H, W).
        orig_sizes (np.ndarray): (width, height) rows, (N, 2).

    Returns:
        list[dict[str, Tensor]]: ``scores``, ``labels`` and ``bboxes`` of
        each image, boxes in original pixels.
    """
    height, width = images.shape[2:]
    samples = [
        DetDataSample(
            metainfo=dict(
                img_shape=(height, width),
                batch_input_shape=(height, width),
                ori_shape=(int(h0), int(w0)),
                scale_factor=(width / w0, height / h0)))
        for w0, h0 in orig_sizes
    ]
    # The pixels as loaded (BGR, 0-255); the preprocessor's padding is
    # dropped, as the file's input has the model's size.
    pixels = torch.from_numpy(np.ascontiguousarray(images[:, ::-1]) * 255)
    with torch.no_grad():
        inputs = detector.data_preprocessor(
            dict(inputs=list(pixels)), False)['inputs']
        results = detector.predict(inputs[..., :height, :width], samples)
    return [dict(r.pred_instances.items()) for r in results]


def verify_detector(model: DeployedDetector,
                    detector: ExportedDetector,
                    images: Sequence[np.ndarray],
                    score_tol: float = 1e-4,
                    box_tol: float = 0.1,
                    max_unmatched: float = 0.) -> Dict[str, float]:
    """Check that an exported detector detects what PyTorch detects.

    Each image runs alone and, if the file takes any batch size, all of
    them run as one batch. Every run must match the detector's own
    prediction of the same preprocessed image (mmdet's head, in PyTorch):
    scores to ``score_tol``, boxes to ``box_tol`` and labels equal, up to
    near-ties at the top-k cut and the fraction ``max_unmatched`` of
    detections without a partner
    (:func:`~mmriformer.deployment.compare_detections`).

    Args:
        model (DeployedDetector): The model that was exported.
        detector (ExportedDetector): The exported file, in its runtime.
        images (Sequence[np.ndarray]): Decoded BGR uint8 images.
        score_tol (float): Defaults to 1e-4.
        box_tol (float): Pixels. Defaults to 0.1.
        max_unmatched (float): Defaults to 0.

    Returns:
        dict[str, float]: The largest ``max_score_diff``, ``max_box_diff``
        and ``unmatched`` over all images.

    Raises:
        ValueError: Naming the image and the measured difference.
    """
    inputs, orig_sizes = preprocess(images, detector.input_size)
    expected = pytorch_detections(model.detector, inputs, orig_sizes)
    runs = [(i, detector(inputs[i:i + 1], orig_sizes[i:i + 1]), 0)
            for i in range(len(images))]
    if detector.batch_size is None:
        batch = detector(inputs, orig_sizes)
        runs += [(i, batch, i) for i in range(len(images))]
    worst = dict(max_score_diff=0., max_box_diff=0., unmatched=0)
    for i, outputs, row in runs:
        ours = {k: torch.from_numpy(v[row]) for k, v in outputs.items()}
        w0, h0 = orig_sizes[i]
        try:
            diffs = compare_detections(ours, expected[i], (h0, w0),
                                       score_tol, box_tol, max_unmatched)
        except AssertionError as error:
            raise ValueError(
                f'{detector.backend} disagrees with PyTorch on image {i} '
                f'(batch of {len(outputs["scores"])}): {error}') from error
        for key in worst:
            worst[key] = max(worst[key], diffs[key])
    return worst


def verify_onnx(model: DeployedDetector, path: str,
                images: Sequence[np.ndarray]) -> Dict[str, float]:
    """Check that onnxruntime detects in an ONNX file what PyTorch detects,
    to the default tolerances of :func:`verify_detector`.

    Args:
        model (DeployedDetector): The model that was exported.
        path (str): The ONNX file.
        images (Sequence[np.ndarray]): Decoded BGR uint8 images.

    Returns:
        dict[str, float]: The largest differences, as
        :func:`verify_detector` gives them.

    Raises:
        ValueError: Naming the image and the measured difference.
    """
    return verify_detector(model, ONNXRuntimeDetector(path), images)
