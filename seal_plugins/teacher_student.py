"""Setup ``teacher-student``: a teacher writes the self-edits, a separate student is adapted.

The teacher (``model.teacher``) is the model the RL algorithm updates, rewarded by how much the
student (``model.student``) improves from its self-edits. The student's base weights never
change during a run: the inner updater adapts and resets it, and nothing else touches it. The
two may have different architectures and tokenizers: they only exchange text.

With ``algorithm.name=none`` the teacher is fixed: the paper's "stronger model's synthetic data"
baseline (GPT-4.1 there; any local or hub model here, or the ``from-file`` generator).
"""

from __future__ import annotations

from typing import Callable

from seal_core import LoadedModel, Roles, Setup, hookimpl


class TeacherStudent(Setup):
    name = "teacher-student"
    model_keys = ("teacher", "student")

    def build(self, load: Callable[[str], LoadedModel], models: dict[str, str]) -> Roles:
        teacher = load(models["teacher"])
        student = load(models["student"])
        return Roles(generator=teacher, student=student)


@hookimpl
def seal_register_setups(register):
    register(TeacherStudent())
