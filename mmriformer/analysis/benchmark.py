# Copyright (c) OpenMMLab. All rights reserved.
"""Images/s and latency of RT-DETR detectors, per config and backend
(``tools/analysis_tools/benchmark_detector.py``).

Backends: ``pytorch-train`` (the train form, as the config builds it),
``pytorch-deploy`` (the deploy form, reparameterized by
``switch_to_deploy``; on the CPU in float32 it takes the oneDNN fast path),
``onnxruntime`` (the deploy form exported by
:func:`~mmriformer.deployment.export_onnx` and run by onnxruntime; float32
only) and, when asked for, ``onnxruntime-int8`` (that export quantised by
:func:`~mmriformer.deployment.quantize_int8`, calibrated on a few generated
shapes images), ``openvino-f32`` and ``openvino-bf16`` (the deploy form
exported once by :func:`~mmriformer.deployment.export_openvino`, computing
in the precision of the name) and ``openvino-int8`` (an IR of its own,
quantised by NNCF on the same generated images, its float parts in f32),
run by :class:`~mmriformer.deployment.OpenVINODetector` on the CPU with as
many threads as PyTorch's ``torch.get_num_threads()``; ``--dtype`` fp32
only, since ``--dtype`` is PyTorch's autocast; bf16 needs a CPU with bf16
instructions. Each timed
call is the whole inference path with the official export interface
(:class:`~mmriformer.deployment.DeployedDetector`): ``[0, 1]`` RGB images
in; labels, boxes and scores of the top-k detections out, post-processing
included. The exported backends get the images on the host as NumPy
arrays, as their users would.

Every backend of a config gets the same weights (a checkpoint, or random
weights of sane magnitude from a seed) and the same random images of
``size x size``. Before anything is timed, the backends' detections are
checked against the first backend's: scores within 1e-4 and boxes within
0.1 px (in float32; fp16/bf16 runs are checked the same way in float32,
since rounding in half precision moves scores by more than that). The INT8
files and OpenVINO in bf16 are not checked so: quantisation and bf16's 8
significant bits move scores by far more than that, and their accuracy is
a matter of mAP (``tools/deployment/test_onnx.py``). Then each backend is
warmed up and the timed calls are interleaved
(pytorch-train, pytorch-deploy, onnxruntime, pytorch-train, ...), so a
drift in the machine's speed hits every backend alike. Latency is the
median and the 90th percentile of the calls; images/s is the batch size
over the median.

Rows of results have ``ROW_KEYS``, the settings, every call's time and the
environment; rows of a peer (e.g. ``tools/analysis_tools/
hf_rtdetr_benchmark.py``: HF transformers' RT-DETR, run in an environment
of its own) have ``ROW_KEYS`` too, and :func:`format_table` shows the
speed-up of each of our rows over the peer's eager row (backend
``pytorch``) of the same device, dtype, batch and size and, for a backend
the peer ran too (``openvino-f32``, ``-bf16``, ``-int8``), over the peer's row
of that backend.
"""
import copy
import importlib.metadata
import json
import os
import os.path as osp
import platform
import tempfile
from contextlib import nullcontext
from typing import (Callable, Collection, Dict, List, Optional, Sequence,
                    Tuple)

import numpy as np
import onnxruntime
import torch
from torch import Tensor, nn

from ..apis import load_strict
from ..datasets import generate_shapes_dataset
from ..deployment import (DeployedDetector, ExportedDetector,
                          ONNXRuntimeDetector, OpenVINODetector,
                          compare_detections, export_onnx, export_openvino,
                          quantize_int8, read_image)
from ..deployment.openvino_detector import import_optional
from ..models.utils.onednn import onednn_enabled
from ..testing import randomize_
from ..utils.cli_checks import check_output_file
from .complexity import build_detector, count_macs, deploy_copy
from .timing import summarize, time_runners

