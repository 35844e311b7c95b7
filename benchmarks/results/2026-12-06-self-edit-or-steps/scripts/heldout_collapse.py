"""Collapse of the held-out self-edits per round: the greedy edit and the 3 sampled ones per
passage (similarity to the passage, lines, distinct-2 among a passage's 3 samples), from
evaluations.jsonl, means over seeds and passages."""
import json
import statistics
import sys

from seal_core.evaluation.collapse import distinct_n, edit_lines, similarity
from seal_domains.knowledge.loader import read_passages

passages, _ = read_passages("synthetic:400:1")
context = {p.id: p.context for p in passages}
by_round = {}
for d in sys.argv[1:]:
    for line in open(f"{d}/evaluations.jsonl"):
        r = json.loads(line)
        by_round.setdefault(r["round"], []).append(r)
print("| round | rows | greedy similarity | greedy lines | sampled similarity | sampled lines | sampled distinct-2 within a passage's 3 | sampled edits equal to the greedy one |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|")
for rnd, rows in sorted(by_round.items()):
    g_sim = statistics.fmean(similarity(context[r["task_id"]], r["edit"]) for r in rows)
    g_lines = statistics.fmean(edit_lines(r["edit"]) for r in rows)
    s_pairs = [(context[r["task_id"]], e) for r in rows for e in r.get("sampled_edits", [])]
    s_sim = statistics.fmean(similarity(c, e) for c, e in s_pairs)
    s_lines = statistics.fmean(edit_lines(e) for _, e in s_pairs)
    d2 = statistics.fmean(x for x in (distinct_n(r["sampled_edits"], 2) for r in rows) if x is not None)
    same = statistics.fmean(e.strip() == r["edit"].strip() for r in rows for e in r["sampled_edits"])
    print(f"| {rnd} | {len(rows)} | {g_sim:.3f} | {g_lines:.2f} | {s_sim:.3f} | {s_lines:.2f} | {d2:.3f} | {same:.3f} |")
