"""A trained policy as a model directory people can use: ``save_pretrained`` and a model card.

``checkpoints/policy/`` (and ``checkpoints/policy-roundN/`` with ``checkpoint=every_round``) holds
what ``AutoModelForCausalLM.from_pretrained``, vLLM and ``model.policy`` load: ``config.json``,
``model.safetensors``, ``generation_config.json``, the tokenizer's files, and ``README.md``, a
model card (base model, method, the metrics table, the resolved config, the command that made
it). The directory is written beside its final name and renamed into place, so it is either
absent or complete. In ``teacher-student`` the saved model is the teacher: the one RL trains.

``--push-to-hub REPO`` uploads the final directory after the run (off by default); it needs hub
access and a token in the environment (``HF_TOKEN`` or ``hf auth login``), never in a file here.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import structlog

from seal_core import __version__
from seal_core.api.errors import SealError
from seal_core.models.loading import is_random_spec, is_tiny_spec, plain_copy, weights_sha
from seal_core.runtime.files import build_atomically
from seal_core.runs.results import results_table
from seal_core.runtime.files import fsync_tree
from seal_core.api.types import LoadedModel

#: the hub id of the offline ``embedded`` model, for the card's ``base_model`` field
EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def base_model_id(spec: str) -> str | None:
    """The hub id a model card can name as ``base_model``: the embedded model's, a hub id as
    given, nothing for random models and local directories."""
    if spec == "embedded":
        return EMBEDDED_HUB_ID
    if is_tiny_spec(spec) or is_random_spec(spec) or Path(spec).expanduser().exists():
        return None
    return spec if spec.count("/") == 1 and not spec.startswith((".", "/", "~")) else None


def updates_line(metrics: list[dict[str, Any]], sha: str | None) -> str:
    """Which RL updates changed the policy, from the generator's weight hash at each round's start
    (``generator_sha``) and ``sha``, the saved weights' (an update that keeps nothing, such as
    rest-em's when no self-edit beats ``min_reward``, leaves the hash as it was)."""
    shas = [m.get("generator_sha") for m in metrics] + [sha]
    updates = [(m.get("round", i), before, after) for i, (m, before, after) in enumerate(zip(metrics, shas, shas[1:]))
               if "train_reward_mean" in m and before and after]  # the rounds that collected rollouts and updated
    changed = [r for r, before, after in updates if before != after]
    same = [r for r, before, after in updates if before == after]
    if not changed and not same:
        return "no RL update has run yet"
    return (f"the RL updates changed the policy in round(s) {', '.join(map(str, changed)) or 'none'}"
            + (f" and left it unchanged in round(s) {', '.join(map(str, same))}" if same else ""))


def model_card(spec: str, config: Any, metrics: list[dict[str, Any]], command: str | None, name: str,
               sha: str | None = None) -> str:
    """README.md of a saved policy: what it is, how it was made, how it did, how to load it
    (``sha``: the saved weights' hash, to tell which rounds' updates changed them)."""
    base = base_model_id(spec)
    algorithm, domain = config.components["algorithm"], config.components["domain"]
    header = ["---", "library_name: transformers", *([f"base_model: {base}"] if base else []),
              "tags:", "- seal", "- self-adapting-llm", f"- {algorithm}", "---", ""]
    rounds_done = max((m.get("round", 0) for m in metrics), default=0)
    lines = [
        f"# SEAL policy `{name}`",
        "",
        "A policy trained with SEAL (Self-Adapting LLMs, Zweiger et al. 2025, arXiv 2506.10943): it reads a "
        f"context of the `{domain}` domain and writes a self-edit, its own fine-tuning data, and was "
        f"rewarded by RL ({algorithm}) for self-edits that made the student learn the context.",
        "",
        f"- base model: `{spec}`" + (f" ({base})" if base and base != spec else ""),
        f"- method: SEAL, setup `{config.run.setup}`, algorithm `{algorithm}`, domain `{domain}`, "
        f"inner updater `{config.components['inner']}`; this checkpoint: after round {rounds_done} of "
        f"{config.run.rounds}; {updates_line(metrics, sha)}",
        f"- made by: `{command or 'seal-run run'}` (seal-framework {__version__})",
        "",
        "## Use",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        'model = AutoModelForCausalLM.from_pretrained("PATH")  # this directory',
        'tokenizer = AutoTokenizer.from_pretrained("PATH")',
        "```",
        "",
        "Continue SEAL from it with `seal-run run --set model.policy=PATH`; let it teach a student new "
        "documents with `seal-run adapt --policy PATH --documents DOCS --out OUT`.",
        "",
        "## Metrics",
        "",
        "Held-out scores per round (round 0: before any RL update).",
        "",
        results_table(metrics) if metrics else "(no round finished)",
        "",
        "## Configuration",
        "",
        "```yaml",
        config.to_yaml().rstrip(),
        "```",
        "",
    ]
    return "\n".join(header + lines)