# The form of the detector each backend runs (the onnxruntime and OpenVINO
# ones run the deploy form's export).
BACKENDS = {
    'pytorch-train': 'train',
    'pytorch-deploy': 'deploy',
    'onnxruntime': 'deploy',
    'onnxruntime-int8': 'deploy',
    'openvino-f32': 'deploy',
    'openvino-bf16': 'deploy',
    'openvino-int8': 'deploy',
}
ONNX_BACKENDS = ('onnxruntime', 'onnxruntime-int8')
# The precision each OpenVINO backend computes in. One IR serves f32 and
# bf16 (a setting of the compiled model); int8 has its own, quantised.
OPENVINO_BACKENDS = {
    'openvino-f32': 'f32',
    'openvino-bf16': 'bf16',
    'openvino-int8': 'int8'
}
# The exported backends held to the agreement check (the others compute
# in lower precision).
CHECKED_EXPORTS = ('onnxruntime', 'openvino-f32')
# Images the INT8 file is calibrated on; its speed does not depend on them.
CALIBRATION_IMAGES = 8
DTYPES = {
    'fp32': torch.float32,
    'fp16': torch.float16,
    'bf16': torch.bfloat16
}
# Agreement required of the backends' detections, in float32.
SCORE_TOL = 1e-4
BOX_TOL = 0.1  # pixels
PROVIDERS = {'cpu': 'CPUExecutionProvider', 'cuda': 'CUDAExecutionProvider'}
# Keys of a result row (ours and a peer's).
ROW_KEYS = ('model', 'backend', 'device', 'dtype', 'batch_size', 'size',
            'median_ms', 'p90_ms', 'images_per_s')

Detections = Dict[str, Tensor]  # labels (N, K), boxes (N, K, 4), scores
Runner = Callable[[Tensor], Detections]


class BackendMismatch(RuntimeError):
    """Two backends of one detector predict different detections."""


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
    """Why the onnxruntime backends cannot run here, or None.

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


def openvino_missing(precision: str, device: str, dtype: str) -> Optional[str]:
    """Why an OpenVINO backend cannot run here, or None.

    Args:
        precision (str): What it computes in, a value of
            ``OPENVINO_BACKENDS``.
        device (str): ``'cpu'`` or ``'cuda'``.
        dtype (str): A key of ``DTYPES``.

    Returns:
        str | None: The reason.
    """
    if device != 'cpu':
        return 'OpenVINO runs on the CPU only; use --device cpu'
    if dtype != 'fp32':
        return ('an OpenVINO backend computes in the precision of its name '
                "(--dtype is PyTorch's autocast); use --dtype fp32")
    try:
        ov = import_optional('openvino')
        if precision == 'int8':
            import_optional('nncf')
    except ImportError as error:
        return str(error).rstrip('.')
    if precision == 'bf16' and 'BF16' not in ov.Core().get_property(
            'CPU', 'OPTIMIZATION_CAPABILITIES'):
        return ('this CPU cannot compute in bf16 (it has neither '
                'AVX512-BF16 nor AMX); leave openvino-bf16 out')
    return None


def backend_missing(backend: str, device: str, dtype: str) -> Optional[str]:
    """Why a backend cannot run here, or None.

    Args:
        backend (str): A key of ``BACKENDS``.
        device (str): ``'cpu'`` or ``'cuda'``.
        dtype (str): A key of ``DTYPES``.

    Returns:
        str | None: The reason (the PyTorch backends always run).
    """
    if backend in ONNX_BACKENDS:
        return onnxruntime_missing(device, dtype)
    if backend in OPENVINO_BACKENDS:
        return openvino_missing(OPENVINO_BACKENDS[backend], device, dtype)
    return None


def resolve_backends(backends: Optional[Sequence[str]], device: str,
                     dtype: str) -> Tuple[List[str], Optional[str]]:
    """The backends to run, without repeats.

    Args:
        backends (Sequence[str], optional): Keys of ``BACKENDS``; None for
            the default: pytorch-train, pytorch-deploy and, when it can run,
            onnxruntime.
        device (str): ``'cpu'`` or ``'cuda'``.
        dtype (str): A key of ``DTYPES``.

    Returns:
        tuple[list[str], str | None]: The backends, and a note for the
        user when the default leaves onnxruntime out.

    Raises:
        ValueError: A backend asked for is unknown or cannot run here.
    """
    if backends is None:
        missing = onnxruntime_missing(device, dtype)
        backends = ['pytorch-train', 'pytorch-deploy'] + (
            [] if missing else ['onnxruntime'])
        note = f'onnxruntime left out: {missing}.' if missing else None
        return backends, note
    for backend in backends:
        if backend not in BACKENDS:
            raise ValueError(f'--backends {backend} is not a backend; give '
                             f'some of {", ".join(BACKENDS)}.')
        missing = backend_missing(backend, device, dtype)
        if missing:
            raise ValueError(f'--backends {backend} cannot run: {missing}.')
    return list(dict.fromkeys(backends)), None


def build_forms(config: str,
                forms: Collection[str],
                checkpoint: Optional[str] = None,
                seed: int = 0,
                cfg_options: Optional[dict] = None) -> Dict[str, nn.Module]:
    """The train and/or deploy form of one detector, with the same weights,
    on the CPU.

    Args:
        config (str): Path of the config.
        forms (Collection[str]): ``'train'`` and/or ``'deploy'``.
        checkpoint (str, optional): Weights of the train form; random
            weights from ``seed`` without.
        seed (int): Seed of the random weights. Defaults to 0.
        cfg_options (dict, optional): Overrides merged into the config.

    Returns:
        dict[str, nn.Module]: The detectors by form, in eval mode.
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
    if 'deploy' in forms:
        models['deploy'] = deploy_copy(model)
    return models


