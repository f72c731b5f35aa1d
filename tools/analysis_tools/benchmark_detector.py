# Copyright (c) OpenMMLab. All rights reserved.
"""Images/s and latency of RT-DETR detectors, per config and form.

Forms: ``train`` (the model as the config builds it), ``deploy`` (folded by
``switch_to_deploy``; on the CPU in float32 it takes the oneDNN fast path),
``onnxruntime`` (the deploy form exported by
:func:`~mmriformer.deployment.export_onnx` and run by onnxruntime; float32
only) and, when asked for, ``onnxruntime-int8`` (that export quantised by
:func:`~mmriformer.deployment.quantize_int8`, calibrated on a few generated
shapes images). Each timed call is the whole inference path with the
official export interface (:class:`~mmriformer.deployment.DeployedDetector`):
``[0, 1]`` RGB images in; labels, boxes and scores of the top-k detections
out, post-processing included.

Every form of a config gets the same weights (``--checkpoint``, or random
weights of sane magnitude from ``--seed``) and the same random images of
``size x size``. Before anything is timed, the forms' detections are
checked against the first form's: scores within 1e-4 and boxes within
0.1 px (in float32; fp16/bf16 runs are checked the same way in float32,
since rounding in half precision moves scores by more than that). The INT8
form is not checked so: quantisation moves scores by far more than that,
and its accuracy is a matter of mAP (``tools/deployment/test_onnx.py``).
Then each form is warmed up and the timed calls are interleaved (train,
deploy, onnxruntime, train, ...), so a drift in the machine's speed hits
every form alike. Latency is the median and the 90th percentile of the calls;
images/s is the batch size over the median.

``--out`` writes a JSON list of rows (``ROW_KEYS``, the settings, every
call's time and the environment). ``--peer-json`` adds the rows of such a
list written by another tool (e.g.
``tools/analysis_tools/hf_rtdetr_benchmark.py``: HF transformers' RT-DETR,
run in an environment of its own) to the table, with the speed-up
of each of our rows over the peer row of the same device, dtype, batch and
size.

Example::

    python tools/analysis_tools/benchmark_detector.py \\
        configs/rtdetr_riformer_s12.py configs/rtdetr_riformer_s24.py \\
        --sizes 640 320 --batch-sizes 1 --repeats 20 \\
        --peer-json work_dirs/hf_rtdetr.json --out work_dirs/bench.json
"""
import argparse
import copy
import json
import math
import os
import os.path as osp
import platform
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from typing import Callable, Dict, List, Optional, Sequence

import onnxruntime
import torch
from mmengine.config import DictAction
from torch import Tensor, nn

from mmriformer.apis import load_strict
from mmriformer.datasets import generate_shapes_dataset
from mmriformer.deployment import (DeployedDetector, ONNXRuntimeDetector,
                                   compare_detections, export_onnx,
                                   quantize_int8, read_image)
from mmriformer.models.utils.onednn import onednn_enabled
from mmriformer.testing import randomize_
from mmriformer.utils.cli_checks import earlier_records

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from detector_complexity import build_detector, deploy_copy  # noqa: E402

FORMS = ('train', 'deploy', 'onnxruntime', 'onnxruntime-int8')
ONNX_FORMS = ('onnxruntime', 'onnxruntime-int8')
# Images the INT8 form is calibrated on; its speed does not depend on them.
CALIBRATION_IMAGES = 8
DTYPES = {
    'fp32': torch.float32,
    'fp16': torch.float16,
    'bf16': torch.bfloat16
}
# Agreement required of the forms' detections, in float32.
SCORE_TOL = 1e-4
BOX_TOL = 0.1  # pixels
PROVIDERS = {'cpu': 'CPUExecutionProvider', 'cuda': 'CUDAExecutionProvider'}
# Keys of a result row (ours and a peer's).
ROW_KEYS = ('model', 'form', 'device', 'dtype', 'batch_size', 'size',
            'median_ms', 'p90_ms', 'images_per_s')

Detections = Dict[str, Tensor]  # labels (N, K), boxes (N, K, 4), scores
Runner = Callable[[Tensor], Detections]


class FormMismatch(RuntimeError):
    """Two forms of one detector predict different detections."""


