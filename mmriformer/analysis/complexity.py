# Copyright (c) OpenMMLab. All rights reserved.
"""Parameters, MACs and CPU speed of RT-DETR detectors built from configs
(``tools/analysis_tools/detector_complexity.py``).

MACs are counted by mmengine's ``FlopAnalyzer`` (the counter behind
``get_model_complexity_info`` and mmdet's ``get_flops.py``), which counts
one multiply-add as one "flop": the numbers reported are therefore GMACs,
and FLOPs in the strict sense are about twice as many.

The counted module runs the detector's whole inference path on a batch of
one unpadded ``size x size`` image: ``extract_feat`` (backbone and hybrid
encoder), ``forward_transformer`` (query selection and decoder) and the
head's ``predict``. The data preprocessor is not included. mmengine has no
handle for ``aten::scaled_dot_product_attention`` (the attention products
of ``nn.MultiheadAttention``), so one is added here; element-wise ops
(additions, activations, softmax, ...) have no handle and are listed in the
report as not counted.

For the D-FINE configs the report puts the D-FINE README's figures
(:data:`PAPER`) beside the measured ones, with their ratios. The README's
"GFLOPs" (measured with calflops at 640 x 640) are compared with the GMACs
here as they are: a ratio near 0.5 means they count a multiply-add as two.
"""
import copy
import math
import os
import statistics
import time
from collections import Counter
from typing import Any, Dict, List, Optional

import torch
from mmdet.structures import DetDataSample
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape
from torch import Tensor, nn

from ..apis import build_model
from ..models import switch_to_deploy
from ..utils.cli_checks import check_output_file

UNIT_NOTE = ('GMACs (mmengine counts a multiply-add as one flop; '
             'FLOPs = 2 x MACs)')
# Submodules of RTDETR reported separately, in the order they run.
PARTS = {
    'backbone': 'backbone',
    'neck': 'hybrid encoder',
    'decoder_input_proj': 'decoder input projection',
    'memory_proj': 'query selection',
    'decoder': 'decoder',
    'bbox_head': 'head branches',
}
# The D-FINE README's COCO table (Peterande/D-FINE): model, #Params (M)
# and GFLOPs, all at 640 x 640, by config file name.
PAPER = {
    'dfine_hgnetv2_n_coco.py': ('D-FINE-N', 4, 7),
    'dfine_hgnetv2_s_coco.py': ('D-FINE-S', 10, 25),
    'dfine_hgnetv2_m_coco.py': ('D-FINE-M', 19, 57),
    'dfine_hgnetv2_l_coco.py': ('D-FINE-L', 31, 91),
    'dfine_hgnetv2_x_coco.py': ('D-FINE-X', 62, 202),
}
PAPER_SIZE = 640
COUNTED_OPS = ('convolution, linear, matmul/bmm/einsum, '
               'scaled_dot_product_attention (handle added here), '
               'grid_sample (4 per output value), batch/layer/group norm, '
               'upsample, adaptive pooling')


def paper_figures(config: str) -> Optional[Dict]:
    """The published figures of a config's model, if :data:`PAPER` has it.

    Args:
        config (str): Path of the config; its file name is looked up.

    Returns:
        dict, optional: ``model``, ``params_m`` (millions) and ``gflops``
        (at :data:`PAPER_SIZE`), or None for a config not listed.
    """
    figures = PAPER.get(os.path.basename(config))
    if figures is None:
        return None
    return dict(zip(('model', 'params_m', 'gflops'), figures))


def build_detector(config: str,
                   cfg_options: Optional[dict] = None) -> nn.Module:
    """Build the detector of ``config`` with random weights, in eval mode.

    The pretrained backbone is not downloaded and the batch augments
    (random resizing, training only) are dropped.

    Args:
        config (str): Path of the config.
        cfg_options (dict, optional): Overrides merged into the config.

    Returns:
        nn.Module: The detector.
    """
    # Overrides of the user first, then the batch augments dropped.
    options = dict(cfg_options or {})
    options['model.data_preprocessor.batch_augments'] = None
    return build_model(config, options, pretrained=False).eval()


