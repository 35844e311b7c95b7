"""Two rewards for the same self-edits: greedy containment (`qa`, the paper's kind) and the gold
answers' log-probability (`answer-likelihood`). Which one ranks self-edits the way held-out
questions do, and which one is noisier?

    .venv/bin/python benchmarks/dev/reward_noise.py     # 11 minutes alone on a 2-core CPU (2026-11-28)
    .venv/bin/python benchmarks/dev/reward_noise.py --passages 2 --edits 2 --seeds 0,1 --epochs 1   # smoke run, ~7 min

The embedded model writes ``--edits`` self-edits (sampled, the quickstart's generator settings)
for each of ``--passages`` bundled training passages. Each self-edit is trained with the
quickstart's inner loop (``multi-lora``, 5 epochs at 2e-3) at every seed of ``--seeds`` (data
order and adapter initialisation follow the seed), and every question of its passage is scored
both ways. Each passage's questions are split in two: the *reward* half (what a reward sees)
and the *held-out* half (what the self-edit should help with). For each reward:

- ``spearman_vs_heldout``: Spearman's rank correlation, over all self-edits, between the reward
  (adapted minus unadapted, on the reward half, at one seed) and the held-out improvement
  (containment on the held-out half, adapted minus unadapted, averaged over the seeds), one
  value per seed, then their mean;
- ``within_passage_spearman``: the same correlation taken within each passage (the ranking that
  ReST^EM and GRPO act on) and averaged over passages and seeds;
- ``noise_share``: the share of the reward's variance across (self-edit, seed) cells that is
  seed-to-seed noise of one self-edit (the within-self-edit variance over the total; 0 is
  noiseless, 1 is all noise);
- ``ties``: the share of pairs of self-edits of one passage that the reward cannot tell apart.

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing


def ranks(values: list[float]) -> list[float]:
    """Average ranks (ties share the mean of their positions)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2
        i = j + 1
    return out