def check_device(device: str, cuda_graphs: bool) -> None:
    """Raise a clear error for settings this machine cannot run.

    Args:
        device (str): ``'cpu'`` or ``'cuda'``.
        cuda_graphs (bool): Whether CUDA graphs are asked for.

    Raises:
        ValueError: The device, or CUDA graphs, are not available.
    """
    if device == 'cuda' and not torch.cuda.is_available():
        raise ValueError(
            f'--device cuda: CUDA is not available here (torch '
            f'{torch.__version__}, torch.cuda.is_available() is False); '
            f'use --device cpu or a machine with a GPU.')
    if cuda_graphs and device != 'cuda':
        raise ValueError('--cuda-graphs needs --device cuda: CUDA graphs '
                         'replay GPU work only.')


def onnxruntime_missing(device: str, dtype: str) -> Optional[str]:
    """Why the onnxruntime forms cannot run here, or None.

    Args:
        device (str): ``'cpu'`` or ``'cuda'``.
        dtype (str): A key of ``DTYPES``.

    Returns:
        str | None: The reason.
    """
    if dtype != 'fp32':
        return 'the ONNX export is float32'
    if PROVIDERS[device] not in onnxruntime.get_available_providers():
        return f'onnxruntime has no {PROVIDERS[device]}'
    return None


def build_forms(config: str,
                forms: Sequence[str],
                checkpoint: Optional[str] = None,
                seed: int = 0,
                cfg_options: Optional[dict] = None) -> Dict[str, nn.Module]:
    """The PyTorch forms of one detector, with the same weights, on the CPU.

    Args:
        config (str): Path of the config.
        forms (Sequence[str]): Forms wanted; the onnxruntime ones need
            the deploy form, which is then built too.
        checkpoint (str, optional): Weights of the train form; random
            weights from ``seed`` without.
        seed (int): Seed of the random weights. Defaults to 0.
        cfg_options (dict, optional): Overrides merged into the config.

    Returns:
        dict[str, nn.Module]: ``train`` and/or ``deploy`` detectors in eval
        mode.
    """
    torch.manual_seed(seed)
    model = build_detector(config, cfg_options)
    if checkpoint:
        load_strict(model, checkpoint, config)
    else:
        # Layer scales of 1e-5 would hide a wrong fold from the check.
        randomize_(model, seed)
    models = {}
    if 'train' in forms:
        models['train'] = model
    if 'deploy' in forms or set(ONNX_FORMS) & set(forms):
        models['deploy'] = deploy_copy(model)
    return models


def original_sizes(images: Tensor) -> Tensor:
    """The official ``orig_target_sizes`` of unscaled images: (width,
    height) per image, int64, (N, 2)."""
    n, _, h, w = images.shape
    return torch.tensor([[w, h]] * n, device=images.device)


def torch_runner(model: nn.Module, device: str, dtype: str,
                 compile_model: bool = False) -> Runner:
    """A PyTorch form as ``images -> detections``, through the export's
    interface (:class:`~mmriformer.deployment.DeployedDetector`: the whole
    inference path, post-processing included, in tensor operations).

    Args:
        model (nn.Module): An RT-DETR detector.
        device (str): Where it runs.
        dtype (str): ``fp32``, or a half dtype run under autocast (anchors
            and box maths stay float32, see ``at_least_float32``).
        compile_model (bool): Run it through ``torch.compile``, specialised
            to the input's shape (each batch size gets its own static
            graph, not a dynamic one). Defaults to False.

    Returns:
        Callable: Float RGB images in [0, 1], (N, 3, H, W) on ``device``,
        to a dict of ``labels`` (N, K), ``boxes`` (N, K, 4, xyxy input
        pixels) and ``scores`` (N, K).
    """
    path = DeployedDetector(model.to(device).eval())
    if compile_model:
        path = torch.compile(path, dynamic=False)
    autocast = nullcontext() if dtype == 'fp32' else torch.autocast(
        device, DTYPES[dtype])

    def run(images: Tensor) -> Detections:
        with torch.inference_mode(), autocast:
            labels, boxes, scores = path(images, original_sizes(images))
        return dict(labels=labels, boxes=boxes, scores=scores)

    return run


def export_deploy(model: nn.Module, size: int, dynamic_batch: bool,
                  folder: str) -> str:
    """Export the deploy form for ``size x size`` inputs.

    Args:
        model (nn.Module): The deploy-form detector, on the CPU.
        size (int): Side of the square input.
        dynamic_batch (bool): Export with a dynamic batch dimension.
        folder (str): Where the ONNX file is written.

    Returns:
        str: Path of the file.
    """
    path = osp.join(folder, f'deploy_{size}.onnx')
    num_classes = model.bbox_head.num_classes
    return export_onnx(
        DeployedDetector(copy.deepcopy(model).cpu()), path, (size, size),
        dataset_meta=dict(classes=[str(i) for i in range(num_classes)]),
        dynamic_batch=dynamic_batch)


