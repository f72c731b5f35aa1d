# Copyright (c) OpenMMLab. All rights reserved.
"""Images/s and latency of HF transformers' RT-DETR, as a peer of
``benchmark_detector.py``.

HF transformers cannot live in our environment, so this runs in one that
has torch and transformers (and OpenVINO for its OpenVINO backends), e.g.
the oracle venv of :mod:`mmriformer.testing.oracle` (``python -c "from
mmriformer.testing.oracle import ensure_oracle_venv; print(
ensure_oracle_venv())"`` builds it and prints its Python). It imports only
the standard library, torch, transformers, openvino (for its backends) and,
by path, ``mmriformer/testing/hf_rtdetr_oracle.py``, whose ``build_model``
gives ``RTDetrForObjectDetection`` in an official layout (R18vd by default)
with random weights (nothing is downloaded),
``mmriformer/deployment/detections.py`` (the agreement check) and
``mmriformer/analysis/timing.py`` (the timing, as ours).

Backends (``--backends``, each timed on the same model and images):

- ``pytorch`` (the default): the model in eager PyTorch, under autocast
  for ``--dtype`` fp16/bf16;
- ``openvino-f32`` and ``openvino-bf16``: the model converted by
  ``openvino.convert_model`` from PyTorch (traced on the images, for their
  fixed shape) and compiled for the CPU computing in the precision of the
  name (``INFERENCE_PRECISION_HINT``), with as many threads as PyTorch's
  (``INFERENCE_NUM_THREADS``) and one stream. ``--dtype`` is PyTorch's
  autocast, so these need ``--dtype fp32``; bf16 needs a CPU with bf16
  instructions (OpenVINO would fall back to f32 silently: that is an
  error here);
- ``openvino-int8``: that model quantised by NNCF as ours
  (``mmriformer.deployment.openvino_detector.quantize_ir``: its transformer
  scheme, calibrated on 8 random images, as ours on 8 generated ones; the
  speed does not depend on them) with HF's counterparts of our float
  modules (``FLOAT_MODULES``) kept in float, its float parts in f32.

Each timed call is what ``benchmark_detector.py`` times of ours: random
``[0, 1]`` RGB images to the top-k detections of each image (the model,
then HF's ``post_process_object_detection``; OpenVINO gets the images on
the host as NumPy arrays and gives the logits and boxes that it
post-processes). Before timing, openvino-f32's detections must equal eager
PyTorch's in float32 (scores 1e-4, boxes 0.1 px, as ours). Then warm-up
calls, then the timed calls, interleaved across the backends; the median
and 90th percentile of each. The JSON written with ``--out`` is a list of
rows in ``benchmark_detector.py``'s schema
(:data:`mmriformer.analysis.ROW_KEYS`), for its ``--peer-json``.

Example (2 CPU cores, then ours beside it)::

    ~/.cache/mmriformer/oracle-venv-<key>/bin/python \\
        tools/analysis_tools/hf_rtdetr_benchmark.py --sizes 640 320 \\
        --backends pytorch openvino-f32 openvino-bf16 \\
        --out work_dirs/hf_rtdetr.json
    python tools/analysis_tools/benchmark_detector.py \\
        configs/rtdetr_riformer_s12.py --sizes 640 320 \\
        --backends pytorch-deploy openvino-f32 openvino-bf16 \\
        --peer-json work_dirs/hf_rtdetr.json
"""
import argparse
import importlib.metadata
import importlib.util
import json
import logging
import os
import os.path as osp
import platform
import warnings
from contextlib import nullcontext

import torch

ROOT = osp.join(osp.dirname(osp.abspath(__file__)), '..', '..')
DTYPES = {
    'fp32': torch.float32,
    'fp16': torch.float16,
    'bf16': torch.bfloat16
}
# What each OpenVINO backend computes in.
OPENVINO_PRECISIONS = {
    'openvino-f32': 'f32',
    'openvino-bf16': 'bf16',
    'openvino-int8': 'int8'
}
# HF's names of the modules our int8 IRs keep in float
# (mmriformer.deployment.openvino_detector.FLOAT_MODULES): the deformable
# attention's sampling offsets and weights, and the encoder's and each
# decoder layer's class and box heads.
FLOAT_MODULES = (r'.*\.sampling_offsets', r'.*\.attention_weights',
                 r'.*\.enc_score_head', r'.*\.enc_bbox_head',
                 r'.*\.decoder\.class_embed\.\d+',
                 r'.*\.decoder\.bbox_embed\.\d+')
