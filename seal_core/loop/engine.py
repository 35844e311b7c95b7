"""The SEAL engine: the outer RL loop around the inner adapt-and-score loop. This pseudo-code is
the loop's one description (docs/architecture.md links here); each line names the method that
does it::

    for round in 0..rounds:                                        # Engine.run
        evaluate held-out tasks: score the student, then adapt it     # Engine.evaluate
            on its greedy self-edit (and eval_samples sampled ones)
            and score it again -> evaluations.jsonl
        if round < rounds:
            tasks  = sample of the train tasks, seeded by (seed, round)  # Engine.sample_train
            edits  = generator(generator_model, edit_prompt(task), k)    # Engine.write_edits
            for each EditItem(task, index, edit):                        # Engine.collect
                student' = updater(student, training_set(task, edit))    #   Scorer.score_edits
                reward   = score(student') - score(student)              #   Engine.reward
                           (score: the mean over inner_runs inner seeds)
                rollouts.jsonl += Rollout, appended as each is scored
            algorithm.update(generator_model, rollouts)   # in place     # Engine.update
        metrics.jsonl += the round's line, with the collapse metrics     # Engine.collapse
            of its greedy and sampled self-edits; results.md, plot.png rewritten

Under ``torchrun`` or the ``deepspeed`` launcher the same loop runs on every rank: self-edits
and the inner loop are split across ranks and gathered, the update runs data-parallel, rank 0
alone writes (:mod:`seal_core.runtime.distributed`, docs/distributed.md).

The student's own score is computed once per task and round (it only changes when the RL update
changes the student's weights). Every random step is seeded from (seed, step name, round, task,
edit), so a step gives the same result whatever ran before it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import structlog
from tqdm import tqdm

from seal_core.api.components import Roles, UpdateContext, algorithm_flag
from seal_core.api.errors import SealError
from seal_core.api.types import EditItem, Rollout, ScoredEdit, TaskInstance
from seal_core.evaluation.collapse import collapse_summary
from seal_core.hooks.events import event_hooks
from seal_core.loop.scoring import Scorer
from seal_core.loop.workbench import Workbench
from seal_core.models.loading import broadcast_weights, weights_sha
from seal_core.rl.zero import deepspeed_config
from seal_core.runs.checkpoints import save_policy
from seal_core.runs.results import eval_summary, train_summary, write_results
from seal_core.runs.resume import ResumeState, load_resume_point, save_resume_point
from seal_core.runs.store import RunStore
from seal_core.runtime import distributed
from seal_core.runtime.interrupt import StopFlag
from seal_core.runtime.seeding import derive_seed, seed_all

log = structlog.get_logger(__name__)


def trained_counts(scored: ScoredEdit) -> dict[str, float]:
    """``inner_steps`` and ``inner_tokens``: what the inner loop trained on for ``scored`` (empty
    where the updater does not count)."""
    return {f"inner_{key}": value for key, value in (scored.trained or {}).items()}

#: the phases of a round, in order, whose seconds each round's metrics line holds (``phase_seconds``)
PHASES = ("eval_edits", "eval_base", "eval_adapt", "train_edits", "train_base", "train_adapt", "update", "checkpoint")


class Engine:
    """Runs one configured SEAL run into the run directory of ``store``.

    ``workbench`` holds the config's components (:class:`seal_core.loop.workbench.Workbench`);
    ``command`` is the command line that started the run, for the saved policy's model card.
    """

    def __init__(self, workbench: Workbench, store: RunStore, stop: StopFlag | None = None,
                 command: str | None = None):
        self.workbench, self.store, self.command = workbench, store, command
        self.config = config = workbench.config
        self.stop = stop or StopFlag()
        if distributed.active():  # every rank must stop at the same point, or none
            self.stop = distributed.AgreedStop(self.stop)
        self.domain, self.generator, self.updater = workbench.domain, workbench.generator, workbench.updater
        self.edit_schema = workbench.edit_schema
        self.algorithm = workbench.component("algorithm", "algorithm")
        self.setup = workbench.registry.get("setup", config.run.setup)
        held_out, reward = workbench.evaluators()
        self.held_out = Scorer(held_out, workbench, self.stop)  # the held-out table's scores
        self.rewarder = self.held_out if reward is held_out else Scorer(reward, workbench, self.stop)  # the rollouts'
        self.hooks = event_hooks(workbench.registry.pm)  # called once per event, from rank 0
        self.phase_seconds: dict[str, float] = {}  # this round's seconds per phase (:meth:`phase`)
        self.round_started = time.time()  # when the current round began (reset by run)

    @contextmanager
    def phase(self, rnd: int, name: str, items: int) -> Iterator[None]:
        """Time a phase of round ``rnd`` (:data:`PHASES`): logged as ``phase finished`` and summed
        into the round's ``phase_seconds`` metric (``benchmarks/round.py`` reads them)."""
        started = time.perf_counter()
        yield
        seconds = time.perf_counter() - started
        self.phase_seconds[name] = self.phase_seconds.get(name, 0.0) + seconds
        log.info("phase finished", round=rnd, phase=name, seconds=round(seconds, 2), items=items)

    @property
    def evaluator(self) -> Any:
        """The held-out evaluator."""
        return self.held_out.evaluator

    def sample_train(self, train: list[TaskInstance], rnd: int) -> list[TaskInstance]:
        limit = self.config.domain.train_limit
        if not limit or limit >= len(train):
            return list(train)
        rng = random.Random(derive_seed(self.config.run.seed, "tasks", rnd))
        return rng.sample(train, limit)

    # -- self-edits ----------------------------------------------------------------------------

    def write_edits(self, rnd: int, tasks: list[TaskInstance], roles: Roles, k: int, greedy: bool, desc: str,
                    wanted: set[str] | None = None) -> dict[str, tuple[str, list[str]]]:
        """task id -> (edit prompt, k self-edits), for the tasks ``wanted`` (default: all), written
        in the generator's batches cut from ``tasks`` in order (this rank's slice of them under a
        launcher; the slices are gathered). Each batch is seeded from (seed, round, its task ids,
        greedy), so the self-edits depend on the round's tasks and the number of ranks only."""
        batches = self.workbench.edit_batches(distributed.shard(tasks), wanted)
        written = self.workbench.write_edits(
            roles.generator, batches, k, greedy,
            lambda batch: derive_seed(self.config.run.seed, "generate", rnd, *[t.id for t in batch], greedy))
        out = {}
        with tqdm(total=sum(map(len, batches)), desc=desc, unit="task", dynamic_ncols=True,
                  disable=not distributed.is_main()) as bar:
            for batch in written:
                out.update({task.id: (prompt, edits) for task, prompt, edits in batch})
                bar.update(len(batch))
        found = {key: value for part in distributed.gather(out) for key, value in part.items()}
        return {key: value for key, value in found.items() if wanted is None or key in wanted}

    def edit_logprobs(self, tasks: list[TaskInstance], edits: dict[str, tuple[str, list[str]]],
                      roles: Roles) -> dict[tuple[str, int], tuple[list[int] | None, list[float]]]:
        """(sampled token ids or None, per-token log-probs) of each self-edit under the policy that
        wrote it, for algorithms that declare ``needs_logprobs`` (the "old" policy of a clipped-ratio
        update): the sampler's own where the generator reports them, else computed under ``edit_schema``
        (:func:`seal_core.models.logprobs.sampled_logprobs`)."""
        if not algorithm_flag(self.algorithm, "needs_logprobs"):
            return {}
        from seal_core.models.logprobs import sampled_logprobs

        out = {}
        for task in distributed.shard(tasks):
            prompt, task_edits = edits[task.id]
            for i, pair in enumerate(sampled_logprobs(roles.generator, prompt, task_edits, self.edit_schema)):
                out[(task.id, i)] = pair
        return {key: value for part in distributed.gather(out) for key, value in part.items()}

    def eval_row(self, rnd: int, task: TaskInstance, edit: str, score: Any, reason: str | None,
                 student: Any, **extra: Any) -> dict[str, Any]:
        """One line of evaluations.jsonl: the student before and after adapting on ``edit``."""
        before = self.held_out.base(rnd, task, student)
        return {"round": rnd, "task_id": task.id, "edit": edit, "score_before": before.value,
                "score_after": score.value, "reason": reason, "details_before": before.details,
                "details": score.details, **extra}

    @staticmethod
    def reward(before: Any, after: Any) -> float:
        """A rollout's reward: how much adapting on the self-edit moved the student's score on its
        task (the paper's improvement over the current model; negative when it hurt)."""
        return after.value - before.value

    # -- one round -----------------------------------------------------------------------------

    def evaluate(self, rnd: int, tasks: list[TaskInstance], roles: Roles, done: dict[str, dict]) -> dict[str, Any]:
        """Score held-out tasks; ``done`` holds this round's rows already in evaluations.jsonl.

        Each task's row holds its greedy self-edit's score (``score_after``) and, with
        ``eval_samples`` S, the scores of S sampled self-edits (``sampled_scores``, their mean
        ``sampled_score_after``); every score is the mean over ``eval_inner_runs`` inner runs."""
        cfg = self.config.run
        todo = [t for t in tasks if t.id not in done]
        wanted = {t.id for t in todo}
        with self.phase(rnd, "eval_edits", len(todo)):
            edits = self.write_edits(rnd, tasks, roles, 1, True, f"round {rnd} · eval self-edits", wanted)
            sampled = (self.write_edits(rnd, tasks, roles, cfg.eval_samples, False, f"round {rnd} · eval sampled self-edits",
                                        wanted) if cfg.eval_samples else {})
        with self.phase(rnd, "eval_base", len(todo)):
            self.held_out.prefetch(rnd, todo, roles.student)
        rows = dict(done)
        per_task = 1 + cfg.eval_samples
        # the greedy self-edit (index -1), then the sampled ones (-2, -3, ...), task after task
        items = [EditItem(task, -1 - j, (edits[task.id][1] + (sampled[task.id][1] if sampled else []))[j])
                 for task in todo for j in range(per_task)]
        scored_of: dict[str, list[ScoredEdit]] = {}
        with self.phase(rnd, "eval_adapt", len(items)):
            for scored in tqdm(self.held_out.scored_rows(rnd, items, roles.student, lambda one: one,
                                                         runs=cfg.eval_inner_runs),
                               total=len(items), desc=f"round {rnd} · eval adapt+score", unit="edit",
                               dynamic_ncols=True, disable=not distributed.is_main()):
                group = scored_of.setdefault(scored.item.task.id, [])
                group.append(scored)
                if len(group) < per_task:
                    continue
                group.sort(key=lambda one: -one.item.index)  # they finish in any order: the greedy one (-1) first
                greedy, samples = group[0], group[1:]
                extra = trained_counts(greedy)
                if samples:
                    extra |= {"sampled_edits": [str(one.item.edit) for one in samples],
                              "sampled_scores": [one.score.value for one in samples],
                              "sampled_score_after": sum(one.score.value for one in samples) / len(samples)}
                row = self.eval_row(rnd, greedy.item.task, str(greedy.item.edit), greedy.score, greedy.reason,
                                    roles.student, **extra)
                self.store.append_evaluation(row)
                rows[row["task_id"]] = row
        ordered = [rows[t.id] for t in tasks]
        return eval_summary(ordered) | self.collapse([(t.context, [rows[t.id]["edit"]]) for t in tasks], roles,
                                                     "collapse_greedy")

    def collapse(self, groups: list[tuple[str, list[str]]], roles: Roles, prefix: str) -> dict[str, Any]:
        """The collapse metrics (:mod:`seal_core.evaluation.collapse`) of (passage, its self-edits)
        groups, lengths in the generator's tokens."""
        tokenizer = roles.generator.tokenizer
        return collapse_summary(groups, lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]), prefix)

    def collect(self, rnd: int, tasks: list[TaskInstance], roles: Roles,
                done: dict[tuple[str, int], Rollout]) -> list[Rollout]:
        """Score k self-edits per task; ``done`` holds this round's rollouts already on disk."""
        k = self.config.run.edits_per_task
        todo = [t for t in tasks if any((t.id, i) not in done for i in range(k))]
        with self.phase(rnd, "train_edits", len(todo)):
            edits = self.write_edits(rnd, tasks, roles, k, False, f"round {rnd} · train self-edits", {t.id for t in todo})
            logprobs = self.edit_logprobs(todo, edits, roles)
        with self.phase(rnd, "train_base", len(todo)):
            self.rewarder.prefetch(rnd, todo, roles.student)
        items = [EditItem(t, i, edits[t.id][1][i]) for t in todo for i in range(k) if (t.id, i) not in done]
        scored = dict(done)

        def rollout_of(edit: ScoredEdit) -> Rollout:
            item, before = edit.item, self.rewarder.base(rnd, edit.item.task, roles.student)
            details = dict(edit.score.details) | ({"reason": edit.reason} if edit.reason else {})
            details |= trained_counts(edit)
            token_ids, lps = logprobs.get((item.task.id, item.index), (None, None))
            return Rollout(round=rnd, task_id=item.task.id, edit_index=item.index, prompt=edits[item.task.id][0],
                           edit=str(item.edit), score_before=before.value, score_after=edit.score.value,
                           reward=self.reward(before, edit.score), details=details, logprobs=lps, token_ids=token_ids)

        with self.phase(rnd, "train_adapt", len(items)):
            for rollout in tqdm(self.rewarder.scored_rows(rnd, items, roles.student, rollout_of, per_rank=k,
                                                          runs=self.config.run.inner_runs),
                                total=len(items), desc=f"round {rnd} · inner updates", unit="edit", dynamic_ncols=True,
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
                                workdir=self.store.dir, reference=lambda: self.workbench.load(roles.generator.spec),
                                deepspeed=deepspeed_config(cfg.trainer.deepspeed, self.algorithm),
                                components=self.workbench.registry.get, edit_schema=self.edit_schema, report_to=cfg.run.report_to)
        seed_all(context.seed)
        with self.phase(rnd, "update", len(rollouts)):
            if distributed.active() and context.deepspeed is None:  # no DeepSpeed path: rank 0 updates alone
                stats = self.algorithm.update(roles.generator, rollouts, context) if distributed.is_main() else {}
                metrics.update(distributed.broadcast(stats))
                broadcast_weights(roles.generator.model)
            else:
                metrics.update(self.algorithm.update(roles.generator, rollouts, context))
        metrics["seconds"] = round(time.time() - self.round_started, 1)  # so far: a resumed round adds to it
        with self.phase(rnd, "checkpoint", 1):
            save_resume_point(self.store, self.algorithm, roles.generator, rnd, metrics)  # with the algorithm's state

    def restore(self, roles: Roles, state: ResumeState, train: list[TaskInstance]) -> None:
        """The weights after round ``state.weights_round``'s update, from the newest good resume
        point; the updates after it (all of them, from the initial weights, when none is good) are
        redone from their rounds' saved rollouts, as they first ran (:mod:`seal_core.runs.resume`)."""
        start, passed = load_resume_point(self.store, self.algorithm, roles.generator, state.candidates())
        if start == state.weights_round:
            return
        log.warning("resume point missing or damaged; redoing the updates from the saved rollouts", passed=passed,
                    from_round=start + 1, to_round=state.weights_round,
                    starting_from="the initial weights" if start < 0 else f"the point after round {start}")
        k = self.config.run.edits_per_task
        for rnd in range(start + 1, state.weights_round + 1):
            saved = state.rollouts.get(rnd, {})
            wanted = [(t.id, i) for t in self.sample_train(train, rnd) for i in range(k)]
            missing = [key for key in wanted if key not in saved]
            if missing:
                raise SealError(
                    f"{self.store.dir}: the resume point after round {state.weights_round} is missing or damaged "
                    f"({'; '.join(passed) or 'no record'}), and round {rnd}'s update cannot be redone: rollouts.jsonl "
                    f"lacks {len(missing)} of its {len(wanted)} rows (e.g. {missing[0]}). Choices: restore "
                    f"{self.store.points.folder} from a copy, or start a new run.")
            metrics = state.pending_metrics if rnd == state.updated_round else {}
            self.round_started = time.time() - metrics.get("seconds", 0.0)  # the pending round keeps its time
            self.update(rnd, roles, [saved[key] for key in wanted], metrics)

    def run(self, resume: bool = False) -> list[dict[str, Any]]:
        """Run (or, with ``resume``, continue) into the store; returns the metrics lines."""
        store, cfg = self.store, self.config
        train, evals = self.workbench.load_tasks()
        log.info("tasks loaded", domain=self.domain.name, train=len(train), eval=len(evals),
                 train_per_round=min(cfg.domain.train_limit or len(train), len(train)))
        if resume and distributed.is_main():
            rows = {store.rollouts_path.name: len(self.sample_train(train, 0)) * cfg.run.edits_per_task,
                    store.evaluations_path.name: len(evals)}
            state = ResumeState.read(store, cfg.run.rounds, rows)
        else:
            state = ResumeState()
        state = distributed.broadcast(state)  # rank 0 reads the run directory, for every rank
        if state.finished(cfg.run.rounds):
            log.info("run already finished; nothing to resume", run_dir=str(store.dir))
            return state.metrics
        roles = self.setup.build(self.workbench.load, asdict(cfg.model))
        if state.weights_round >= 0:
            self.restore(roles, state, train)  # weights and the algorithm's state, after the last update
            log.info("resuming", run_dir=str(store.dir), finished_rounds=state.next_round,
                     weights_after_update_of_round=state.weights_round)
        self.hooks.seal_run_started(run_dir=store.dir, config=cfg.raw)
        title = f"SEAL {self.domain.name} · {cfg.components['algorithm']} · {roles.generator.spec}"
        all_metrics = list(state.metrics)
        for rnd in range(state.next_round, cfg.run.rounds + 1):
            self.round_started = time.time()
            self.phase_seconds = {}
            log.info("round started", round=rnd, of=cfg.run.rounds)
            if state.updated_round == rnd:  # killed after this round's update: all but the line is saved
                metrics = dict(state.pending_metrics)
                self.round_started -= metrics.get("seconds", 0.0)  # the round's time before the kill counts too
            else:
                metrics = {"round": rnd, **self.model_shas(roles)}
                metrics.update(self.evaluate(rnd, evals, roles, state.evaluations.get(rnd, {})))
            if rnd < cfg.run.rounds and state.updated_round != rnd:
                tasks = self.sample_train(train, rnd)
                rollouts = self.collect(rnd, tasks, roles, state.rollouts.get(rnd, {}))
                metrics.update(train_summary(rollouts))
                metrics.update(self.collapse([(t.context, [r.edit for r in rollouts if r.task_id == t.id]) for t in tasks],
                                             roles, "collapse_sampled"))
                self.update(rnd, roles, rollouts, metrics)
                if cfg.run.checkpoint == "every_round":
                    with self.phase(rnd, "checkpoint", 1):
                        save_policy(store, roles.generator, f"policy-round{rnd + 1}", cfg, [*all_metrics, metrics],
                                    self.command)
            metrics["seconds"] = round(time.time() - self.round_started, 1)
            metrics["phase_seconds"] = {name: round(s, 2) for name, s in self.phase_seconds.items()}
            store.append_metrics(metrics)
            all_metrics.append(metrics)
            if store.writes:
                write_results(store.dir, all_metrics, title)
            self.hooks.seal_round_finished(round=rnd, metrics=metrics, run_dir=store.dir)
            log.info("round finished", **{k: v for k, v in metrics.items() if not isinstance(v, dict)})
            self.stop.check()
        if cfg.run.checkpoint != "none":  # every_round's policy-roundN/ come in addition to the final policy/
            save_policy(store, roles.generator, "policy", cfg, all_metrics, self.command)
        store.drop_resume_point()
        return all_metrics
