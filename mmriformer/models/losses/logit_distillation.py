# Copyright (c) OpenMMLab. All rights reserved.
import torch.nn.functional as F
from torch import Tensor

from ..utils.precision import at_least_float32


def logit_distillation_loss(student_logits: Tensor, teacher_logits: Tensor,
                            temperature: float = 1.0) -> Tensor:
    """Soft logit distillation (Hinton et al., 2015).

    ``T^2 * KL(softmax(t / T) || softmax(s / T))``, averaged over the batch.
    The ``T^2`` keeps the gradient's scale independent of ``T``. The loss is
    0 exactly when the student's logits equal the teacher's up to a
    per-sample constant.

    Args:
        student_logits (Tensor): (N, num_classes).
        teacher_logits (Tensor): (N, num_classes), no gradient needed.
        temperature (float): ``T`` > 0. Defaults to 1.0.

    Returns:
        Tensor: The scalar loss.
    """
    if temperature <= 0:
        raise ValueError(f'temperature must be > 0, got {temperature}.')
    student = F.log_softmax(
        at_least_float32(student_logits) / temperature, dim=-1)
    teacher = F.log_softmax(
        at_least_float32(teacher_logits) / temperature, dim=-1)
    return F.kl_div(
        student, teacher, reduction='batchmean',
        log_target=True) * temperature**2