# Images the int8 model is calibrated on, as ours (CALIBRATION_IMAGES).
CALIBRATION_IMAGES = 8
BACKENDS = ('pytorch', *OPENVINO_PRECISIONS)
# Agreement required of openvino-f32 with eager PyTorch, as ours.
SCORE_TOL = 1e-4
BOX_TOL = 0.1  # pixels


def load_module(*path: str):
    """A module of mmriformer by its path, without importing mmriformer:
    ``mmriformer/__init__.py`` imports mmdet, which this venv lacks."""
    name = osp.splitext(path[-1])[0]
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, *path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0].replace('\n', ' '))
    parser.add_argument('--variant', default='r18vd',
                        help="an official layout, e.g. 'r18vd', 'r50vd'")
    parser.add_argument('--backends', nargs='+', choices=BACKENDS,
                        default=['pytorch'], metavar='BACKEND',
                        help='pytorch (eager, the default), openvino-f32, '
                        'openvino-bf16, openvino-int8 (HF converted to '
                        'OpenVINO, on the CPU in that precision; --dtype '
                        'fp32 only); openvino-f32 is checked equal to eager '
                        'first')
    parser.add_argument('--batch-sizes', nargs='+', type=int, default=[1])
    parser.add_argument('--sizes', nargs='+', type=int, default=[640],
                        help='sides of the square inputs')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--dtype', choices=tuple(DTYPES), default='fp32',
                        help='fp16/bf16 run pytorch under autocast')
    parser.add_argument('--seed', type=int, default=0,
                        help='of the random weights and images')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--out', help='write the rows as JSON here')
    parser.add_argument('--force', action='store_true',
                        help='replace --out if it exists')
    args = parser.parse_args()
    args.backends = list(dict.fromkeys(args.backends))
    openvino = [b for b in args.backends if b in OPENVINO_PRECISIONS]
    if openvino and args.device != 'cpu':
        parser.error(f'--backends {openvino[0]} runs on the CPU only; use '
                     f'--device cpu')
    if openvino and args.dtype != 'fp32':
        parser.error(f'--backends {openvino[0]} computes in the precision '
                     f'of its name (--dtype is PyTorch\'s autocast); use '
                     f'--dtype fp32')
    if openvino and importlib.util.find_spec('openvino') is None:
        parser.error(f'--backends {openvino[0]} needs OpenVINO, which this '
                     f'environment lacks; run this in the oracle venv, which '
                     f'has it, or pip install openvino')
    if 'openvino-int8' in openvino and importlib.util.find_spec(
            'nncf') is None:
        parser.error('--backends openvino-int8 needs NNCF, which this '
                     'environment lacks; run this in the oracle venv, which '
                     'has it, or pip install nncf')
    # The tools' output rule (mmriformer.utils.cli_checks.check_output_file,
    # which the oracle venv cannot import), checked before the work.
    if args.out and not osp.isdir(osp.dirname(osp.abspath(args.out))):
        parser.error(f'the folder of --out {args.out} does not exist; '
                     f'create it or give another path')
    if args.out and osp.exists(args.out) and not args.force:
        parser.error(f'{args.out} exists and is not replaced; give another '
                     f'path, or --force to replace it')
    return args


