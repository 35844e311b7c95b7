"""``seal-run adapt``: SEAL's deployment use. A trained policy writes a self-edit for each new
document, and the student learns the document from it::

    seal-run adapt --policy runs/my-run/checkpoints/policy --documents DOCS --out OUT [--merge]
        [--student SPEC] [--limit N] [--config FILE.yaml] [--set KEY=VALUE]...
    seal-run adapt --resume OUT

1. Documents are read from ``--documents`` (:mod:`seal_core.deploy.documents`; ``--limit N``: the first N);
   one that cannot be read is reported by name and skipped.
2. The policy writes one greedy self-edit per document, with the configured domain's prompt
   (``domain.prompt``) and edit generator; each lands in ``OUT/self_edits/NAME.txt`` as it is
   written, so a user can read what the model taught itself.
3. The student (``--student``, default: the policy itself, as in the paper's single-model setup)
   is fine-tuned on the domain's training set of each self-edit with the configured inner updater
   (``inner.*``), exactly as a run trains it. An empty self-edit is learned the same way, from
   what the domain's training set still holds (the knowledge domain's ``include_passage``, on by
   default: the document's own text), with a warning; a document whose training set is empty
   (``include_passage`` off) or whose self-edit the domain rejects is reported and skipped.
   Without ``--merge`` each document's LoRA adapter is saved as a peft adapter directory
   ``OUT/adapters/NAME/`` (with its ``self_edit.txt``), and the student is reset before the next
   document: ``PeftModel.from_pretrained(student, OUT/adapters/NAME)`` is the student that learned
   that document. With ``--merge`` the documents are learned one after another, each merged into
   the weights, and ``OUT/model/`` is the student that learned them all (a ``save_pretrained``
   directory).

Resume: ``--resume OUT`` continues with OUT's own ``config.yaml`` and ``adapt.json``; self-edits
and adapters already written are kept, and with ``--merge`` the weights after the last learned
document (``OUT/checkpoints/resume.safetensors``, saved after each) are the starting point. Ctrl-C
stops after the current document.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog
from tqdm import tqdm

from seal_core.runs.checkpoints import write_model_dir
from seal_core.loop.config import Config
from seal_core.deploy.documents import Document, read_documents
from seal_core.api.errors import DataError, EditRejected, SealError
from seal_core.deploy.lora_export import save_peft_adapter
from seal_core.loop.workbench import Workbench
from seal_core.models.loading import ensure_embedded_cache
from seal_core.runs.store import RunStore
from seal_core.runtime.files import atomic_write_text
from seal_core.runtime.seeding import derive_seed, seed_all
from seal_core.api.types import LoadedModel, TaskInstance, TrainingSet

log = structlog.get_logger(__name__)


@dataclass
class AdaptPlan:
    """What ``seal-run adapt`` was asked to do; ``OUT/adapt.json`` keeps it for ``--resume``."""

    policy: str  # the model spec that writes the self-edits
    documents: str  # a file or a folder of documents
    student: str | None = None  # the model that learns them; None: the policy itself
    merge: bool = False  # one model that learned every document, instead of an adapter per document
    command: str | None = None  # the command line, for the model cards
    limit: int | None = None  # only the first N readable documents; None: all

    def save(self, out: Path) -> None:
        atomic_write_text(out / "adapt.json", json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, out: Path) -> "AdaptPlan":
        path = out / "adapt.json"
        if not path.is_file() or not (out / "config.yaml").is_file():
            raise SealError(f"'{out}' is not a seal-run adapt output to resume (no adapt.json and config.yaml). "
                            "Pass the --out directory of an earlier seal-run adapt.")
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def base_model_path(spec: str) -> str:
    """What a peft adapter names as its base: a path or hub id that loads from anywhere (the
    embedded model's converted cache, a local directory made absolute), else the spec itself
    (``tiny-random``, which ``seal-run ask`` loads)."""
    if spec == "embedded":
        return str(ensure_embedded_cache())
    local = Path(spec).expanduser()
    return str(local.resolve()) if local.exists() else spec


def check_plan(plan: AdaptPlan, config: Config, registry: Any) -> None:
    """User errors that can be found before any model loads."""
    from seal_core.models.loading import check_spec

    if plan.student is not None:
        check_spec(plan.student, "--student")
    if plan.limit is not None and plan.limit < 1:
        raise SealError(f"--limit must be >= 1 (the number of documents to learn), got {plan.limit}.")
    if not Path(plan.documents).exists():
        raise DataError(f"--documents {plan.documents}: no such file or folder. Pass a .txt, .md, .json or .jsonl "
                        "file, or a folder of them.")
    updater = registry.get("inner_updater", config.components["inner"])
    if plan.merge and not getattr(updater, "can_merge", False):
        raise SealError(f"--merge folds each document into the weights, which inner updater '{updater.name}' cannot "
                        "do. Use --set inner.name=lora (or multi-lora, full), or drop --merge.")
    if not plan.merge and config.components["inner"] == "full":
        raise SealError("inner.name=full changes every weight, so there is no LoRA adapter per document to save. "
                        "Pass --merge for one adapted model, or use inner.name=lora or multi-lora.")


class Adapter:
    """Runs one ``seal-run adapt`` into its output directory."""

    def __init__(self, config: Config, registry: Any, plan: AdaptPlan, out: Path, stop: Any):
        self.config, self.plan, self.out, self.stop = config, plan, out, stop
        self.workbench = Workbench(config, registry)  # the run's own path: loading, self-edits, training sets
        self.updater = self.workbench.updater
        self.skipped: dict[str, str] = {}

    def skip(self, name: str, why: str) -> None:
        self.skipped[name] = why
        log.warning("document skipped", document=name, reason=why)

    def task(self, doc: Document) -> TaskInstance:
        return TaskInstance(id=doc.name, context=doc.text, evaluation={"title": doc.title, "questions": []})

    def run(self) -> dict[str, Any]:
        docs, unreadable = read_documents(Path(self.plan.documents))
        for name, why in unreadable:
            self.skip(name, why)
        if not docs:
            found = "; ".join(f"{n} {w}" for n, w in unreadable) or "no file found"
            raise DataError(f"--documents {self.plan.documents}: no readable document (.txt, .md, or .json/.jsonl "
                            f"records with a 'text' field); skipped: {found}. Point --documents at such files.")
        tasks = [self.task(d) for d in docs[:self.plan.limit]]
        policy = self.workbench.load(self.plan.policy)
        edits = self.write_edits(policy, tasks)
        student = policy if self.plan.student in (None, self.plan.policy) else self.workbench.load(self.plan.student)
        learned = self.learn_merged(student, tasks, edits) if self.plan.merge else self.learn_each(student, tasks, edits)
        atomic_write_text(self.out / "skipped.json", json.dumps(self.skipped, indent=2) + "\n")
        return {"learned": learned, "skipped": self.skipped}

    # -- 1. self-edits ---------------------------------------------------------------------------

    def write_edits(self, policy: LoadedModel, tasks: list[TaskInstance]) -> dict[str, str]:
        """One greedy self-edit per document, written in the generator's batches (documents in
        order) and each saved as its batch finishes; a file already there (an earlier run's, or
        edited by hand) is kept as it is."""
        folder = self.out / "self_edits"
        folder.mkdir(exist_ok=True)
        missing = {task.id for task in tasks if not (folder / f"{task.id}.txt").is_file()}
        batches = self.workbench.edit_batches(tasks, missing)
        written = self.workbench.write_edits(policy, batches, 1, True,
                                             lambda batch: derive_seed(self.config.run.seed, "adapt-edit",
                                                                       *[task.id for task in batch]))
        with tqdm(total=len(tasks), initial=len(tasks) - len(missing), desc="self-edits", unit="doc",
                  dynamic_ncols=True) as bar:
            for batch in written:
                for task, _, (edit,) in batch:
                    if task.id in missing:
                        atomic_write_text(folder / f"{task.id}.txt", edit)
                        bar.update(1)
                self.stop.check()
        return {task.id: (folder / f"{task.id}.txt").read_text(encoding="utf-8") for task in tasks}

    # -- 2. learning -----------------------------------------------------------------------------

    def training_set(self, task: TaskInstance, edit: str) -> TrainingSet | None:
        """The domain's training set of the self-edit, as a run builds it, with the inner loop's
        randomness seeded for this document (run seed and task id); None (reported) when the domain
        rejects it or it holds no text. An empty self-edit is learned from what the set still holds."""
        if not edit.strip():
            log.warning("empty self-edit; learning the document from its training set without it",
                        document=task.id, domain=self.workbench.domain.name)
        try:
            data = self.workbench.training_set(task, edit)
        except EditRejected as exc:
            empty = "the policy wrote an empty self-edit and " if not edit.strip() else "the self-edit is unusable: "
            self.skip(task.id, empty + str(exc))
            return None
        seed_all(derive_seed(self.config.run.seed, "adapt", task.id))
        return data

    def learn_each(self, student: LoadedModel, tasks: list[TaskInstance], edits: dict[str, str]) -> list[str]:
        """A peft adapter per document in ``OUT/adapters/NAME/``; the student is reset after each."""
        learned = []
        for task in tqdm(tasks, desc="learning (adapter per document)", unit="doc", dynamic_ncols=True):
            target = self.out / "adapters" / task.id
            if target.is_dir():
                learned.append(task.id)
                continue
            data = self.training_set(task, edits[task.id])
            if data is None:
                continue
            try:
                with self.updater.adapted(student, data) as adapted:
                    save_peft_adapter(adapted.model, target, base_model_path(student.spec), self.updater.name,
                                      files={"self_edit.txt": edits[task.id], "README.md": self.adapter_card(task, student)})
            except EditRejected as exc:
                self.skip(task.id, f"fine-tuning on its self-edit failed: {exc}")
                continue
            learned.append(task.id)
            self.stop.check()
        return learned

    def learn_merged(self, student: LoadedModel, tasks: list[TaskInstance], edits: dict[str, str]) -> list[str]:
        """Every document learned in turn and merged into the weights; ``OUT/model/`` at the end.
        After each document the weights and the names learned are the resume point."""
        store = RunStore(self.out)
        point = store.read_resume_point()
        learned = list(point["metrics"]["learned"]) if point else []
        if point:
            store.load_resume_point(student)
        for task in tqdm(tasks, desc="learning (merged)", unit="doc", dynamic_ncols=True):
            if task.id in learned:
                continue
            data = self.training_set(task, edits[task.id])
            if data is None:
                continue
            failed = self.workbench.learn(student, data)
            if failed is not None:
                self.skip(task.id, f"fine-tuning on its self-edit failed: {failed}")
                continue
            learned.append(task.id)
            store.save_resume_point(student.model, len(learned), {"learned": learned})
            self.stop.check()
        write_model_dir(student, self.out / "model", self.merged_card(student, learned))
        store.drop_resume_point()
        return learned

    # -- model cards -----------------------------------------------------------------------------

    def _made_by(self) -> str:
        inner = self.config.components["inner"]
        return (f"Made by `{self.plan.command or 'seal-run adapt'}`: the self-edit was written by `{self.plan.policy}` "
                f"(domain `{self.config.components['domain']}`, prompt from `domain.*`) and learned with inner updater "
                f"`{inner}`.")

    def adapter_card(self, task: TaskInstance, student: LoadedModel) -> str:
        return "\n".join([
            "---", "library_name: peft", "tags:", "- seal", "- lora", "---", "",
            f"# LoRA adapter: {task.evaluation['title']}", "",
            f"`{student.spec}` after learning the document `{task.id}` from its own self-edit "
            "(`self_edit.txt` beside this file), with SEAL (arXiv 2506.10943).", "",
            self._made_by(), "",
            "```python",
            "from peft import PeftModel",
            f"model = PeftModel.from_pretrained(base_model, \"{self.out / 'adapters' / task.id}\")",
            "```", "",
        ])

    def merged_card(self, student: LoadedModel, learned: list[str]) -> str:
        return "\n".join([
            "---", "library_name: transformers", "tags:", "- seal", "---", "",
            f"# `{student.spec}` after learning {len(learned)} documents", "",
            "Each document was learned from a self-edit (`../self_edits/`) and merged into the weights, in this order: "
            + ", ".join(f"`{n}`" for n in learned) + ".", "",
            self._made_by(), "",
            "## Configuration", "", "```yaml", self.config.to_yaml().rstrip(), "```", "",
        ])


# -- the command ---------------------------------------------------------------------------------


def plan_from_args(args: Any) -> tuple[AdaptPlan, Path]:
    """The plan and the output directory of ``seal-run adapt``'s arguments; with ``--resume`` the
    ones saved in OUT (``args.config`` then points at OUT's config.yaml), else ``model.policy``
    joins the overrides."""
    import shlex

    if args.resume:
        if (args.policy or args.documents or args.out or args.student or args.merge or args.limit or args.config
                or args.overrides):
            raise SealError(f"--resume takes every setting from {args.resume}/adapt.json and config.yaml; drop the "
                            "other options (start a new --out to change them).")
        out = Path(args.resume)
        plan = AdaptPlan.read(out)
        args.config = str(out / "config.yaml")
        return plan, out
    missing = [flag for flag, value in (("--policy", args.policy), ("--documents", args.documents),
                                        ("--out", args.out)) if not value]
    if missing:
        raise SealError(f"seal-run adapt needs {', '.join(missing)} (or --resume OUT). Example: seal-run adapt "
                        "--policy runs/my-run/checkpoints/policy --documents notes/ --out runs/adapted")
    plan = AdaptPlan(args.policy, args.documents, args.student, args.merge, shlex.join(["seal-run", *args.argv]),
                     args.limit)
    args.overrides = [*args.overrides, f"model.policy={args.policy}"]
    return plan, Path(args.out)


def run_command(plan: AdaptPlan, out: Path, config: Config, registry: Any, resumed: bool, plugins: list[str]) -> int:
    """Check the plan, make (or reopen) OUT, adapt, print where everything is; 130 on Ctrl-C."""
    import sys

    from seal_core.runs.lock import RunLock
    from seal_core.runtime import logs
    from seal_core.runtime.files import StorageError, writable
    from seal_core.runtime.interrupt import Interrupted, StopFlag

    check_plan(plan, config, registry)
    if not resumed:
        RunStore.create(out, config.to_yaml())
    hint = f"seal-run adapt --resume {out}" + "".join(f" --plugins {p}" for p in plugins)
    stop = StopFlag()
    try:
        if not resumed:
            plan.save(out)
        else:
            writable(out)
        with RunLock(out, plan.command or "seal-run adapt"):  # one writer per output directory
            logs.configure(out / "log.jsonl")
            try:
                with stop.on_sigint():
                    result = Adapter(config, registry, plan, out, stop).run()
            except Interrupted:
                print(f"\nInterrupted. Finished documents are saved. Resume with:\n  {hint}", file=sys.stderr)
                return 130
            finally:
                logs.configure()
    except StorageError as exc:
        raise SealError(f"{exc} The documents learned so far are saved. Free space (or make {out} writable "
                        f"again), then continue with: {hint}") from None
    for name, why in result["skipped"].items():
        print(f"  skipped {name}: {why}")
    if not result["learned"]:
        raise SealError(f"seal-run adapt learned no document: each one was skipped, for the reason printed above "
                        f"(also in {out / 'skipped.json'}; the self-edits are in {out / 'self_edits'}). Fix what the "
                        "reasons name (the documents, domain.include_passage, the policy) and run it again.")
    where = f"{out / 'model'} (merged)" if plan.merge else f"{out / 'adapters'}/<name> (peft adapters)"
    print(f"Learned {len(result['learned'])} document(s): {where}; self-edits in {out / 'self_edits'}")
    return 0
