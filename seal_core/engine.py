"""The SEAL engine: the outer RL loop around the inner adapt-and-score loop. This pseudo-code is
the loop's one description (docs/architecture.md links here); each line names the method that
does it::

    for round in 0..rounds:                                        # Engine.run
        evaluate held-out tasks: score the student, then adapt it     # Engine.evaluate
            on its greedy self-edit and score it again -> evaluations.jsonl
        if round < rounds:
            tasks  = sample of the train tasks, seeded by (seed, round)  # Engine.sample_train
            edits  = generator(generator_model, edit_prompt(task), k)    # Engine.write_edits
            for each EditItem(task, index, edit):                        # Engine.collect
                student' = updater(student, training_set(task, edit))    #   Engine.score_edits
                reward   = score(student') - score(student)              #   Engine.reward
                rollouts.jsonl += Rollout, appended as each is scored
            algorithm.update(generator_model, rollouts)   # in place     # Engine.update
        metrics.jsonl += the round's line; results.md, plot.png rewritten

Under ``torchrun`` or the ``deepspeed`` launcher the same loop runs on every rank: self-edits
and the inner loop are split across ranks and gathered, the update runs data-parallel, rank 0
alone writes (:mod:`seal_core.distributed`, docs/distributed.md).

The student's own score is computed once per task and round (it only changes when the RL update
changes the student's weights). Every random step is seeded from (seed, step name, round, task,
edit), so a step gives the same result whatever ran before it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import structlog
from tqdm import tqdm

from seal_core import distributed
from seal_core.components import Evaluator, Roles, UpdateContext, algorithm_flag
from seal_core.checkpoints import save_policy
from seal_core.config import Config
from seal_core.constrained import run_schema
from seal_core.errors import DataError, EditRejected
from seal_core.events import EventHooks, NoEvents
from seal_core.models import load_model, load_options, weights_sha
from seal_core.registry import Registry
from seal_core.interrupt import StopFlag
from seal_core.results import eval_summary, train_summary, write_results
from seal_core.resume import ResumeState, load_resume_point, save_resume_point
from seal_core.runstore import RunStore
from seal_core.seeding import derive_seed, seed_all
from seal_core.types import EditItem, LoadedModel, Rollout, Score, ScoredEdit, TaskInstance, TrainingSet
from seal_core.zero import deepspeed_config

log = structlog.get_logger(__name__)


class Engine:
    """Runs one configured SEAL run into a run directory."""

    def __init__(self, config: Config, registry: Registry, stop: StopFlag | None = None):
        self.config = config
        self.registry = registry
        self.stop = stop or StopFlag()
        if distributed.active():  # every rank must stop at the same point, or none
            self.stop = distributed.AgreedStop(self.stop)
        self.store: RunStore | None = None  # set by run()
        self._tasks: tuple[list[TaskInstance], list[TaskInstance]] | None = None
        opts, names = config.options, config.components
        self.domain = registry.get("domain", names["domain"]).configured(opts["domain"])
        self.evaluator = registry.get("evaluator", names["evaluator"]).configured(opts["evaluator"])
        # the rollouts' reward may come from another evaluator (reward.name) than the held-out table's
        self.reward_evaluator = (self.evaluator if opts["reward"] is opts["evaluator"]
                                 else registry.get("evaluator", names["reward"]).configured(opts["reward"]))
        self.generator = registry.get("edit_generator", names["generator"]).configured(opts["generator"])
        self.updater = registry.get("inner_updater", names["inner"]).configured(opts["inner"])
        self.algorithm = registry.get("algorithm", names["algorithm"]).configured(opts["algorithm"])
        self.setup = registry.get("setup", config.run.setup)
        self.edit_schema = run_schema(self.domain, self.generator)  # what edits are decoded under; None: free text
        self.hooks = EventHooks(registry.pm) if distributed.is_main() else NoEvents()  # once, from rank 0
        self._base_scores: dict[tuple[int, str, int], Score] = {}

    # -- set-up --------------------------------------------------------------------------------

    def load(self, spec: str) -> LoadedModel:
        return load_model(spec, **load_options(self.config.model))  # device, dtype, chat_template, ...

    def load_tasks(self) -> tuple[list[TaskInstance], list[TaskInstance]]:
        """(train, eval) tasks, loaded once; data errors surface here, before any model loads."""
        if self._tasks is None:
            self._tasks = self._load_tasks()
        return self._tasks

    def _load_tasks(self) -> tuple[list[TaskInstance], list[TaskInstance]]:
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

    def base_score(self, rnd: int, task: TaskInstance, student: LoadedModel, evaluator: Evaluator | None = None) -> Score:
        """The unadapted student's score on ``task`` (by ``evaluator``, default the held-out one), once per round."""
        evaluator = evaluator or self.evaluator
        key = (rnd, task.id, id(evaluator))
        if key not in self._base_scores:
            self._base_scores[key] = evaluator.evaluate(student.model, student.tokenizer, task)
        return self._base_scores[key]

    def score_edits(self, rnd: int, items: list[EditItem], student: LoadedModel,
                    evaluator: Evaluator | None = None) -> Iterator[ScoredEdit]:
        """Score each item; yields a :class:`ScoredEdit` per item, in order, as soon as it is scored.

        The one place where the inner loop runs, for training rollouts and for evaluation alike;
        ``evaluator`` scores them (default: the held-out evaluator; rollouts: the reward's).
        The student is back to its unadapted state whenever an item is yielded. An updater that
        trains several self-edits at once gets them in batches (items are yielded as each batch
        finishes); the others get one at a time. A Ctrl-C raises here, between batches.
        """
        size = self.updater.batch_capacity()
        for start in range(0, len(items), max(size, 1)):
            if size > 1:
                yield from self.score_batch(rnd, items[start:start + size], student, evaluator)
            else:
                yield self.score_edit(rnd, items[start], student, evaluator)
            # Ctrl-C: stop only after the caller has stored every item of the finished batch
            # (under a launcher the ranks agree on stopping between waves, in scored_rows)
            if not distributed.active():
                self.stop.check()

    def score_batch(self, rnd: int, items: list[EditItem], student: LoadedModel,
                    evaluator: Evaluator | None = None) -> list[ScoredEdit]:
        """:meth:`score_edit` for several items with one ``adapt_batch`` (same seeds per item)."""
        evaluator = evaluator or self.evaluator
        reasons: dict[int, str] = {}
        datas = []
        for pos, item in enumerate(items):
            try:
                data = self.training_set(item.task, item.edit)
            except EditRejected as exc:
                reasons[pos], data = str(exc), None
            datas.append(data)
        keep = [pos for pos in range(len(items)) if pos not in reasons]
        seeds = [self.inner_seed(rnd, items[pos]) for pos in keep]
        seed_all(seeds[0] if seeds else 0)  # anything else random in the inner loop (dropout)
        scores: dict[int, Score] = {}
        if keep:
            with self.updater.adapted_batch(student, [datas[pos] for pos in keep], seeds) as batch:
                reasons.update({keep[j]: why for j, why in batch.rejected.items()})
                good = [j for j in range(len(keep)) if j not in batch.rejected]
                tasks = [items[keep[j]].task for j in good]
                routed = tasks and evaluator.evaluate_routed(
                    student.model, student.tokenizer, tasks,
                    lambda owners: batch.rows([good[o] if o >= 0 else -1 for o in owners]))
                if routed is None:
                    routed = []
                    for j, task in zip(good, tasks):
                        with batch.use(j):
                            routed.append(evaluator.evaluate(student.model, student.tokenizer, task))
                scores = {keep[j]: score for j, score in zip(good, routed)}
        out = []
        for pos, item in enumerate(items):
            if pos in reasons:
                scores[pos] = self.rejected_score(rnd, item, reasons[pos], student, evaluator)
            out.append(ScoredEdit(item, scores[pos], reasons.get(pos)))
        return out

    def scored_rows(self, rnd: int, items: list[EditItem], student: LoadedModel,
                    row: Callable[[ScoredEdit], Any], per_rank: int = 1,
                    evaluator: Evaluator | None = None) -> Iterator[Any]:
        """``row(scored)`` for each item, in the items' order.

        In one process: straight from :meth:`score_edits`. Under a launcher the items go in waves
        of ``per_rank`` items per rank; each rank scores its slice of a wave through
        :meth:`score_edits`, and the rows are gathered, so every rank yields every row.
        """
        if not distributed.active():
            for scored in self.score_edits(rnd, items, student, evaluator):
                yield row(scored)
            return
        for wave in distributed.waves(items, per_rank):
            mine = self.score_edits(rnd, distributed.shard(wave), student, evaluator)
            yield from distributed.gather_lists([row(scored) for scored in mine])
            self.stop.check()  # the same point on every rank, after the wave's rows are stored

    def inner_seed(self, rnd: int, item: EditItem) -> int:
        """The seed of an item's inner loop (data order, adapter randomness). A held-out self-edit
        (index -1) trains from round 0's seed at every round, so an unchanged self-edit scores the
        same in every round and a change between rounds is the policy's (common random numbers)."""
        return derive_seed(self.config.run.seed, "inner", rnd if item.index >= 0 else 0, item.task.id, item.index)

    def score_edit(self, rnd: int, item: EditItem, student: LoadedModel, evaluator: Evaluator | None = None) -> ScoredEdit:
        """Adapt the student on the edit, score it, reset. A rejected edit scores as unadapted."""
        evaluator = evaluator or self.evaluator
        seed_all(self.inner_seed(rnd, item))
        try:
            with self.updater.adapted(student, self.training_set(item.task, item.edit)) as adapted:
                return ScoredEdit(item, evaluator.evaluate(adapted.model, adapted.tokenizer, item.task))
        except EditRejected as exc:
            return ScoredEdit(item, self.rejected_score(rnd, item, str(exc), student, evaluator), str(exc))

    @staticmethod
    def reward(before: Score, after: Score) -> float:
        """A rollout's reward: how much adapting on the self-edit moved the student's score on its
        task (the paper's improvement over the current model; negative when it hurt)."""
        return after.value - before.value

    def training_set(self, task: TaskInstance, edit: str) -> TrainingSet:
        """The domain's training set of ``edit``; :class:`EditRejected` when it is unusable or empty."""
        data = self.domain.training_set(task, edit)
        if not data:
            raise EditRejected("the self-edit yields no training text")
        return data

    def rejected_score(self, rnd: int, item: EditItem, reason: str, student: LoadedModel,
                       evaluator: Evaluator | None = None) -> Score:
        """A rejected self-edit scores as no adaptation; the reason is logged."""
        log.warning("self-edit rejected", round=rnd, task_id=item.task.id, edit_index=item.index, reason=reason)
        return self.base_score(rnd, item.task, student, evaluator)

    def eval_row(self, rnd: int, task: TaskInstance, edit: str, score: Score, reason: str | None,
                 student: LoadedModel, **extra: Any) -> dict[str, Any]:
        """One line of evaluations.jsonl: the student before and after adapting on ``edit``."""
        before = self.base_score(rnd, task, student)
        return {"round": rnd, "task_id": task.id, "edit": edit, "score_before": before.value,
                "score_after": score.value, "reason": reason, "details_before": before.details,
                "details": score.details, **extra}

    def write_edits(self, rnd: int, tasks: list[TaskInstance], roles: Roles, k: int, greedy: bool,
                    desc: str) -> list[tuple[str, list[str]]]:
        """(edit prompt, k self-edits) per task, one generate call per task (under a launcher each
        rank writes those of its slice of the tasks, and the slices are gathered)."""
        out = []
        for task in tqdm(distributed.shard(tasks), desc=desc, unit="task", dynamic_ncols=True,
                         disable=not distributed.is_main()):
            seed_all(derive_seed(self.config.run.seed, "generate", rnd, task.id, greedy))
            prompt = self.domain.edit_prompt(task)
            schema = {"schema": self.edit_schema} if self.edit_schema is not None else {}  # generators without one get none
            edits = self.generator.generate(roles.generator, [prompt], k, greedy=greedy, tasks=[task], **schema)[0]
            out.append((prompt, edits))
        return distributed.gather_lists(out)

    def edit_logprobs(self, tasks: list[TaskInstance], edits: dict[str, tuple[str, list[str]]],
                      roles: Roles) -> dict[tuple[str, int], tuple[list[int] | None, list[float]]]:
        """(sampled token ids or None, per-token log-probs) of each self-edit under the policy that
        wrote it, for algorithms that declare ``needs_logprobs`` (the "old" policy of a clipped-ratio
        update): the sampler's own where the generator reports them, else computed under ``edit_schema``
        (:func:`seal_core.logprobs.sampled_logprobs`)."""
        if not algorithm_flag(self.algorithm, "needs_logprobs"):
            return {}
        from seal_core.logprobs import sampled_logprobs

        out = {}
        for task in distributed.shard(tasks):
            prompt, task_edits = edits[task.id]
            for i, pair in enumerate(sampled_logprobs(roles.generator, prompt, task_edits, self.edit_schema)):
                out[(task.id, i)] = pair
        return {key: value for part in distributed.gather(out) for key, value in part.items()}

    # -- one round -----------------------------------------------------------------------------

    def evaluate(self, rnd: int, tasks: list[TaskInstance], roles: Roles, done: dict[str, dict]) -> dict[str, Any]:
        """Score held-out tasks; ``done`` holds this round's rows already in evaluations.jsonl."""
        todo = [t for t in tasks if t.id not in done]
        edits = self.write_edits(rnd, todo, roles, 1, True, f"round {rnd} · eval self-edits")
        rows = dict(done)
        items = [EditItem(task, -1, edit) for task, (_, (edit,)) in zip(todo, edits)]

        def evaluation(scored: ScoredEdit) -> dict[str, Any]:
            item = scored.item
            return self.eval_row(rnd, item.task, item.edit, scored.score, scored.reason, roles.student)

        for row in tqdm(self.scored_rows(rnd, items, roles.student, evaluation), total=len(items),
                        desc=f"round {rnd} · eval adapt+score", unit="task", dynamic_ncols=True,
                        disable=not distributed.is_main()):
            self.store.append_evaluation(row)
            rows[row["task_id"]] = row
        return eval_summary([rows[t.id] for t in tasks])

    def collect(self, rnd: int, tasks: list[TaskInstance], roles: Roles,
                done: dict[tuple[str, int], Rollout]) -> list[Rollout]:
        """Score k self-edits per task; ``done`` holds this round's rollouts already on disk."""
        k = self.config.run.edits_per_task
        todo = [t for t in tasks if any((t.id, i) not in done for i in range(k))]
        edits = dict(zip([t.id for t in todo], self.write_edits(rnd, todo, roles, k, False, f"round {rnd} · train self-edits")))
        logprobs = self.edit_logprobs(todo, edits, roles)
        items = [EditItem(t, i, edits[t.id][1][i]) for t in todo for i in range(k) if (t.id, i) not in done]
        scored = dict(done)

        def rollout_of(edit: ScoredEdit) -> Rollout:
            item, before = edit.item, self.base_score(rnd, edit.item.task, roles.student, self.reward_evaluator)
            details = dict(edit.score.details) | ({"reason": edit.reason} if edit.reason else {})
            token_ids, lps = logprobs.get((item.task.id, item.index), (None, None))
            return Rollout(round=rnd, task_id=item.task.id, edit_index=item.index, prompt=edits[item.task.id][0],
                           edit=str(item.edit), score_before=before.value, score_after=edit.score.value,
                           reward=self.reward(before, edit.score), details=details, logprobs=lps, token_ids=token_ids)

        for rollout in tqdm(self.scored_rows(rnd, items, roles.student, rollout_of, per_rank=k,
                                             evaluator=self.reward_evaluator), total=len(items),
                            desc=f"round {rnd} · inner updates", unit="edit", dynamic_ncols=True,
                            disable=not distributed.is_main()):
            self.store.append_rollout(rollout)
            self.hooks.seal_rollout_scored(rollout=rollout, run_dir=self.store.dir)
            scored[(rollout.task_id, rollout.edit_index)] = rollout
        return [scored[(t.id, i)] for t in tasks for i in range(k)]

    # -- the outer loop ------------------------------------------------------------------------

    @staticmethod
    def model_shas(roles: Roles) -> dict[str, str]:
        """Short hashes of the generator's and the student's base weights, to tell versions apart."""
        generator = weights_sha(roles.generator.model)
        student = generator if roles.student.model is roles.generator.model else weights_sha(roles.student.model)
        return {"generator_sha": generator, "student_sha": student}

    def update(self, rnd: int, roles: Roles, rollouts: list[Rollout], metrics: dict[str, Any]) -> None:
        """The RL update of round ``rnd``; its result is saved with ``metrics`` as the resume point."""
        cfg = self.config
        context = UpdateContext(round=rnd, seed=derive_seed(cfg.run.seed, "update", rnd),
                                workdir=self.store.dir, reference=lambda: self.load(roles.generator.spec),
                                deepspeed=deepspeed_config(cfg.trainer.deepspeed, self.algorithm),
                                components=self.registry.get, edit_schema=self.edit_schema, report_to=cfg.run.report_to)
        seed_all(context.seed)
        if distributed.active() and context.deepspeed is None:  # no DeepSpeed path: rank 0 updates alone
            stats = self.algorithm.update(roles.generator, rollouts, context) if distributed.is_main() else {}
            metrics.update(distributed.broadcast(stats))
            distributed.broadcast_weights(roles.generator.model)
        else:
            metrics.update(self.algorithm.update(roles.generator, rollouts, context))
        save_resume_point(self.store, self.algorithm, roles.generator, rnd, metrics)  # with the algorithm's state

    def run(self, store: RunStore, resume: bool = False) -> list[dict[str, Any]]:
        """Run (or, with ``resume``, continue) into ``store``; returns the metrics lines."""
        self.store = store
        cfg = self.config
        train, evals = self.load_tasks()
        log.info("tasks loaded", domain=self.domain.name, train=len(train), eval=len(evals),
                 train_per_round=min(cfg.domain.train_limit or len(train), len(train)))
        state = ResumeState.read(store, cfg.run.rounds) if resume and distributed.is_main() else ResumeState()
        state = distributed.broadcast(state)  # rank 0 reads the run directory, for every rank
        if state.finished(cfg.run.rounds):
            log.info("run already finished; nothing to resume", run_dir=str(store.dir))
            return state.metrics
        roles = self.setup.build(self.load, asdict(cfg.model))
        if state.updated_round is not None:
            load_resume_point(store, self.algorithm, roles.generator)  # weights and the algorithm's state
            log.info("resuming", run_dir=str(store.dir), finished_rounds=state.next_round,
                     weights_after_update_of_round=state.updated_round)
        if not resume:
            store.write_config(cfg.to_yaml())
        self.hooks.seal_run_started(run_dir=store.dir, config=cfg.raw)
        title = f"SEAL {self.domain.name} · {cfg.components['algorithm']} · {roles.generator.spec}"
        all_metrics = list(state.metrics)
        for rnd in range(state.next_round, cfg.run.rounds + 1):
            started = time.time()
            log.info("round started", round=rnd, of=cfg.run.rounds)
            if state.updated_round == rnd:  # killed after this round's update: all but the line is saved
                metrics = dict(state.pending_metrics)
            else:
                metrics = {"round": rnd, **self.model_shas(roles)}
                metrics.update(self.evaluate(rnd, evals, roles, state.evaluations.get(rnd, {})))
            if rnd < cfg.run.rounds and state.updated_round != rnd:
                rollouts = self.collect(rnd, self.sample_train(train, rnd), roles, state.rollouts.get(rnd, {}))
                metrics.update(train_summary(rollouts))
                self.update(rnd, roles, rollouts, metrics)
                if cfg.run.checkpoint == "every_round":
                    save_policy(store, roles.generator, f"policy-round{rnd + 1}", cfg, [*all_metrics, metrics])
            metrics["seconds"] = round(time.time() - started, 1)
            store.append_metrics(metrics)
            all_metrics.append(metrics)
            if distributed.is_main():
                write_results(store.dir, all_metrics, title)
            self.hooks.seal_round_finished(round=rnd, metrics=metrics, run_dir=store.dir)
            log.info("round finished", **{k: v for k, v in metrics.items() if not isinstance(v, dict)})
            self.stop.check()
        if cfg.run.checkpoint == "final":
            save_policy(store, roles.generator, "policy", cfg, all_metrics)
        store.drop_resume_point()
        return all_metrics