def original_sizes(images: Tensor) -> Tensor:
    """The official ``orig_target_sizes`` of unscaled images: (width,
    height) per image, int64, (N, 2)."""
    n, _, h, w = images.shape
    return torch.tensor([[w, h]] * n, device=images.device)


def torch_runner(model: nn.Module, device: str, dtype: str,
                 compile_model: bool = False) -> Runner:
    """A detector in PyTorch as ``images -> detections``, through the
    export's interface (:class:`~mmriformer.deployment.DeployedDetector`:
    the whole inference path, post-processing included, in tensor
    operations).

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
                  path: str, **openvino_args) -> str:
    """Export the deploy form for ``size x size`` inputs.

    Args:
        model (nn.Module): The deploy-form detector, on the CPU.
        size (int): Side of the square input.
        dynamic_batch (bool): Export with a dynamic batch dimension.
        path (str): The file: ONNX (``.onnx``, :func:`export_onnx`) or
            an OpenVINO IR (``.xml``, :func:`export_openvino`).
        **openvino_args: For an IR: ``precision`` and
            ``calibration_images`` of :func:`export_openvino`.

    Returns:
        str: ``path``.
    """
    export = export_openvino if path.endswith('.xml') else export_onnx
    num_classes = model.bbox_head.num_classes
    return export(
        DeployedDetector(copy.deepcopy(model).cpu()), path, (size, size),
        dataset_meta=dict(classes=[str(i) for i in range(num_classes)]),
        dynamic_batch=dynamic_batch, **openvino_args)


def calibration_images(size: int, folder: str) -> List[np.ndarray]:
    """Generated shapes images of ``size x size`` to calibrate an INT8 file
    on; its speed does not depend on them.

    Args:
        size (int): Side of the square images.
        folder (str): Where they are written.

    Returns:
        list[np.ndarray]: The decoded images.
    """
    root = osp.join(folder, f'calibration_{size}')
    generate_shapes_dataset(root, 'images', num_images=CALIBRATION_IMAGES,
                            image_size=(size, size), min_size=size // 8,
                            max_size=size // 2)
    return [read_image(osp.join(root, 'images', name))
            for name in sorted(os.listdir(osp.join(root, 'images')))]


def exported_runner(detector: ExportedDetector) -> Runner:
    """An exported file run by its runtime (onnxruntime, OpenVINO).

    Args:
        detector (ExportedDetector): The loaded file.

    Returns:
        Callable: Like :func:`torch_runner`'s; images go to and come back
        from the host each call, as a user of the runtime's would.
    """

    def run(images: Tensor) -> Detections:
        outputs = detector(images.cpu().numpy(),
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


def check_backends_agree(outputs: Dict[str, Detections],
                         image_size: Sequence[int]) -> None:
    """Raise :class:`BackendMismatch` unless every backend's detections
    match the first backend's: scores to 1e-4, boxes to 0.1 px, labels
    equal, up to near-ties at the top-k cut (see
    :func:`~mmriformer.deployment.compare_detections`).

    Args:
        outputs (dict[str, dict]): Detections of each backend on the same
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
                raise BackendMismatch(
                    f'{name} does not predict what {names[0]} predicts on '
                    f'image {i}: {error}. Timing backends that compute '
                    f'different things would compare nothing.') from error