def quantize_export(path: str, size: int, folder: str) -> str:
    """The INT8 form of an export, calibrated on generated shapes images
    of ``size x size``.

    Returns:
        str: Path of the INT8 file, beside ``path``.
    """
    root = osp.join(folder, f'calibration_{size}')
    generate_shapes_dataset(root, 'images', num_images=CALIBRATION_IMAGES,
                            image_size=(size, size), min_size=size // 8,
                            max_size=size // 2)
    images = [read_image(osp.join(root, 'images', name))
              for name in sorted(os.listdir(osp.join(root, 'images')))]
    return quantize_int8(path, path.replace('.onnx', '_int8.onnx'), images)


def onnxruntime_runner(path: str, device: str) -> Runner:
    """An ONNX file run by onnxruntime.

    Args:
        path (str): The file.
        device (str): ``'cpu'`` or ``'cuda'`` (onnxruntime's provider).

    Returns:
        Callable: Like :func:`torch_runner`'s; images go to and come back
        from the host each call, as an onnxruntime user's would.
    """
    session = ONNXRuntimeDetector(path, [PROVIDERS[device]])

    def run(images: Tensor) -> Detections:
        outputs = session(images.cpu().numpy(),
                          original_sizes(images).cpu().numpy())
        return {k: torch.from_numpy(v) for k, v in outputs.items()}

    return run


def with_cuda_graph(run: Runner, example: Tensor) -> Runner:
    """Capture ``run`` on ``example``'s shape into a CUDA graph.

    Args:
        run (Callable): A runner on the GPU.
        example (Tensor): Input of the shape the graph replays.

    Returns:
        Callable: Copies the images into the captured input, replays the
        graph and returns the captured outputs (overwritten by the next
        call).

    Raises:
        RuntimeError: The path cannot be captured (e.g. it syncs with the
            host).
    """
    static = example.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):  # kernels picked and memory pooled first
            run(static)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            outputs = run(static)
    except RuntimeError as error:
        raise RuntimeError(
            f'--cuda-graphs: the inference path could not be captured '
            f'({error}). A capture fails on any host sync.') from error

    def replay(images: Tensor) -> Detections:
        static.copy_(images)
        graph.replay()
        return outputs

    return replay


def check_forms_agree(outputs: Dict[str, Detections],
                      image_size: Sequence[int]) -> None:
    """Raise :class:`FormMismatch` unless every form's detections match the
    first form's: scores to 1e-4, boxes to 0.1 px, labels equal, up to
    near-ties at the top-k cut (see
    :func:`~mmriformer.deployment.compare_detections`).

    Args:
        outputs (dict[str, dict]): Detections of each form on the same
            images: ``labels`` (N, K), ``boxes`` (N, K, 4), ``scores``
            (N, K).
        image_size (Sequence[int]): (H, W) of the images.
    """
    names = list(outputs)
    first = {k: v.cpu() for k, v in outputs[names[0]].items()}
    for name in names[1:]:
        other = {k: v.cpu() for k, v in outputs[name].items()}
        for i in range(len(first['scores'])):
            try:
                compare_detections({k: v[i] for k, v in other.items()},
                                   {k: v[i] for k, v in first.items()},
                                   image_size, SCORE_TOL, BOX_TOL)
            except AssertionError as error:
                raise FormMismatch(
                    f'The {name} form does not predict what the {names[0]} '
                    f'form predicts on image {i}: {error}. Timing forms '
                    f'that compute different things would compare '
                    f'nothing.') from error


def time_runners(runners: Dict[str, Runner], images: Tensor, warmup: int,
                 repeats: int) -> Dict[str, List[float]]:
    """Seconds per call of each runner, interleaved across runners.

    Args:
        runners (dict[str, Callable]): The forms.
        images (Tensor): Their input.
        warmup (int): Untimed calls of each first.
        repeats (int): Timed calls of each.

    Returns:
        dict[str, list[float]]: The times, in call order.
    """
    cuda = images.device.type == 'cuda'
    for run in runners.values():
        for _ in range(warmup):
            run(images)
    times = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            run(images)
            if cuda:
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return times


