# Copyright (c) OpenMMLab. All rights reserved.
"""RIFormer's training recipe: module imitation of a MetaFormer teacher."""
import logging
from contextlib import contextmanager
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmpretrain.models import ImageClassifier
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from ...utils.pretrained import load_pretrained
from ..losses.logit_distillation import logit_distillation_loss
from ..utils.teacher_weights import teacher_weights_for_student

TEACHER = 'teacher.'


def token_mixers(backbone: nn.Module) -> List[Tuple[nn.Module, nn.Module]]:
    """The ``(norm1, token_mixer)`` pair of every MetaFormer block, in
    forward order (RIFormer, PoolFormer and any block with those names)."""
    return [(m.norm1, m.token_mixer) for m in backbone.modules()
            if isinstance(getattr(m, 'token_mixer', None), nn.Module)
            and isinstance(getattr(m, 'norm1', None), nn.Module)]


def mixer_channels(pairs: List[Tuple[nn.Module, nn.Module]]) -> List[int]:
    """Channels of each block, read from its ``norm1``."""
    return [norm.weight.shape[0] for norm, _ in pairs]


@MODELS.register_module()
class ModuleImitationClassifier(ImageClassifier):
    """A classifier trained by RIFormer's module imitation (CVPR 2023).

    The model is the student: an mmpretrain ``ImageClassifier`` (backbone,
    neck, head), usually a RIFormer, whose checkpoints and predictions are
    those of a plain classifier. In training, a frozen MetaFormer teacher
    (e.g. a PoolFormer of the same arch) sees the same batch, and the
    student's loss is

    - ``kd_weight * T^2 KL(teacher || student)`` on the logits
      (:func:`logit_distillation_loss`);
    - per block, the student's ``norm1 + token_mixer`` imitates the
      teacher's: ``imitation_in_weight`` times the mean squared error of
      the token mixers' inputs plus ``imitation_out_weight`` times that of
      their outputs, each averaged over the blocks;
    - ``gt_weight`` times the head's own loss on the labels, 0 by default
      as in the paper.

    ``init_weights`` loads the teacher strictly from ``teacher_checkpoint``
    and, with ``init_student_from_teacher``, copies every teacher weight the
    student has (all but the token mixers) into the student, logging which.

    Checkpoints hold the student only (``backbone.``, ``neck.``, ``head.``),
    so they load into a plain ``ImageClassifier`` and, with
    ``prefix='backbone.'``, into a detector's backbone. The teacher comes
    from ``teacher_checkpoint`` again on resume.

    Args:
        backbone (dict): The student's backbone, in train form.
        teacher (dict): The teacher classifier, e.g. mmpretrain's
            ``ImageClassifier`` with a ``PoolFormer``. Same number of
            blocks, block widths and classes as the student.
        neck (dict, optional): The student's neck.
        head (dict, optional): The student's head.
        teacher_checkpoint (str, optional): The teacher's weights (path or
            URL of a classifier checkpoint). Without, the teacher keeps its
            random initialisation, which only tests want.
        init_student_from_teacher (bool): Start the student from the
            teacher's weights. Defaults to True.
        kd_weight (float): Weight of the logit loss. Defaults to 1.0.
        temperature (float): Logit distillation temperature. Defaults to
            1.0.
        imitation_in_weight (float): Weight of the token-mixer input loss.
            Defaults to 1.0.
        imitation_out_weight (float): Weight of the token-mixer output
            loss. Defaults to 1.0.
        gt_weight (float): Weight of the head's label loss. Defaults to 0.
        train_cfg (dict, optional): Batch augments, as ``ImageClassifier``.
        data_preprocessor (dict, optional): As ``ImageClassifier``.
        init_cfg (dict, optional): The student's initialisation.
    """

    def __init__(self,
                 backbone: dict,
                 teacher: dict,
                 neck: Optional[dict] = None,
                 head: Optional[dict] = None,
                 teacher_checkpoint: Optional[str] = None,
                 init_student_from_teacher: bool = True,
                 kd_weight: float = 1.0,
                 temperature: float = 1.0,
                 imitation_in_weight: float = 1.0,
                 imitation_out_weight: float = 1.0,
                 gt_weight: float = 0.0,
                 train_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            train_cfg=train_cfg,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.teacher = MODELS.build(teacher)
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self.teacher_checkpoint = teacher_checkpoint
        self.init_student_from_teacher = init_student_from_teacher
        self.kd_weight = kd_weight
        self.temperature = temperature
        self.imitation_in_weight = imitation_in_weight
        self.imitation_out_weight = imitation_out_weight
        self.gt_weight = gt_weight

        student_pairs = token_mixers(self.backbone)
        teacher_pairs = token_mixers(self.teacher.backbone)
        s_channels = mixer_channels(student_pairs)
        t_channels = mixer_channels(teacher_pairs)
        if not student_pairs or s_channels != t_channels:
            raise ValueError(
                f'Module imitation pairs the student\'s blocks with the '
                f'teacher\'s, but the student has {len(s_channels)} token '
                f'mixers of channels {s_channels} and the teacher '
                f'{len(t_channels)} of {t_channels}. Build the student in '
                f'train form (deploy=False), with a teacher of the same '
                f'stage layout (e.g. PoolFormer of the same arch).')
        self._records: Dict[str, List[Tuple[Tensor, Tensor]]] = {}
        for side, pairs in (('student', student_pairs), ('teacher',
                                                         teacher_pairs)):
            for _, mixer in pairs:
                mixer.register_forward_hook(self._recorder(side))
        self.register_state_dict_post_hook(_drop_teacher)
        self.register_load_state_dict_pre_hook(_keep_teacher)

    def _recorder(self, side: str):

        def hook(module, inputs, output):
            if side in self._records:
                self._records[side].append((inputs[0], output))

        return hook

    @contextmanager
    def _recording(self):
        """Collect the token mixers' (input, output) of both models."""
        self._records = {'student': [], 'teacher': []}
        try:
            yield self._records
        finally:
            self._records = {}

    def train(self, mode: bool = True) -> 'ModuleImitationClassifier':
        """Set the student's mode; the teacher stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    def init_weights(self) -> None:
        """Initialise the student, load the teacher, and start the student
        from the teacher's weights (all but its token mixers)."""
        super().init_weights()
        if self.teacher_checkpoint is None:
            print_log(
                'ModuleImitationClassifier: no teacher_checkpoint, the '
                'teacher keeps its random initialisation.',
                logger='current',
                level=logging.WARNING)
        else:
            load_pretrained(
                self.teacher,
                self.teacher_checkpoint,
                fix='teacher_checkpoint must be a classifier checkpoint of '
                'the teacher config',
                config_key='model.teacher_checkpoint')
        if self.init_student_from_teacher:
            self.take_teacher_weights()

    def take_teacher_weights(self):
        """Copy the teacher's weights into the student where both have them.

        Returns:
            TeacherWeights: What was taken, kept and unused; also logged.
        """
        student = self.state_dict(keep_vars=True)
        match = teacher_weights_for_student(self.teacher.state_dict(),
                                            student)
        with torch.no_grad():
            for key, value in match.taken.items():
                student[key].copy_(value)
        print_log(
            f'ModuleImitationClassifier: the student took {len(match.taken)} '
            f'tensors from the teacher; {len(match.kept)} keep their own '
            f'initialisation: {match.kept}; teacher tensors unused: '
            f'{match.unused}.',
            logger='current')
        return match

    def loss(self, inputs: Tensor,
             data_samples: List[DataSample]) -> Dict[str, Tensor]:
        """The distillation losses of one batch.

        Args:
            inputs (Tensor): Images, (N, 3, H, W), after the data
                preprocessor and its batch augments.
            data_samples (list[DataSample]): Labels, used only when
                ``gt_weight`` > 0.

        Returns:
            dict[str, Tensor]: ``loss_kd``, ``loss_imitation_in``,
            ``loss_imitation_out`` and, with ``gt_weight``, ``loss_cls``.
        """
        with self._recording() as records:
            with torch.no_grad():
                teacher_logits = self.teacher(inputs, mode='tensor')
            feats = self.extract_feat(inputs)
            logits = self.head(feats)
        pairs = list(zip(records['student'], records['teacher']))
        losses = {
            'loss_kd':
            self.kd_weight * logit_distillation_loss(
                logits, teacher_logits, self.temperature),
            'loss_imitation_in':
            self.imitation_in_weight * sum(
                F.mse_loss(s_in, t_in)
                for (s_in, _), (t_in, _) in pairs) / len(pairs),
            'loss_imitation_out':
            self.imitation_out_weight * sum(
                F.mse_loss(s_out, t_out)
                for (_, s_out), (_, t_out) in pairs) / len(pairs),
        }
        if self.gt_weight:
            losses['loss_cls'] = self.gt_weight * self.head._get_loss(
                logits, data_samples)['loss']
        return losses


def _drop_teacher(module, state_dict, prefix, local_metadata) -> None:
    """Checkpoints hold the student only."""
    for key in [k for k in state_dict if k.startswith(prefix + TEACHER)]:
        del state_dict[key]


def _keep_teacher(module, state_dict, prefix, local_metadata, strict,
                  missing_keys, unexpected_keys, error_msgs) -> None:
    """A student checkpoint leaves the loaded teacher as it is."""
    for key, value in module.teacher.state_dict().items():
        state_dict.setdefault(prefix + TEACHER + key, value)