def exported_runners(model: nn.Module, backends: Sequence[str], size: int,
                     dynamic_batch: bool, device: str,
                     folder: str) -> Dict[str, Runner]:
    """The onnxruntime and OpenVINO backends among ``backends`` for one
    input size; each file is exported once.

    Args:
        model (nn.Module): The deploy-form detector.
        backends (Sequence[str]): Keys of ``BACKENDS``.
        size (int): Side of the square input.
        dynamic_batch (bool): Export with a dynamic batch dimension.
        device (str): ``'cpu'`` or ``'cuda'``.
        folder (str): Where the files are written.

    Returns:
        dict[str, Callable]: The exported backends asked for.
    """
    runners = {}
    # One set of images calibrates both INT8 files.
    calibration = calibration_images(size, folder) if {
        'onnxruntime-int8', 'openvino-int8'} & set(backends) else None
    if set(ONNX_BACKENDS) & set(backends):
        path = export_deploy(model, size, dynamic_batch,
                             osp.join(folder, f'deploy_{size}.onnx'))
        providers = [PROVIDERS[device]]
        if 'onnxruntime' in backends:
            runners['onnxruntime'] = exported_runner(
                ONNXRuntimeDetector(path, providers))
        if 'onnxruntime-int8' in backends:
            int8 = quantize_int8(path, path.replace('.onnx', '_int8.onnx'),
                                 calibration)
            runners['onnxruntime-int8'] = exported_runner(
                ONNXRuntimeDetector(int8, providers))
    files = {}
    for backend in backends:
        precision = OPENVINO_BACKENDS.get(backend)
        if precision is None:
            continue
        kind = 'int8' if precision == 'int8' else 'float'
        if kind not in files:
            files[kind] = export_deploy(
                model, size, dynamic_batch,
                osp.join(folder, f'deploy_{size}_{kind}.xml'),
                **(dict(precision='int8', calibration_images=calibration)
                   if kind == 'int8' else {}))
        # PyTorch's threads, so that the backends compare fairly.
        runners[backend] = exported_runner(
            OpenVINODetector(files[kind], precision, torch.get_num_threads()))
    return runners