def summarize(times: Sequence[float], batch_size: int) -> dict:
    """Median and 90th percentile latency (ms) and images/s of a form."""
    ms = sorted(t * 1e3 for t in times)
    median = statistics.median(ms)
    p90 = ms[math.ceil(0.9 * len(ms)) - 1]  # nearest rank
    return dict(median_ms=median, p90_ms=p90,
                images_per_s=batch_size * 1e3 / median,
                times_ms=[t * 1e3 for t in times])


def benchmark_config(config: str, args: argparse.Namespace,
                     folder: str) -> List[dict]:
    """Check and time the forms of one config at each size and batch.

    Args:
        config (str): Path of the config.
        args (argparse.Namespace): The command line (see
            :func:`parse_args`).
        folder (str): Where ONNX files are written.

    Returns:
        list[dict]: One row per form, size and batch size: ``ROW_KEYS``,
        the settings, the times of every call (``times_ms``) and the
        :func:`environment`.

    Raises:
        FormMismatch: Two forms disagree.
    """
    models = build_forms(config, args.forms, args.checkpoint, args.seed,
                         args.cfg_options)
    env = environment()
    rows = []
    for size in args.sizes:
        onnx_runners = {}
        if set(ONNX_FORMS) & set(args.forms):
            path = export_deploy(models['deploy'], size,
                                 args.batch_sizes != [1], folder)
            if 'onnxruntime' in args.forms:
                onnx_runners['onnxruntime'] = onnxruntime_runner(
                    path, args.device)
            if 'onnxruntime-int8' in args.forms:
                onnx_runners['onnxruntime-int8'] = onnxruntime_runner(
                    quantize_export(path, size, folder), args.device)
        for batch_size in args.batch_sizes:
            gen = torch.Generator().manual_seed(args.seed)
            images = torch.rand(batch_size, 3, size, size,
                                generator=gen).to(args.device)
            timed, checked = {}, {}
            for form in args.forms:
                if form in onnx_runners:
                    timed[form] = onnx_runners[form]
                    continue
                timed[form] = torch_runner(models[form], args.device,
                                           args.dtype, args.compile)
                if args.cuda_graphs:
                    timed[form] = with_cuda_graph(timed[form], images)
                checked[form] = timed[form] if args.dtype == 'fp32' else \
                    torch_runner(models[form], args.device, 'fp32')
            if 'onnxruntime' in onnx_runners:
                # The export is checked against PyTorch even when only it
                # is timed.
                checked = checked or {'deploy': torch_runner(
                    models['deploy'], args.device, 'fp32')}
                checked['onnxruntime'] = onnx_runners['onnxruntime']
            if len(checked) > 1:
                check_forms_agree(
                    {form: run(images) for form, run in checked.items()},
                    (size, size))
            times = time_runners(timed, images, args.warmup, args.repeats)
            for form in args.forms:
                rows.append(dict(
                    model=osp.splitext(osp.basename(config))[0],
                    config=config, form=form, device=args.device,
                    dtype=args.dtype, batch_size=batch_size, size=size,
                    compiled=args.compile and form not in ONNX_FORMS,
                    cuda_graphs=args.cuda_graphs and form not in ONNX_FORMS,
                    checkpoint=args.checkpoint, seed=args.seed,
                    warmup=args.warmup, environment=env,
                    **summarize(times[form], batch_size)))
    return rows


def environment() -> dict:
    """What the figures depend on besides the model."""
    env = dict(torch=torch.__version__, onnxruntime=onnxruntime.__version__,
               threads=torch.get_num_threads(),
               cpu=platform.processor() or platform.machine(),
               cpu_count=os.cpu_count(), python=platform.python_version(),
               onednn_fast_path=onednn_enabled())
    if torch.cuda.is_available():
        env['gpu'] = torch.cuda.get_device_name()
    return env


def load_peer_rows(path: str) -> List[dict]:
    """The rows of a peer's JSON: a list of rows in this tool's schema.

    Raises:
        ValueError: The file is not such a list.
    """
    rows = earlier_records(path, ROW_KEYS)
    if rows is None:
        raise ValueError(f'--peer-json {path}: expected a JSON list of rows '
                         f'with {", ".join(ROW_KEYS)}.')
    return [dict(r, peer=True) for r in rows]


