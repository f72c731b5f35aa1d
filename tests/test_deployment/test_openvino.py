# Copyright (c) OpenMMLab. All rights reserved.
"""OpenVINO IR of the tiny detector (``tiny`` of ``tests/conftest.py``) at
64 x 64, checked against PyTorch, and of the COCO s12 at 160 x 160.

One export of the tiny detector (through the CLI, with its own f32
verification on three generated 320 x 240 images) serves the other tests
of the module.
"""
import argparse
import json
import os
import re
from pathlib import Path

import openvino as ov
import openvino.opset13 as opset13
import pytest
import torch
from helpers import assert_same_predictions, run

from mmriformer.apis import build_model, infer, infer_exported
from mmriformer.datasets.synthetic_shapes import DEFAULT_CLASSES as CLASSES
from mmriformer.deployment import (DeployedDetector, OpenVINODetector,
                                   evaluate_onnx, export_openvino,
                                   load_detector, preprocess, read_image,
                                   verify_detector)
from mmriformer.deployment.cli import open_exported, verification_images
from mmriformer.deployment.openvino_detector import (FLOAT_MODULES,
                                                     TOLERANCES)
from mmriformer.models import switch_to_deploy
from mmriformer.testing import randomize_

ROOT = Path(__file__).parents[2]
EXPORT = ROOT / 'tools/deployment/export_openvino.py'
S12 = str(ROOT / 'configs/rtdetr_riformer_s12.py')
SIZE = (64, 64)