def benchmark_config(config: str,
                     backends: Sequence[str],
                     sizes: Sequence[int] = (640, ),
                     batch_sizes: Sequence[int] = (1, ),
                     device: str = 'cpu',
                     dtype: str = 'fp32',
                     compile_model: bool = False,
                     cuda_graphs: bool = False,
                     checkpoint: Optional[str] = None,
                     seed: int = 0,
                     warmup: int = 3,
                     repeats: int = 20,
                     cfg_options: Optional[dict] = None,
                     with_macs: bool = False) -> List[dict]:
    """Check and time the backends of one config at each size and batch.

    Args:
        config (str): Path of the config.
        backends (Sequence[str]): Keys of ``BACKENDS``, in the order they
            are run (see :func:`resolve_backends`).
        sizes (Sequence[int]): Sides of the square inputs. Defaults to
            (640, ).
        batch_sizes (Sequence[int]): Defaults to (1, ).
        device (str): ``'cpu'`` or ``'cuda'``. Defaults to ``'cpu'``.
        dtype (str): A key of ``DTYPES``; fp16/bf16 run the PyTorch
            backends under autocast. Defaults to ``'fp32'``.
        compile_model (bool): ``torch.compile`` the PyTorch backends.
            Defaults to False.
        cuda_graphs (bool): Replay the PyTorch backends as CUDA graphs.
            Defaults to False.
        checkpoint (str, optional): Weights of the train form; random
            weights from ``seed`` without.
        seed (int): Seed of the random weights and images. Defaults to 0.
        warmup (int): Untimed calls of each backend. Defaults to 3.
        repeats (int): Timed calls of each backend. Defaults to 20.
        cfg_options (dict, optional): Overrides merged into the config.
        with_macs (bool): Give the rows of the deploy form's backends its
            MACs per image (``macs``). Defaults to False.

    Returns:
        list[dict]: One row per backend, size and batch size: ``ROW_KEYS``,
        the settings, the times of every call (``times_ms``), the
        :func:`environment` and, with ``with_macs``, ``macs``.

    Raises:
        BackendMismatch: Two backends disagree.
    """
    models = build_forms(config, {BACKENDS[b] for b in backends},
                         checkpoint, seed, cfg_options)
    env = environment()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            macs = count_macs(models['deploy'], size)['macs'] if with_macs \
                and 'deploy' in models else None
            exported = exported_runners(models.get('deploy'), backends, size,
                                        list(batch_sizes) != [1], device,
                                        folder)
            for batch_size in batch_sizes:
                gen = torch.Generator().manual_seed(seed)
                images = torch.rand(batch_size, 3, size, size,
                                    generator=gen).to(device)
                timed, checked = {}, {}
                for backend in backends:
                    if backend in exported:
                        timed[backend] = exported[backend]
                        continue
                    model = models[BACKENDS[backend]]
                    timed[backend] = torch_runner(model, device, dtype,
                                                  compile_model)
                    if cuda_graphs:
                        timed[backend] = with_cuda_graph(
                            timed[backend], images)
                    checked[backend] = timed[backend] if dtype == 'fp32' \
                        else torch_runner(model, device, 'fp32')
                exact = {name: run for name, run in exported.items()
                         if name in CHECKED_EXPORTS}
                if exact:
                    # The exports are checked against PyTorch even when
                    # only they are timed.
                    checked = checked or {'pytorch-deploy': torch_runner(
                        models['deploy'], device, 'fp32')}
                    checked.update(exact)
                if len(checked) > 1:
                    check_backends_agree(
                        {name: run(images) for name, run in checked.items()},
                        (size, size))
                times = time_runners(timed, images, warmup, repeats)
                for backend in backends:
                    pytorch = backend not in exported
                    rows.append(dict(
                        model=osp.splitext(osp.basename(config))[0],
                        config=config, backend=backend, device=device,
                        dtype=dtype, batch_size=batch_size, size=size,
                        compiled=compile_model and pytorch,
                        cuda_graphs=cuda_graphs and pytorch,
                        checkpoint=checkpoint, seed=seed, warmup=warmup,
                        environment=env,
                        **summarize(times[backend], batch_size),
                        **({} if macs is None or BACKENDS[backend] != 'deploy'
                           else dict(macs=macs))))
    return rows


def openvino_version() -> Optional[str]:
    """OpenVINO's version, without importing it; None if not installed."""
    try:
        return importlib.metadata.version('openvino')
    except importlib.metadata.PackageNotFoundError:
        return None