def write_model_dir(loaded: LoadedModel, target: Path, card: str | None = None) -> Path:
    """``loaded``'s base weights (adapters stripped), generation config and tokenizer as a
    ``save_pretrained`` directory at ``target`` (safetensors), with ``card`` as README.md; written
    beside ``target`` and renamed into place. The copy is made on the CPU, so a GPU holds only
    the live model."""
    def build(tmp: Path) -> None:
        plain = plain_copy(loaded, device="cpu").model
        generation = getattr(loaded.model, "generation_config", None)
        if generation is not None:
            plain.generation_config = copy.deepcopy(generation)
        plain.save_pretrained(tmp, safe_serialization=True)
        loaded.tokenizer.save_pretrained(tmp)
        if card is not None:
            (tmp / "README.md").write_text(card, encoding="utf-8")
        fsync_tree(tmp)

    return build_atomically(target, build)


def check_push(repo: str | None, checkpoint: str) -> None:
    """Refuse ``--push-to-hub`` before the run starts when it could not succeed at its end."""
    if repo is None:
        return
    if checkpoint == "none":
        raise SealError(f"--push-to-hub {repo} uploads the final policy, but checkpoint=none saves none. "
                        "Drop --set checkpoint=none, or drop --push-to-hub.")
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise SealError(f"--push-to-hub {repo} needs hub access, but HF_HUB_OFFLINE is set (offline). Unset "
                        "HF_HUB_OFFLINE and log in (hf auth login, or HF_TOKEN in the environment), or drop "
                        "--push-to-hub and upload checkpoints/policy later with `hf upload REPO DIR`.")


def push_to_hub(path: Path, repo: str) -> str:
    """Upload the model directory ``path`` to the hub repository ``repo`` (created if missing,
    private); returns the repository's URL. A failure is a :class:`SealError` saying the run is
    saved and how to upload it by hand."""
    try:
        from huggingface_hub import HfApi

        api = HfApi()
        url = api.create_repo(repo, repo_type="model", private=True, exist_ok=True)
        api.upload_folder(repo_id=repo, folder_path=str(path), repo_type="model",
                          commit_message="SEAL policy from seal-run")
    except Exception as exc:  # offline, no token, no permission, network: the run itself is saved
        raise SealError(f"--push-to-hub {repo}: the upload failed ({type(exc).__name__}: {exc}). The run is "
                        f"complete and the policy is saved in {path}; upload it when the hub is reachable and "
                        f"you are logged in: hf upload {repo} {path}") from exc
    return str(url)


def save_policy(store: Any, policy: LoadedModel, name: str, config: Any, metrics: list[dict[str, Any]],
                command: str | None = None) -> Path:
    """The run's policy (the generator, which RL trains) as ``checkpoints/NAME/`` with its model
    card, which names ``command`` (the command line that made the run). Only a store that writes
    (rank 0's) saves it; the path is returned either way."""
    path = store.dir / "checkpoints" / name
    if not store.writes:
        return path
    write_model_dir(policy, path, model_card(policy.spec, config, metrics, command, name, weights_sha(policy.model)))
    structlog.get_logger(__name__).info("checkpoint saved", path=str(path))
    return path
