"""The SEAL engine: the outer RL loop around the inner adapt-and-score loop.

    for round in 0..rounds:
        evaluate held-out tasks (no adaptation, and after a greedy self-edit)  -> metrics
        if round < rounds:
            tasks  = sample of the train tasks
            edits  = generator(generator_model, edit_prompt(task), k)
            for each (task, edit): student' = updater(student, training_texts(task, edit))
                                   reward   = score(student') - score(student)
            rollouts -> rollouts.jsonl, one line as each is scored
            algorithm.update(generator_model, rollouts)   # in place

The student's own score is computed once per task and round (it only changes when the RL update
changes the student's weights). Every random step is seeded from (seed, step name, round, task,
edit), so a step gives the same result whatever ran before it.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict
from typing import Any

import structlog
from tqdm import tqdm

from seal_core.components import Roles, UpdateContext
from seal_core.config import Config
from seal_core.errors import DataError, EditRejected
from seal_core.models import load_model, weights_sha
from seal_core.registry import Registry
from seal_core.results import write_results
from seal_core.runstore import RunStore
from seal_core.seeding import derive_seed, seed_all
from seal_core.types import LoadedModel, Rollout, Score, TaskInstance

log = structlog.get_logger(__name__)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


class Engine:
    """Runs one configured SEAL run into a run directory."""

    def __init__(self, config: Config, registry: Registry, store: RunStore):
        self.config = config
        self.registry = registry
        self.store = store
        opts, names = config.options, config.components
        self.domain = registry.get("domain", names["domain"]).configured(opts["domain"])
        self.evaluator = registry.get("evaluator", names["evaluator"]).configured(opts["evaluator"])
        self.generator = registry.get("edit_generator", names["generator"]).configured(opts["generator"])
        self.updater = registry.get("inner_updater", names["inner"]).configured(opts["inner"])
        self.algorithm = registry.get("algorithm", names["algorithm"]).configured(opts["algorithm"])
        self.setup = registry.get("setup", config.run.setup)
        self._base_scores: dict[tuple[int, str], Score] = {}

    # -- set-up --------------------------------------------------------------------------------

    def load(self, spec: str) -> LoadedModel:
        m = self.config.model
        return load_model(spec, device=m.device, dtype=m.dtype, trust_remote_code=m.trust_remote_code)

    def load_tasks(self) -> tuple[list[TaskInstance], list[TaskInstance]]:
        source = self.config.domain.source
        train = self.domain.load_tasks("train", source)
        evals = self.domain.load_tasks("eval", source)
        for split, tasks in (("train", train), ("eval", evals)):
            if not tasks:
                raise DataError(
                    f"Domain '{self.domain.name}' has no {split} tasks in source "
                    f"{source or '(bundled data)'}. Use a source with more tasks."
                )
        overlap = {t.id for t in train} & {t.id for t in evals}
        if overlap:
            raise DataError(f"Train and eval share tasks {sorted(overlap)[:5]}: the domain's split is broken.")
        limit = self.config.domain.eval_limit
        return train, evals[:limit] if limit else evals

    def sample_train(self, train: list[TaskInstance], rnd: int) -> list[TaskInstance]:
        limit = self.config.domain.train_limit
        if not limit or limit >= len(train):
            return list(train)
        rng = random.Random(derive_seed(self.config.run.seed, "tasks", rnd))
        return rng.sample(train, limit)

    # -- the inner loop ------------------------------------------------------------------------

    def base_score(self, rnd: int, task: TaskInstance, student: LoadedModel) -> Score:
        key = (rnd, task.id)
        if key not in self._base_scores:
            self._base_scores[key] = self.evaluator.evaluate(student.model, student.tokenizer, task)
        return self._base_scores[key]

    def score_edit(self, rnd: int, task: TaskInstance, edit_index: int, edit: str,
                   student: LoadedModel) -> tuple[Score, str | None]:
        """Adapt the student on the edit, score it, reset. A rejected edit scores as unadapted."""
        seed_all(derive_seed(self.config.run.seed, "inner", rnd, task.id, edit_index))
        texts = self.domain.training_texts(task, edit)
        if not texts:
            return self.base_score(rnd, task, student), "the self-edit yields no training text"
        try:
            with self.updater.adapted(student, texts) as adapted:
                return self.evaluator.evaluate(adapted.model, adapted.tokenizer, task), None
        except EditRejected as exc:
            log.warning("self-edit rejected", round=rnd, task_id=task.id, edit_index=edit_index, reason=str(exc))
            return self.base_score(rnd, task, student), str(exc)

    def write_edits(self, rnd: int, tasks: list[TaskInstance], roles: Roles, k: int, greedy: bool,
                    desc: str) -> list[tuple[str, list[str]]]:
        """(edit prompt, k self-edits) per task, one generate call per task."""
        out = []
        for task in tqdm(tasks, desc=desc, unit="task", dynamic_ncols=True):
            seed_all(derive_seed(self.config.run.seed, "generate", rnd, task.id, greedy))
            prompt = self.domain.edit_prompt(task)
            edits = self.generator.generate(roles.generator, [prompt], k, greedy=greedy, tasks=[task])[0]
            out.append((prompt, edits))
        return out

    # -- one round -----------------------------------------------------------------------------

    def evaluate(self, rnd: int, tasks: list[TaskInstance], roles: Roles) -> dict[str, Any]:
        edits = self.write_edits(rnd, tasks, roles, 1, True, f"round {rnd} · eval self-edits")
        base, after = [], []
        for task, (_, (edit,)) in tqdm(list(zip(tasks, edits)), desc=f"round {rnd} · eval adapt+score",
                                       unit="task", dynamic_ncols=True):
            before = self.base_score(rnd, task, roles.student)
            score, reason = self.score_edit(rnd, task, -1, edit, roles.student)
            base.append(before)
            after.append(score)
            self.store.append_evaluation({
                "round": rnd, "task_id": task.id, "edit": edit, "score_before": before.value,
                "score_after": score.value, "reason": reason, "details": score.details,
            })
        return {
            "eval_base": _mean([s.value for s in base]),
            "eval_adapted": _mean([s.value for s in after]),
            "eval_base_f1": _mean([s.details.get("f1") for s in base if "f1" in s.details]),
            "eval_adapted_f1": _mean([s.details.get("f1") for s in after if "f1" in s.details]),
            "eval_tasks": len(tasks),
        }

    def collect(self, rnd: int, tasks: list[TaskInstance], roles: Roles) -> list[Rollout]:
        k = self.config.run.edits_per_task
        edits = self.write_edits(rnd, tasks, roles, k, False, f"round {rnd} · train self-edits")
        pairs = [(t, prompt, i, e) for t, (prompt, es) in zip(tasks, edits) for i, e in enumerate(es)]
        rollouts = []
        for task, prompt, i, edit in tqdm(pairs, desc=f"round {rnd} · inner updates", unit="edit", dynamic_ncols=True):
            before = self.base_score(rnd, task, roles.student)
            score, reason = self.score_edit(rnd, task, i, edit, roles.student)
            details = dict(score.details)
            if reason:
                details["reason"] = reason
            rollout = Rollout(round=rnd, task_id=task.id, edit_index=i, prompt=prompt,
                              edit=edit, score_before=before.value, score_after=score.value,
                              reward=score.value - before.value, details=details)
            self.store.append_rollout(rollout)
            self.registry.hook.seal_rollout_scored(rollout=rollout, run_dir=self.store.dir)
            rollouts.append(rollout)
        return rollouts

    # -- the outer loop ------------------------------------------------------------------------

    @staticmethod
    def model_shas(roles: Roles) -> dict[str, str]:
        """Short hashes of the generator's and the student's base weights, to tell versions apart."""
        generator = weights_sha(roles.generator.model)
        student = generator if roles.student.model is roles.generator.model else weights_sha(roles.student.model)
        return {"generator_sha": generator, "student_sha": student}

    def run(self) -> list[dict[str, Any]]:
        cfg = self.config
        train, evals = self.load_tasks()
        log.info("tasks loaded", domain=self.domain.name, train=len(train), eval=len(evals),
                 train_per_round=min(cfg.domain.train_limit or len(train), len(train)))
        roles = self.setup.build(self.load, asdict(cfg.model))
        self.store.write_config(cfg.to_yaml())
        self.registry.hook.seal_run_started(run_dir=self.store.dir, config=cfg.raw)
        title = f"SEAL {self.domain.name} · {cfg.components['algorithm']} · {roles.generator.spec}"
        all_metrics: list[dict[str, Any]] = []
        for rnd in range(cfg.run.rounds + 1):
            started = time.time()
            log.info("round started", round=rnd, of=cfg.run.rounds)
            metrics: dict[str, Any] = {"round": rnd, **self.model_shas(roles), **self.evaluate(rnd, evals, roles)}
            if rnd < cfg.run.rounds:
                rollouts = self.collect(rnd, self.sample_train(train, rnd), roles)
                metrics["train_reward_mean"] = _mean([r.reward for r in rollouts])
                metrics["train_score_after_mean"] = _mean([r.score_after for r in rollouts])
                context = UpdateContext(round=rnd, seed=derive_seed(cfg.run.seed, "update", rnd),
                                        workdir=self.store.dir, reference=lambda: self.load(roles.generator.spec))
                seed_all(context.seed)
                metrics.update(self.algorithm.update(roles.generator, rollouts, context))
                if cfg.run.checkpoint == "every_round":
                    self.store.save_checkpoint(roles.generator.model, f"policy-round{rnd + 1}")
            metrics["seconds"] = round(time.time() - started, 1)
            self.store.append_metrics(metrics)
            all_metrics.append(metrics)
            write_results(self.store.dir, all_metrics, title)
            self.registry.hook.seal_round_finished(round=rnd, metrics=metrics, run_dir=self.store.dir)
            log.info("round finished", **{k: v for k, v in metrics.items() if not isinstance(v, dict)})
        if cfg.run.checkpoint == "final":
            path = self.store.save_checkpoint(roles.generator.model, "policy")
            log.info("checkpoint saved", path=str(path))
        return all_metrics