def spearman(a: list[float], b: list[float]) -> float | None:
    """Spearman's rho (Pearson on average ranks); None when either side is constant."""
    ra, rb = ranks(a), ranks(b)
    if len(set(ra)) < 2 or len(set(rb)) < 2:
        return None
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    return cov / (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5


def measure(args) -> list[dict]:
    """One row per (passage, self-edit, seed): per-question containment and log-prob, adapted and base."""
    from seal_core.evaluation.answer_likelihood import AnswerLikelihoodEvaluator
    from seal_core.models.generation import generate_texts
    from seal_core.models.loading import load_model
    from seal_core.models.prompting import format_prompt
    from seal_core.evaluation.qa import QAEvaluator, contains
    from seal_core.runtime.seeding import derive_seed, seed_all
    from seal_domains.knowledge import KnowledgeDomain
    from seal_plugins.multi_lora import MultiLoraOptions, MultiLoraUpdater
    from tqdm import tqdm

    loaded = load_model("embedded")
    domain = KnowledgeDomain()
    tasks = sorted(domain.load_tasks("train"), key=lambda t: t.id)[: args.passages]
    qa, dense = QAEvaluator(), AnswerLikelihoodEvaluator()

    def per_question(model, task, score_qa, score_dense):
        questions = task.evaluation["questions"]
        cont = [max(contains(p, g) for g in q["answers"]) for p, q in zip(score_qa.details["predictions"], questions)]
        return cont, score_dense.details["per_question"]

    base = {t.id: per_question(loaded.model, t, qa.evaluate(loaded.model, loaded.tokenizer, t),
                               dense.evaluate(loaded.model, loaded.tokenizer, t)) for t in tasks}
    items = []
    for t in tqdm(tasks, desc="self-edits", unit="passage"):
        seed_all(derive_seed(0, "reward-noise", t.id))
        prompt = format_prompt(loaded.tokenizer, domain.edit_prompt(t))
        edits = generate_texts(loaded.model, loaded.tokenizer, [prompt], max_new_tokens=128, do_sample=True,
                               temperature=1.0, top_p=0.95, num_return_sequences=args.edits)
        items += [(t, i, e) for i, e in enumerate(edits)]
    up = MultiLoraUpdater().configured(MultiLoraOptions(r=32, alpha=64.0, learning_rate=2e-3, epochs=args.epochs,
                                                        batch_size=8, max_adapters=8))
    rows = []
    for seed in args.seeds:
        for start in tqdm(range(0, len(items), 8), desc=f"seed {seed}", unit="batch"):
            chunk = items[start:start + 8]
            datas = [domain.training_set(t, e) for t, _, e in chunk]
            seeds = [derive_seed(seed, "inner", 0, t.id, i) for t, i, _ in chunk]
            with up.adapted_batch(loaded, datas, seeds) as batch:
                tasks_ = [t for t, _, _ in chunk]
                got_qa = qa.evaluate_routed(loaded.model, loaded.tokenizer, tasks_, batch.rows)
                got_dense = dense.evaluate_routed(loaded.model, loaded.tokenizer, tasks_, batch.rows)
            for (t, i, e), sq, sd in zip(chunk, got_qa, got_dense):
                cont, logp = per_question(loaded.model, t, sq, sd)
                rows.append({"passage": t.id, "edit": i, "seed": seed, "containment": cont, "logprob": logp,
                             "base_containment": base[t.id][0], "base_logprob": base[t.id][1], "text": e[:300]})
    return rows


def analyse(rows: list[dict], seeds: list[int]) -> dict:
    half = lambda xs, part: xs[0::2] if part == "reward" else xs[1::2]  # noqa: E731  (alternate questions)
    mean = statistics.fmean

    def gain(row, metric, part):
        return mean(half(row[metric], part)) - mean(half(row[f"base_{metric}"], part))

    edits = sorted({(r["passage"], r["edit"]) for r in rows})
    by = {(r["passage"], r["edit"], r["seed"]): r for r in rows}
    heldout = {e: mean(gain(by[(*e, s)], "containment", "heldout") for s in seeds) for e in edits}
    out = {"self_edits": len(edits), "passages": len({p for p, _ in edits}), "seeds": seeds,
           "questions": sum(len(by[(*e, seeds[0])]["containment"]) for e in edits if e[1] == 0)}
    for name, metric in (("containment", "containment"), ("answer_logprob", "logprob")):
        pooled, within, ties = [], [], []
        for s in seeds:
            reward = {e: gain(by[(*e, s)], metric, "reward") for e in edits}
            rho = spearman([reward[e] for e in edits], [heldout[e] for e in edits])
            if rho is not None:
                pooled.append(rho)
            for p in {p for p, _ in edits}:
                mine = [e for e in edits if e[0] == p]
                rho = spearman([reward[e] for e in mine], [heldout[e] for e in mine])
                if rho is not None:
                    within.append(rho)
                pairs = [(a, b) for i, a in enumerate(mine) for b in mine[i + 1:]]
                ties += [reward[a] == reward[b] for a, b in pairs]
        cells = {e: [gain(by[(*e, s)], metric, "reward") for s in seeds] for e in edits}
        within_var = mean(statistics.pvariance(v) for v in cells.values())
        total_var = statistics.pvariance([x for v in cells.values() for x in v])
        out[name] = {"spearman_vs_heldout": mean(pooled) if pooled else None,
                     "within_passage_spearman": mean(within) if within else None,
                     "passages_with_a_ranking": len(within) / len(seeds),
                     "noise_share": within_var / total_var if total_var else None,
                     "ties": mean(ties) if ties else None}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passages", type=int, default=8)
    parser.add_argument("--edits", type=int, default=4, help="self-edits per passage")
    parser.add_argument("--seeds", default="0,1,2", help="inner-loop seeds (data order and adapter initialisation)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--save", type=Path, help="also write every row (per question) to this JSONL file")
    args = parser.parse_args()
    args.seeds = [int(s) for s in args.seeds.split(",")]
    rows = measure(args)
    if args.save:
        args.save.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = analyse(rows, args.seeds)
    for name in ("containment", "answer_logprob"):
        r = result[name]
        print(f"{name:>15}: rank correlation with held-out gain {r['spearman_vs_heldout']}, within passages "
              f"{r['within_passage_spearman']}; noise share {r['noise_share']}; tied pairs {r['ties']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
