# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, List, NamedTuple

from torch import Tensor


class TeacherWeights(NamedTuple):
    """What a student takes from its teacher's state dict.

    Attributes:
        taken (dict[str, Tensor]): Student keys and the teacher tensors that
            replace them.
        kept (list[str]): Student keys the teacher lacks (a RIFormer's token
            mixers): they keep the student's own initialisation.
        unused (list[str]): Teacher keys the student lacks (e.g. a token
            mixer with weights).
    """
    taken: Dict[str, Tensor]
    kept: List[str]
    unused: List[str]


def teacher_weights_for_student(teacher: Dict[str, Tensor],
                                student: Dict[str, Tensor]) -> TeacherWeights:
    """Match a teacher's weights to a student's by name.

    RIFormer's recipe starts the student from its MetaFormer teacher's
    weights except the token mixers. A PoolFormer and a RIFormer of the same
    arch share every other key and shape.

    Args:
        teacher (dict[str, Tensor]): The teacher's state dict.
        student (dict[str, Tensor]): The student's state dict.

    Returns:
        TeacherWeights: The match.

    Raises:
        ValueError: A key both have holds tensors of different shapes, so
            the two are not of the same arch.
    """
    misfits = [(k, tuple(teacher[k].shape), tuple(v.shape))
               for k, v in student.items()
               if k in teacher and teacher[k].shape != v.shape]
    if misfits:
        key, t_shape, s_shape = misfits[0]
        raise ValueError(
            f'The teacher and the student are not of the same arch: '
            f'{len(misfits)} weights differ in shape, e.g. {key} is '
            f'{t_shape} in the teacher and {s_shape} in the student. Use a '
            f'teacher of the student\'s arch (widths, depths, classes), or '
            f'set init_student_from_teacher=False.')
    return TeacherWeights(
        taken={k: teacher[k]
               for k in student if k in teacher},
        kept=[k for k in student if k not in teacher],
        unused=[k for k in teacher if k not in student])
