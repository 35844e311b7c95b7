"""Self-edits written in batches across tasks (``generator.batch_size``): the same texts as one at
a time where the arithmetic is the same, the same self-edits after a resume that splits a batch,
and left-padded log-probs that the RL algorithms read back as their own (ratio 1).

tiny-random writes only newlines or ends at once; these tests make it write tokens (the ``writing``
fixture).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seal_core.commands.main import main
from seal_core.models.loading import load_model
from seal_core.runs.store import RunStore
from seal_core.runtime.seeding import seed_all
from seal_plugins.hf_generate import HFGenerate, HFGenerateOptions
from tiny import Killed, tiny_args


@pytest.fixture
def writing(monkeypatch):
    """hf-generate made to write text on tiny-random, which would write only newlines or end at
    once: newline and eos are suppressed, so every self-edit runs to max_new_tokens."""
    original = HFGenerate.generate

    def generate(self, model, prompts, k, **kwargs):
        model.model.generation_config.suppress_tokens = [model.tokenizer.convert_tokens_to_ids("Ċ"),
                                                         model.tokenizer.eos_token_id]
        return original(self, model, prompts, k, **kwargs)

    monkeypatch.setattr(HFGenerate, "generate", generate)


def equal_length_prompts(tokenizer) -> list[str]:
    from seal_core.models.prompting import format_prompt

    prompts = ["Passage: a red bell.", "Passage: a blue kite.", "Passage: a green mill."]
    lengths = {len(tokenizer(format_prompt(tokenizer, p), add_special_tokens=False)["input_ids"]) for p in prompts}
    assert len(lengths) == 1, "the test needs prompts of one length (no padding)"
    return prompts


def test_greedy_batches_write_what_one_prompt_at_a_time_writes(writing):
    loaded = load_model("tiny-random")
    generator = HFGenerate().configured(HFGenerateOptions(max_new_tokens=10))
    prompts = equal_length_prompts(loaded.tokenizer)
    together = generator.generate(loaded, prompts, 1, greedy=True)
    alone = [generator.generate(loaded, [p], 1, greedy=True)[0] for p in prompts]
    assert together == alone
    assert all(edit[0] for edit in together) and len({edit[0] for edit in together}) > 1  # real, distinct texts


@pytest.mark.parametrize("name", ["grpo", "rloo", "ppo"])
def test_left_padded_samples_are_the_policys_own_log_probs(name, registry, tmp_path):
    """Prompts of different lengths sampled in one left-padded batch: the log-probs stored with
    each self-edit are what the algorithm computes for it before any update, so its first
    importance ratio is 1 (approx_kl_old 0, nothing clipped). Sampled at temperature 1 from the
    unwarped distribution (tiny-random's samples do not end at once), the stored log-probs are
    the model's."""
    from seal_core import Rollout, UpdateContext

    loaded = load_model("tiny-random")
    loaded.model.generation_config.top_k = 0  # sample from the model's own distribution (no top-k, top-p)
    generator = HFGenerate().configured(HFGenerateOptions(temperature=1.0, top_p=1.0, max_new_tokens=10))
    prompts = ["A bell.", "The Orrick mill grinds barley and rye every autumn."]  # different lengths: padding
    seed_all(3)
    edits = generator.generate(loaded, prompts, 2)
    rollouts = [Rollout(round=0, task_id=f"t{i}", edit_index=j, prompt=prompts[i], edit=str(e), score_before=0.0,
                        score_after=float(j), reward=float(j), logprobs=e.logprobs, token_ids=e.token_ids)
                for i, task_edits in enumerate(edits) for j, e in enumerate(task_edits)]
    algorithm = registry.get("algorithm", name)
    algorithm = algorithm.configured(algorithm.Options(learning_rate=1e-6, batch_size=len(rollouts), epochs=1))
    stats = algorithm.update(loaded, rollouts, UpdateContext(round=0, seed=0, workdir=tmp_path, components=registry.get))
    assert abs(stats["approx_kl_old"]) < 1e-5 and stats["clip_frac"] == 0.0


def edits_of(run_dir: Path) -> dict:
    rows = [json.loads(line) for line in (run_dir / "rollouts.jsonl").read_text().splitlines()]
    return {(r["round"], r["task_id"], r["edit_index"]): r["edit"] for r in rows}


def test_a_resume_that_splits_a_generation_batch_writes_the_same_self_edits(tmp_path, monkeypatch, writing):
    """Four tasks' self-edits are written in one batch; the run is killed after the first inner
    batch (3 of 8 self-edits), so the resumed round needs tasks 1-3 only: it rewrites the whole
    batch, and every self-edit equals the uninterrupted run's."""
    config = ("domain.train_limit=4", "generator.batch_size=4", "inner.max_adapters=3", "generator.max_new_tokens=10",
              "domain.eval_limit=2", "algorithm.min_reward=-1")
    reference = tmp_path / "reference"
    assert main(tiny_args("run", reference, *config)) == 0
    run_dir = tmp_path / "run"
    original, count = RunStore.append_rollout, {"n": 0}

    def killed_after_three(self, rollout):
        original(self, rollout)
        count["n"] += 1
        if count["n"] == 3:
            raise Killed

    with monkeypatch.context() as mp:
        mp.setattr(RunStore, "append_rollout", killed_after_three)
        with pytest.raises(Killed):
            main(tiny_args("run", run_dir, *config))
    assert len(edits_of(run_dir)) == 3
    assert main(["run", "--resume", str(run_dir)]) == 0
    expected = edits_of(reference)
    assert edits_of(run_dir) == expected
    assert len({edit for edit in expected.values()}) > 2  # the self-edits differ: the check has teeth