def deploy_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` folded into its deploy form."""
    return switch_to_deploy(copy.deepcopy(model)).eval()


class InferencePath(nn.Module):
    """The detector's inference path as ``forward(images) -> tensors``.

    Each image gets a fixed :class:`DetDataSample` that describes it as
    unpadded and unscaled (``img_shape == batch_input_shape ==
    ori_shape``), so the boxes come back in input pixels.

    Args:
        detector (nn.Module): An RT-DETR detector.
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: Tensor) -> tuple:
        """Predict boxes, scores and labels of each image.

        Args:
            images (Tensor): Preprocessed images, shape (N, 3, H, W).

        Returns:
            tuple[Tensor]: Boxes (N, K, 4), scores (N, K) and labels (N, K).
        """
        shape = tuple(images.shape[-2:])
        samples = [
            DetDataSample(metainfo=dict(
                img_shape=shape, batch_input_shape=shape, ori_shape=shape,
                pad_shape=shape, scale_factor=(1., 1.)))
            for _ in range(images.shape[0])
        ]
        feats = self.detector.extract_feat(images)
        head_inputs = self.detector.forward_transformer(feats, samples)
        results = self.detector.bbox_head.predict(
            **head_inputs, batch_data_samples=samples, rescale=False)
        return tuple(
            torch.stack([getattr(r, key) for r in results])
            for key in ('bboxes', 'scores', 'labels'))


def sdpa_macs(inputs: List[Any], outputs: List[Any]) -> int:
    """MACs of ``scaled_dot_product_attention``: ``QK^T`` and ``AV``.

    Query (..., L, E), key (..., S, E) and value (..., S, Ev) give
    ``batch * L * S * (E + Ev)``; the softmax is element-wise and not
    counted, like every other element-wise op.
    """
    query, key, value = (get_shape(v) for v in inputs[:3])
    return math.prod(query[:-1]) * key[-2] * (query[-1] + value[-1])


def count_params(model: nn.Module) -> int:
    """Number of parameters (every one, trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, size: int) -> Dict:
    """MACs of ``model``'s inference path on one ``size x size`` image.

    Args:
        model (nn.Module): An RT-DETR detector.
        size (int): Side of the square input.

    Returns:
        dict: ``macs`` (the total), ``parts`` (MACs per submodule, see
        ``PARTS``, plus ``other`` for ops outside them when any) and
        ``uncounted_ops`` (calls of each op without a handle).
    """
    analyzer = FlopAnalyzer(
        InferencePath(model).eval(), (torch.rand(1, 3, size, size), ))
    analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_macs)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    # With grad enabled, the deploy form's blocks run F.linear/F.conv2d
    # (counted) instead of oneDNN kernels (torch.ops.mkldnn, not counted).
    with torch.enable_grad():
        total = analyzer.total()
        by_module = analyzer.by_module()
        uncounted = analyzer.unsupported_ops()
    parts = {
        name: by_module[f'detector.{attr}']
        for attr, name in PARTS.items()
    }
    other = total - sum(parts.values())
    if other:
        parts['other'] = other
    return dict(macs=total, parts=parts, uncounted_ops=dict(uncounted))


def images_per_second(model: nn.Module,
                      size: int,
                      repeats: int = 10,
                      warmup: int = 2) -> float:
    """CPU images/s of the inference path at batch 1 (median of runs).

    Args:
        model (nn.Module): The detector, on the CPU.
        size (int): Side of the square input.
        repeats (int): Timed runs. Defaults to 10.
        warmup (int): Untimed runs first. Defaults to 2.

    Returns:
        float: One over the median time of a run.
    """
    path = InferencePath(model).eval()
    images = torch.rand(1, 3, size, size)
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            path(images)
        for _ in range(repeats):
            start = time.perf_counter()
            path(images)
            times.append(time.perf_counter() - start)
    return 1 / statistics.median(times)


def analyze(config: str,
            size: int = 640,
            deploy: bool = False,
            benchmark: bool = False,
            repeats: int = 10,
            cfg_options: Optional[dict] = None) -> Dict:
    """Parameters, MACs and (optionally) speed of one config's detector.

    Args:
        config (str): Path of the config.
        size (int): Side of the square input. Defaults to 640.
        deploy (bool): Also measure the deploy form. Defaults to False.
        benchmark (bool): Time the deploy form on the CPU. Defaults to
            False.
        repeats (int): Timed runs of the benchmark. Defaults to 10.
        cfg_options (dict, optional): Overrides merged into the config.

    Returns:
        dict: ``params`` and ``macs`` keyed by form (``train`` and, with
        ``deploy``, ``deploy``), plus ``images_per_s`` and ``threads``
        with ``benchmark``, and ``paper`` (:func:`paper_figures`) for a
        config in :data:`PAPER`.
    """
    model = build_detector(config, cfg_options)
    forms = {'train': model}
    if deploy or benchmark:
        forms['deploy'] = deploy_copy(model)
    measured = forms if deploy else {'train': model}
    result = dict(
        config=config, size=size, unit=UNIT_NOTE,
        params={k: count_params(m) for k, m in measured.items()},
        macs={k: count_macs(m, size) for k, m in measured.items()})
    paper = paper_figures(config)
    if paper is not None:
        result['paper'] = paper
    if benchmark:
        result['images_per_s'] = images_per_second(forms['deploy'], size,
                                                   repeats)
        result['threads'] = torch.get_num_threads()
    return result


def format_result(result: Dict) -> str:
    """A human-readable report of :func:`analyze`'s result."""
    size = result['size']
    lines = [f'{result["config"]} ({size}x{size}, batch 1)']
    params = ', '.join(f'{n / 1e6:.2f} M ({form} form)'
                       for form, n in result['params'].items())
    lines.append(f'  params: {params}')
    lines.append(f'  {UNIT_NOTE}:')
    for form, stats in result['macs'].items():
        parts = ' + '.join(f'{name} {macs / 1e9:.2f}'
                           for name, macs in stats['parts'].items())
        lines.append(f'    {form} form: {stats["macs"] / 1e9:.2f} = {parts}')
    lines.append(f'  counted: {COUNTED_OPS}')
    uncounted = Counter()
    for stats in result['macs'].values():
        uncounted.update(stats['uncounted_ops'])
    if uncounted:
        ops = ', '.join(sorted(uncounted))
        lines.append(f'  not counted (no mmengine handle; element-wise, '
                     f'shape or selection ops): {ops}')
    if 'paper' in result:
        lines.append(format_paper(result))
    if 'images_per_s' in result:
        lines.append(f'  CPU, deploy form, inference_mode, '
                     f'{result["threads"]} threads: '
                     f'{result["images_per_s"]:.2f} images/s')
    return '\n'.join(lines)


def format_paper(result: Dict) -> str:
    """The paper's figures of :func:`analyze`'s result and, at the paper's
    input size, the measured train form over them."""
    paper = result['paper']
    line = (f'  paper ({paper["model"]}, D-FINE README, {PAPER_SIZE}x'
            f'{PAPER_SIZE}): {paper["params_m"]} M params, '
            f'{paper["gflops"]} GFLOPs')
    if result['size'] != PAPER_SIZE:
        return line + f'; not compared at {result["size"]}x{result["size"]}'
    params = result['params']['train'] / 1e6 / paper['params_m']
    macs = result['macs']['train']['macs'] / 1e9 / paper['gflops']
    return line + (f'; measured / paper: params {params:.2f}, GMACs / '
                   f'GFLOPs {macs:.2f}')


def check_complexity_paths(configs: List[str],
                           out: Optional[str],
                           force: bool = False) -> None:
    """Raise before any work if a config is missing or ``out`` may not be
    written (the tools' one output rule, :func:`check_output_file`).

    Args:
        configs (list[str]): The config files.
        out (str, optional): Where the JSON results go.
        force (bool): Whether an existing ``out`` may be replaced.
            Defaults to False.

    Raises:
        FileNotFoundError: A config does not exist.
        ValueError: ``out`` may not be written; the message names the fix.
    """
    for config in configs:
        if not os.path.isfile(config):
            raise FileNotFoundError(
                f'Config {config} does not exist; check the path.')
    if out is not None:
        check_output_file(out, force)