def environment() -> dict:
    """What the figures depend on besides the model."""
    env = dict(torch=torch.__version__, onnxruntime=onnxruntime.__version__,
               openvino=openvino_version(), threads=torch.get_num_threads(),
               cpu=platform.processor() or platform.machine(),
               cpu_count=os.cpu_count(), python=platform.python_version(),
               onednn_fast_path=onednn_enabled())
    if torch.cuda.is_available():
        env['gpu'] = torch.cuda.get_device_name()
    return env


def check_benchmark_paths(configs: Sequence[str],
                          peer_files: Sequence[str],
                          out: Optional[str],
                          force: bool = False) -> None:
    """Raise before any work if an input is missing or ``out`` may not be
    written (the tools' one output rule, :func:`check_output_file`).

    Args:
        configs (Sequence[str]): The config files.
        peer_files (Sequence[str]): The peers' JSON files.
        out (str, optional): Where the rows go.
        force (bool): Whether an existing ``out`` may be replaced.
            Defaults to False.

    Raises:
        ValueError: Which path, and what to do.
    """
    for path in [*configs, *peer_files]:
        if not osp.isfile(path):
            raise ValueError(f'{path} does not exist; check the path.')
    if out is not None:
        check_output_file(out, force)


def load_peer_rows(path: str) -> List[dict]:
    """The rows of a peer's JSON: a list of rows with ``ROW_KEYS``.

    Args:
        path (str): The file.

    Returns:
        list[dict]: The rows, each marked ``peer``.

    Raises:
        ValueError: The file is not such a list.
    """
    try:
        with open(path) as f:
            rows = json.load(f)
    except (ValueError, UnicodeDecodeError):
        rows = None
    if not (isinstance(rows, list) and rows and all(
            isinstance(r, dict) and set(ROW_KEYS) <= set(r) for r in rows)):
        raise ValueError(f'--peer-json {path}: expected a JSON list of rows '
                         f'with {", ".join(ROW_KEYS)}.')
    return [dict(r, peer=True) for r in rows]


def format_table(rows: List[dict]) -> str:
    """A table of the rows; ours get their speed-up over peer rows of the
    same device, dtype, batch and size, when there are some: over the
    peer's eager PyTorch (its backend ``pytorch``) and, for a backend the
    peer ran too (e.g. ``openvino-f32``), over that one: the same engine
    in the same precision.

    Args:
        rows (list[dict]): Rows of :func:`benchmark_config` and of
            :func:`load_peer_rows`.

    Returns:
        str: The table, one line per row under a header.
    """
    peers = {(r['backend'], r['device'], r['dtype'], r['batch_size'],
              r['size']): r
             for r in rows if r.get('peer')}

    def speedup(row: dict, backend: str) -> str:
        peer = peers.get((backend, row['device'], row['dtype'],
                          row['batch_size'], row['size']))
        if row.get('peer') or peer is None:
            return ''
        return f'{peer["median_ms"] / row["median_ms"]:.2f}x'

    head = ('model', 'backend', 'device', 'dtype', 'batch', 'size',
            'median ms', 'p90 ms', 'images/s', 'vs peer',
            'vs peer same backend')
    lines = []
    for r in rows:
        backend = r['backend']
        if r.get('compiled'):
            backend += ' (compiled)'
        if r.get('cuda_graphs'):
            backend += ' (CUDA graph)'
        lines.append((r['model'] + (' [peer]' if r.get('peer') else ''),
                      backend, r['device'], r['dtype'], str(r['batch_size']),
                      str(r['size']), f'{r["median_ms"]:.1f}',
                      f'{r["p90_ms"]:.1f}', f'{r["images_per_s"]:.2f}',
                      speedup(r, 'pytorch'), speedup(r, r['backend'])))
    return align_columns(head, lines)


def align_columns(head: Sequence[str], lines: List[Sequence[str]]) -> str:
    """The lines under the head, each column as wide as its widest cell."""
    widths = [max(len(x) for x in col) for col in zip(head, *lines)]
    return '\n'.join(
        '  '.join(x.ljust(w) for x, w in zip(line, widths)).rstrip()
        for line in [head, *lines])