class LogitsAndBoxes(torch.nn.Module):
    """The HF model giving only what post-processing reads, as a tuple:
    OpenVINO's converter traces tensors, and HF's output class also holds
    lists of them."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> tuple:
        outputs = self.model(pixel_values=pixel_values)
        return outputs.logits, outputs.pred_boxes


def convert_to_openvino(model: torch.nn.Module, images: torch.Tensor):
    """The model converted to OpenVINO from PyTorch, for the shape of
    ``images``.

    Args:
        model (torch.nn.Module): The HF model, on the CPU, in eval mode.
        images (torch.Tensor): Example input, traced; its shape is fixed in
            the converted model.

    Returns:
        openvino.Model: Giving the logits and the boxes.
    """
    import openvino as ov
    # The trace fixes shapes as constants (TracerWarnings): right for the
    # one shape it is converted for.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        return ov.convert_model(LogitsAndBoxes(model), example_input=images,
                                input=[tuple(images.shape)])


def quantize(converted, calibration: torch.Tensor):
    """The converted model quantised to int8 by NNCF, as ours.

    Args:
        converted (openvino.Model): From :func:`convert_to_openvino`.
        calibration (torch.Tensor): Images of the model's input shape,
            stacked, (num_calls, N, 3, H, W).

    Returns:
        tuple[openvino.Model, str]: The int8 model, and how many of its
        matrix products and convolutions are int8, for the log.
    """
    import nncf
    scope = nncf.IgnoredScope(
        patterns=[rf'(?:{pattern})(?:\.[^/]*)?/' for pattern in FLOAT_MODULES])
    # NNCF logs a line for every operation it leaves unquantised (this
    # tool's own process: nothing else logs through NNCF).
    nncf.set_log_level(logging.WARNING)
    quantized = nncf.quantize(
        converted, nncf.Dataset([images.numpy() for images in calibration]),
        model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calibration),
        ignored_scope=scope)
    # NNCF quantises a product's input by a FakeQuantize before it.
    products = [op for op in quantized.get_ordered_ops()
                if op.get_type_name() in ('MatMul', 'Convolution')]
    int8 = sum(
        any(v.get_node().get_type_name() == 'FakeQuantize'
            for v in op.input_values()) for op in products)
    return quantized, (f'openvino-int8: {int8} of {len(products)} matrix '
                       f'products and convolutions in int8')


def compile_for_cpu(converted, precision: str, threads: int):
    """A converted model compiled for the CPU, computing in ``precision``.

    Args:
        converted (openvino.Model): From :func:`convert_to_openvino`, or
            :func:`quantize` for ``'int8'``.
        precision (str): ``'f32'``, ``'bf16'`` or ``'int8'`` (its float
            parts in f32).
        threads (int): Threads of the computation (one stream).

    Returns:
        openvino.CompiledModel: The compiled model.
    """
    import openvino as ov
    core = ov.Core()
    hint = 'f32' if precision == 'int8' else precision
    compiled = core.compile_model(
        converted, 'CPU', {
            'INFERENCE_PRECISION_HINT': hint,
            'INFERENCE_NUM_THREADS': threads,
            'NUM_STREAMS': 1
        })
    # A CPU without bf16 instructions computes in f32 instead, silently.
    used = compiled.get_property('INFERENCE_PRECISION_HINT').get_type_name()
    if used != hint:
        capabilities = core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES')
        raise SystemExit(
            f'error: --backends openvino-{precision}: OpenVINO computes in '
            f'{used} on this CPU, not in {precision} (its capabilities: '
            f'{", ".join(capabilities)}); leave openvino-{precision} out.')
    return compiled


def check_agreement(compare_detections, reference: list, detections: list,
                    size: int) -> str:
    """Raise unless openvino-f32's detections equal eager PyTorch's:
    scores to ``SCORE_TOL``, boxes to ``BOX_TOL`` pixels, up to near-ties
    at the top-k cut.

    Args:
        compare_detections (Callable): The function of
            ``mmriformer/deployment/detections.py``.
        reference (list[dict]): Eager fp32's detections of each image.
        detections (list[dict]): openvino-f32's.
        size (int): Side of the images.

    Returns:
        str: What was compared, for the log.
    """
    stats = []
    for i, (ours, theirs) in enumerate(zip(detections, reference)):
        try:
            stats.append(compare_detections(ours, theirs, (size, size),
                                            SCORE_TOL, BOX_TOL))
        except AssertionError as error:
            raise SystemExit(
                f'error: openvino-f32 does not predict what pytorch (eager, '
                f'fp32) predicts on image {i}: {error}. Timing engines that '
                f'compute different things would compare nothing.')
    total = {key: sum(s[key] for s in stats)
             for key in ('matched', 'exempt')}
    worst = {key: max(s[key] for s in stats)
             for key in ('max_score_diff', 'max_box_diff')}
    return (f'openvino-f32 equals pytorch fp32: {total["matched"]} '
            f'detections matched ({total["exempt"]} exempt at the top-k '
            f'cut), scores within {worst["max_score_diff"]:.2g}, boxes '
            f'within {worst["max_box_diff"]:.2g} px')


def main() -> None:
    args = parse_args()
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('error: --device cuda: CUDA is not available here.')
    import transformers
    from transformers.models.rt_detr.image_processing_pil_rt_detr import \
        RTDetrImageProcessorPil
    from transformers.models.rt_detr.modeling_rt_detr import \
        RTDetrObjectDetectionOutput
    oracle = load_module('mmriformer', 'testing', 'hf_rtdetr_oracle.py')
    compare_detections = load_module('mmriformer', 'deployment',
                                     'detections.py').compare_detections
    timing = load_module('mmriformer', 'analysis', 'timing.py')
    model = oracle.build_model(args.variant)
    oracle.perturb_(model, seed=args.seed)
    model = model.to(args.device).eval()
    processor = RTDetrImageProcessorPil()
    autocast = nullcontext() if args.dtype == 'fp32' else torch.autocast(
        args.device, DTYPES[args.dtype])
    threads = torch.get_num_threads()

    def post_process(outputs, images):
        # threshold -1 keeps all top-k detections, as ours returns.
        return processor.post_process_object_detection(
            outputs, threshold=-1.0,
            target_sizes=[images.shape[-2:]] * len(images))

    def eager(images):
        with torch.inference_mode(), autocast:
            return post_process(model(pixel_values=images), images)

    def openvino_runner(compiled):
        request = compiled.create_infer_request()

        def run(images):
            outputs = request.infer([images.numpy()])
            with torch.inference_mode():
                return post_process(
                    RTDetrObjectDetectionOutput(
                        logits=torch.from_numpy(outputs[0]),
                        pred_boxes=torch.from_numpy(outputs[1])), images)

        return run

    env = dict(torch=torch.__version__,
               transformers=transformers.__version__, threads=threads,
               cpu=platform.processor() or platform.machine(),
               cpu_count=os.cpu_count(), python=platform.python_version())
    openvino = [b for b in args.backends if b in OPENVINO_PRECISIONS]
    if openvino:
        env['openvino'] = importlib.metadata.version('openvino')
    if 'openvino-int8' in openvino:
        env['nncf'] = importlib.metadata.version('nncf')
    if args.device == 'cuda':
        env['gpu'] = torch.cuda.get_device_name()
    rows = []
    for size in args.sizes:
        for batch_size in args.batch_sizes:
            gen = torch.Generator().manual_seed(args.seed)
            images = torch.rand(batch_size, 3, size, size,
                                generator=gen).to(args.device)
            runners = {'pytorch': eager} if 'pytorch' in args.backends \
                else {}
            if openvino:
                converted = convert_to_openvino(model, images)
                for backend in openvino:
                    precision = OPENVINO_PRECISIONS[backend]
                    ir = converted
                    if precision == 'int8':
                        ir, counts = quantize(converted, torch.rand(
                            CALIBRATION_IMAGES, *images.shape,
                            generator=gen))
                        print(counts, flush=True)
                    runners[backend] = openvino_runner(
                        compile_for_cpu(ir, precision, threads))
            if 'openvino-f32' in runners:
                # Checked against eager even when only OpenVINO is timed
                # (eager is fp32 here: OpenVINO needs --dtype fp32).
                print(check_agreement(compare_detections, eager(images),
                                      runners['openvino-f32'](images), size),
                      flush=True)
            times = timing.time_runners(runners, images, args.warmup,
                                     args.repeats)
            for backend in args.backends:
                row = dict(model=f'hf_rtdetr_{args.variant}',
                           backend=backend, device=args.device,
                           dtype=args.dtype, batch_size=batch_size,
                           size=size, seed=args.seed, warmup=args.warmup,
                           environment=env,
                           **timing.summarize(times[backend], batch_size))
                rows.append(row)
                print(f'{row["model"]} {backend} {args.device} {args.dtype} '
                      f'batch {batch_size} {size}x{size}: median '
                      f'{row["median_ms"]:.1f} ms, p90 {row["p90_ms"]:.1f} '
                      f'ms, {row["images_per_s"]:.2f} images/s', flush=True)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(rows, f, indent=2)
        print(f'Wrote {args.out}')


if __name__ == '__main__':
    main()