@pytest.fixture(scope='module')
def exported(tiny, tmp_path_factory):
    """The tiny detector in deploy form, its validation images and the IR
    the CLI exported at 64 x 64 with a dynamic batch."""
    root = tmp_path_factory.mktemp('openvino')
    xml = root / 'tiny.xml'
    proc = run(EXPORT, tiny['config'], tiny['ckpts']['good'], xml, '--size',
               *SIZE, '--dynamic-batch', cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert 'f32, input 64x64, batch dynamic' in proc.stdout
    assert 'OpenVINO (f32, ' in proc.stdout
    assert 'matches PyTorch on 3 images' in proc.stdout
    model, _, _ = load_detector(str(tiny['config']),
                                str(tiny['ckpts']['good']))
    images = [read_image(str(p))
              for p in sorted((tiny['data'] / 'val').iterdir())]
    return DeployedDetector(model), images, str(xml)


def test_f32_equals_pytorch(exported):
    """Scores to 1e-4, boxes to 0.1 px, alone and as a batch of two; the
    weights stay float32 in the file."""
    deployed, images, xml = exported
    detector = OpenVINODetector(xml, 'f32', num_threads=1)
    diffs = verify_detector(deployed, detector, images)
    assert diffs['max_score_diff'] <= 1e-4 and diffs['max_box_diff'] <= 0.1
    constants = [op.get_element_type() for op in
                 ov.Core().read_model(xml).get_ordered_ops()
                 if op.get_type_name() == 'Constant']
    assert ov.Type.f32 in constants and ov.Type.f16 not in constants


def test_s12_f32_equals_pytorch(tmp_path):
    """The COCO s12 (ImageNet's normalisation folded into the graph) at
    160 x 160, the smallest size with a token for each of its 300 queries:
    OpenVINO f32 equals PyTorch on three generated 320 x 240 images."""
    torch.manual_seed(0)
    model = build_model(S12, {'model.data_preprocessor.batch_augments': None})
    # Layer scales away from their initial 1e-5, so that the blocks count.
    randomize_(model.backbone)
    randomize_(model.neck, seed=1)
    deployed = DeployedDetector(switch_to_deploy(model).eval())
    classes = tuple(f'class{i}' for i in range(80))
    xml = export_openvino(deployed, str(tmp_path / 's12.xml'), (160, 160),
                          {'classes': classes})
    diffs = verify_detector(deployed, OpenVINODetector(xml, 'f32'),
                            verification_images())
    assert diffs['max_score_diff'] <= 1e-4 and diffs['max_box_diff'] <= 0.1


def test_metadata_round_trip(exported):
    xml = exported[2]
    detector = OpenVINODetector(xml)
    assert detector.classes == CLASSES
    assert (detector.input_size, detector.batch_size) == (SIZE, None)
    # The exported precision and all the CPUs of the process, unless told.
    assert detector.precision == 'f32'
    assert detector.num_threads == len(os.sched_getaffinity(0))
    assert OpenVINODetector(xml, num_threads=1).num_threads == 1


def test_bf16_is_close(exported):
    """bf16 computes (it differs from float32) and its detections stay
    within the loose bf16 tolerances (scores 0.05, boxes 2 px: bf16 keeps
    8 significant bits; see ``TOLERANCES``)."""
    deployed, images, xml = exported
    if 'BF16' not in ov.Core().get_property('CPU',
                                            'OPTIMIZATION_CAPABILITIES'):
        with pytest.raises(ValueError, match='this CPU.*bf16'):
            OpenVINODetector(xml, 'bf16')
        return
    detector = OpenVINODetector(xml, 'bf16')
    assert detector.precision == 'bf16'
    diffs = verify_detector(deployed, detector, images, **TOLERANCES['bf16'])
    assert diffs['max_score_diff'] > 1e-6


def test_nodes_named_by_module(exported):
    """Every convolution and matrix product of the IR is named after the
    module of the model that computes it."""
    names = dict(exported[0].detector.named_modules())
    ops = [op for op in ov.Core().read_model(exported[2]).get_ordered_ops()
           if op.get_type_name() in ('Convolution', 'MatMul')]
    modules = {op.get_friendly_name().split('/')[0] for op in ops}
    assert len(ops) > 20 and modules <= set(names)
    assert {'backbone.patch_embed.proj', 'bbox_head.cls_branches.0',
            'decoder.layers.0.cross_attn.sampling_offsets'} <= modules


def quantized_modules(xml):
    """The modules whose convolutions and matrix products take an int8
    (fake-quantised) input in the IR ``xml``."""
    modules = set()
    for op in ov.Core().read_model(xml).get_ordered_ops():
        if op.get_type_name() == 'FakeQuantize':
            for target in op.output(0).get_target_inputs():
                node = target.get_node()
                if node.get_type_name() in ('Convolution', 'MatMul'):
                    modules.add(node.get_friendly_name().split('/')[0])
    return modules


def test_int8(tiny, exported, tmp_path):
    """The CLI quantises the tiny detector with NNCF on its four training
    images: the IR verifies against PyTorch (loosely), runs in int8 only,
    and its float modules (by default the sampling offsets, attention
    weights and heads; or those given) take no int8 input."""
    deployed, images, _ = exported
    xml = tmp_path / 'int8.xml'
    proc = run(EXPORT, tiny['config'], tiny['ckpts']['good'], xml, '--size',
               *SIZE, '--precision', 'int8', '--calibration-images',
               tiny['data'] / 'train', cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert 'int8, input 64x64, batch 1, calibrated on 4 images' in proc.stdout
    assert 'OpenVINO (int8, ' in proc.stdout
    detector = OpenVINODetector(str(xml))
    assert detector.precision == 'int8'
    diffs = verify_detector(deployed, detector, images, **TOLERANCES['int8'])
    assert diffs['max_score_diff'] > 1e-6
    quantized = quantized_modules(xml)
    assert 'backbone.patch_embed.proj' in quantized
    assert not any(re.match(rf'({"|".join(FLOAT_MODULES)})(\.|$)', module)
                   for module in quantized)
    with pytest.raises(ValueError, match=r'an IR in int8: it runs in int8 '
                       r'only, not in f32'):
        OpenVINODetector(str(xml), 'f32')
    # Other float modules: the whole decoder.
    decoder = export_openvino(deployed, str(tmp_path / 'decoder.xml'), SIZE,
                              {'classes': CLASSES}, 'int8',
                              calibration_images=images,
                              float_modules=['decoder'])
    quantized = quantized_modules(decoder)
    assert 'backbone.patch_embed.proj' in quantized
    assert not any(m.startswith('decoder.') for m in quantized)
    assert 'bbox_head.cls_branches.0' in quantized


def test_int8_arguments(tiny, tmp_path):
    """--precision int8 and --calibration-images go together, and
    --float-modules needs int8; nothing is written."""
    base = (EXPORT, tiny['config'], tiny['ckpts']['good'],
            tmp_path / 'model.xml')
    for extra, message in (
            (('--precision', 'int8'), 'int8 needs --calibration-images'),
            (('--calibration-images', tiny['data']), 'only it takes them'),
            (('--float-modules', 'decoder'), 'for --precision int8 only')):
        proc = run(*base, *extra, cwd=ROOT)
        assert proc.returncode != 0 and message in proc.stderr
    assert not list(tmp_path.iterdir())


def test_infer_backend_writes_the_same_files(tiny, exported, tmp_path):
    """The OpenVINO backend of tools/infer.py writes what the PyTorch one
    writes."""
    xml = exported[2]
    images = tiny['data'] / 'val'
    torch_run = infer(
        str(tiny['config']), str(tiny['ckpts']['good']), str(images),
        str(tmp_path / 'pytorch'), score_thr=0,
        cfg_options={'test_dataloader.dataset.pipeline.1.scale': SIZE})
    ov_run = infer_exported(OpenVINODetector(xml), str(images),
                            str(tmp_path / 'openvino'), score_thr=0)
    written = json.loads((tmp_path / 'openvino/predictions.json').read_text())
    assert written == ov_run
    assert_same_predictions(ov_run, torch_run, tmp_path / 'openvino', SIZE,
                            CLASSES, 20)

def test_evaluation(tiny, exported):
    """The config's test metrics of the IR, as test_onnx.py --backend
    openvino computes them."""
    metrics = evaluate_onnx(OpenVINODetector(exported[2]), tiny['cfg'],
                            progress=False)
    assert 0 <= metrics['coco/bbox_mAP'] <= 1


def test_bad_input(tiny, exported, tmp_path):
    deployed, images, xml = exported
    with pytest.raises(FileNotFoundError, match='IR .*missing.xml does not'):
        OpenVINODetector(str(tmp_path / 'missing.xml'))
    for path in (tiny['config'], tiny['ckpts']['good']):
        with pytest.raises(ValueError, match=(
                r'is not an OpenVINO IR .*: an IR is a \.xml file')):
            OpenVINODetector(str(path))
    not_ir = tmp_path / 'notes.xml'
    not_ir.write_text('<notes/>')
    not_ir.with_suffix('.bin').write_bytes(b'')
    with pytest.raises(ValueError, match='OpenVINO cannot read it'):
        OpenVINODetector(str(not_ir))
    not_ir.with_suffix('.bin').unlink()
    with pytest.raises(FileNotFoundError, match=r'notes\.bin of the'):
        OpenVINODetector(str(not_ir))
    # A valid IR with another interface.
    x = opset13.parameter([1], ov.Type.f32, name='x')
    ov.save_model(ov.Model([opset13.relu(x)], [x]),
                  str(tmp_path / 'other.xml'))
    with pytest.raises(ValueError, match=r"takes \('x',\) and gives"):
        OpenVINODetector(str(tmp_path / 'other.xml'))
    with pytest.raises(ValueError, match="'fp16' is not offered"):
        OpenVINODetector(xml, 'fp16')
    with pytest.raises(ValueError, match='0 threads: give at least 1'):
        OpenVINODetector(xml, num_threads=0)
    # OpenVINO itself would run on inputs of another size.
    inputs, sizes = preprocess(images, (32, 32))
    with pytest.raises(ValueError, match='cannot run .* it takes'):
        OpenVINODetector(xml)(inputs, sizes)
    out = tmp_path / 'model'
    with pytest.raises(ValueError, match='give a path ending in .xml'):
        export_openvino(deployed, str(out), SIZE, {'classes': CLASSES})
    with pytest.raises(ValueError, match='INT8 calibration needs images'):
        export_openvino(deployed, f'{out}.xml', SIZE, {'classes': CLASSES},
                        precision='int8')
    with pytest.raises(ValueError, match='an IR in f32 takes none'):
        export_openvino(deployed, f'{out}.xml', SIZE, {'classes': CLASSES},
                        calibration_images=images)
    for pattern, message in (('neck.nothing', 'names no module'),
                             ('(decoder', 'is not a regular expression')):
        with pytest.raises(ValueError, match=message):
            export_openvino(deployed, f'{out}.xml', SIZE,
                            {'classes': CLASSES}, precision='int8',
                            calibration_images=images,
                            float_modules=[pattern])
    with pytest.raises(ValueError, match=r'an IR in f32: it runs in f32 or '
                       r'bf16, not in int8 \(export_openvino.py'):
        OpenVINODetector(xml, 'int8')
    assert not list(tmp_path.glob('model*'))


def test_cli_refuses_outputs_before_the_work(tiny, tmp_path):
    """export_openvino.py checks the .bin as well as the .xml."""
    (tmp_path / 'model.bin').write_text('kept')
    proc = run(EXPORT, tiny['config'], tiny['ckpts']['good'],
               tmp_path / 'model.xml', cwd=ROOT)
    assert proc.returncode != 0
    assert 'model.bin exists and is not replaced' in proc.stderr
    assert 'Wrote' not in proc.stdout
    assert not (tmp_path / 'model.xml').exists()
    assert (tmp_path / 'model.bin').read_text() == 'kept'


def test_runtime_arguments(tiny, exported, tmp_path, capsys):
    """What infer.py and test_onnx.py do with --backend openvino
    --precision f32 --num-threads 1; infer.py then keeps predictions.json
    without --force."""
    args = argparse.Namespace(backend='openvino', precision='f32',
                              num_threads=1)
    detector = open_exported(args, exported[2])
    assert (detector.precision, detector.num_threads) == ('f32', 1)
    assert 'OpenVINO computes in f32 with 1 threads' in capsys.readouterr(
    ).out
    (tmp_path / 'predictions.json').write_text('mine')
    with pytest.raises(ValueError, match='predictions.json exists and is '
                       'not replaced'):
        infer_exported(detector, str(tiny['data'] / 'val'), str(tmp_path))
    assert (tmp_path / 'predictions.json').read_text() == 'mine'
    assert not (tmp_path / 'vis').exists()