def format_table(rows: List[dict]) -> str:
    """A table of the rows; ours get their speed-up over a peer row of the
    same device, dtype, batch and size, when there is one."""
    peers = {(r['device'], r['dtype'], r['batch_size'], r['size']): r
             for r in rows if r.get('peer')}
    head = ('model', 'form', 'device', 'dtype', 'batch', 'size',
            'median ms', 'p90 ms', 'images/s', 'vs peer')
    lines = []
    for r in rows:
        peer = peers.get((r['device'], r['dtype'], r['batch_size'],
                          r['size']))
        speedup = '' if r.get('peer') or peer is None else \
            f'{peer["median_ms"] / r["median_ms"]:.2f}x'
        form = r['form'] + (' (compiled)' if r.get('compiled') else '') + \
            (' (CUDA graph)' if r.get('cuda_graphs') else '')
        lines.append((r['model'] + (' [peer]' if r.get('peer') else ''),
                      form, r['device'], r['dtype'], str(r['batch_size']),
                      str(r['size']), f'{r["median_ms"]:.1f}',
                      f'{r["p90_ms"]:.1f}', f'{r["images_per_s"]:.2f}',
                      speedup))
    widths = [max(len(x) for x in col) for col in zip(head, *lines)]
    return '\n'.join(
        '  '.join(x.ljust(w) for x, w in zip(line, widths)).rstrip()
        for line in [head, *lines])


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', help='config files')
    parser.add_argument('--forms', nargs='+', choices=FORMS,
                        help='default: train, deploy, and onnxruntime '
                        'when it can run (onnxruntime-int8 only on request)')
    parser.add_argument('--batch-sizes', nargs='+', type=int, default=[1])
    parser.add_argument('--sizes', nargs='+', type=int, default=[640],
                        help='sides of the square inputs')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--dtype', choices=tuple(DTYPES), default='fp32')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the PyTorch forms')
    parser.add_argument('--cuda-graphs', action='store_true',
                        help='replay the PyTorch forms as CUDA graphs')
    parser.add_argument('--checkpoint',
                        help='weights (train form); default: random')
    parser.add_argument('--seed', type=int, default=0,
                        help='of the random weights and images')
    parser.add_argument('--warmup', type=int, default=3,
                        help='untimed calls of each form')
    parser.add_argument('--repeats', type=int, default=20,
                        help='timed calls of each form')
    parser.add_argument('--peer-json', nargs='+', default=[],
                        help="peers' figures to print in the same table")
    parser.add_argument('--out', help='write the figures as JSON here')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of every config, e.g. '
        'model.num_queries=100')
    return parser.parse_args(argv)


def check_out(out: Optional[str]) -> None:
    """Raise if writing ``out`` would replace a folder or a file that is not
    an earlier result of this tool."""
    if out is None or not osp.exists(out):
        return
    if osp.isdir(out) or earlier_records(out, ROW_KEYS) is None:
        raise ValueError(f'--out {out} exists and is not an earlier result '
                         f'of this tool; it is not overwritten: give '
                         f'another path or remove it.')


def resolve_forms(args: argparse.Namespace) -> None:
    """Fill in the default forms, or raise if a requested one cannot run.

    Raises:
        ValueError: An onnxruntime form was asked for and cannot run.
    """
    missing = onnxruntime_missing(args.device, args.dtype)
    if args.forms is None:
        args.forms = ['train', 'deploy'] + ([] if missing else
                                            ['onnxruntime'])
        if missing:
            print(f'onnxruntime form left out: {missing}.')
    for form in set(ONNX_FORMS) & set(args.forms):
        if missing:
            raise ValueError(f'--forms {form} cannot run: {missing}.')
    args.forms = list(dict.fromkeys(args.forms))


def main(argv: Optional[List[str]] = None) -> List[dict]:
    args = parse_args(argv)
    # Errors only: its notes on loading an export (constants it leaves
    # unfolded) would bury the table.
    onnxruntime.set_default_logger_severity(3)
    try:
        check_device(args.device, args.cuda_graphs)
        resolve_forms(args)
        for path in args.configs + args.peer_json:
            if not osp.isfile(path):
                raise ValueError(f'{path} does not exist; check the path.')
        peers = [r for path in args.peer_json for r in load_peer_rows(path)]
        check_out(args.out)
    except ValueError as error:
        sys.exit(f'error: {error}')
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for config in args.configs:
            try:
                rows += benchmark_config(config, args, folder)
            except FormMismatch as error:
                sys.exit(f'error: {config}: {error}')
    print(format_table(rows + peers))
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(rows, f, indent=2)
        print(f'Wrote {args.out}')
    return rows


if __name__ == '__main__':
    main()
