"""Collapse metrics of self-edits, by hand: the metrics, the report's collapse table, the plot."""

from __future__ import annotations

import json
import struct

import pytest

from seal_core.evaluation.collapse import COLLAPSE_KEYS, PREFIXES, collapse_summary, distinct_n, edit_lines, similarity
from seal_core.runs.report import collapse_rows, report
from seal_core.runs.results import results_table, write_plot


def test_similarity_by_hand():
    assert similarity("the guild", "the guild") == 1.0
    # "abcd" vs "bcde": one matching block "bcd", nothing left of it ("a" / "") or right ("" / "e"):
    # M = 3, T = 4 + 4 = 8, ratio = 2*3/8 = 0.75
    assert similarity("abcd", "bcde") == pytest.approx(0.75)
    # "abc" vs "xyz": M = 0 -> 0.0
    assert similarity("abc", "xyz") == 0.0


def test_distinct_n_by_hand():
    # words a b a | a b c: 6 unigrams, unique {a, b, c} = 3 -> 3/6
    assert distinct_n(["a b a", "a b c"], 1) == pytest.approx(0.5)
    # bigrams (a b) (b a) | (a b) (b c): 4, unique 3 -> 3/4 (pooling across texts would add (a a): 4/5)
    assert distinct_n(["a b a", "a b c"], 2) == pytest.approx(0.75)
    assert distinct_n(["A a"], 1) == pytest.approx(0.5)  # lower-cased: a a -> 1/2
    assert distinct_n(["one", "two"], 2) is None  # no text has two words
    assert distinct_n([], 1) is None


def test_edit_lines():
    assert edit_lines("a\n\n   \nb c ") == 2
    assert edit_lines("") == 0


def test_collapse_summary_by_hand():
    groups = [("abcd", ["abcd", "bcde f"]), ("pq", ["pq pq\npq pq"])]
    s = collapse_summary(groups, lambda text: len(text.split()), "collapse_sampled")
    assert sorted(s) == sorted([f"collapse_sampled_{k}" for k in COLLAPSE_KEYS] + ["collapse_sampled_edits"])
    # similarities: "abcd"/"abcd" = 1; "abcd"/"bcde f": M = 3 ("bcd"), T = 4 + 6 -> 0.6;
    # "pq"/"pq pq\npq pq": M = 2, T = 2 + 11 -> 4/13
    assert s["collapse_sampled_similarity"] == pytest.approx((1 + 0.6 + 4 / 13) / 3)
    # task 1 words abcd | bcde f: unigrams 3/3, bigrams (bcde f) 1/1; task 2 words pq pq pq pq:
    # unigrams 1/4, bigrams 3 x (pq pq) -> 1/3; mean over the two tasks
    assert s["collapse_sampled_distinct_1"] == pytest.approx((1 + 1 / 4) / 2)
    assert s["collapse_sampled_distinct_2"] == pytest.approx((1 + 1 / 3) / 2)
    assert s["collapse_sampled_lines"] == pytest.approx((1 + 1 + 2) / 3)
    assert s["collapse_sampled_tokens"] == pytest.approx((1 + 2 + 4) / 3)
    assert s["collapse_sampled_edits"] == 3


def test_collapse_summary_skips_tasks_without_ngrams_and_empty_input():
    count = lambda text: len(text.split())  # noqa: E731
    # task 1 ("x y": one bigram, 1/1) counts; task 2 (one word, no bigram) is skipped, not a 0
    s = collapse_summary([("x", ["x y"]), ("z", ["z"])], count, "collapse_greedy")
    assert s["collapse_greedy_distinct_2"] == 1.0
    assert collapse_summary([("z", ["z"])], count, "collapse_greedy")["collapse_greedy_distinct_2"] is None
    assert collapse_summary([], count, "collapse_greedy") == {}
    assert PREFIXES == ("collapse_greedy", "collapse_sampled")


def write_run(path, metrics, rollouts):
    path.mkdir(parents=True)
    (path / "config.yaml").write_text("seed: 0\n")
    (path / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    (path / "rollouts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rollouts))
    return path


ROLLOUTS = [{"round": 0, "task_id": "t1", "edit_index": 0, "edit": "one two", "reward": 0.5}]
GREEDY0 = {"collapse_greedy_similarity": 0.2, "collapse_greedy_distinct_1": 0.9, "collapse_greedy_distinct_2": 1.0,
           "collapse_greedy_lines": 3.0, "collapse_greedy_tokens": 40.0}
SAMPLED0 = {"collapse_sampled_similarity": 0.4, "collapse_sampled_distinct_1": 0.5, "collapse_sampled_distinct_2": 0.6,
            "collapse_sampled_lines": 2.0, "collapse_sampled_tokens": 30.0}
GREEDY1 = {"collapse_greedy_similarity": 0.6, "collapse_greedy_distinct_1": 0.7, "collapse_greedy_distinct_2": 0.8,
           "collapse_greedy_lines": 1.0, "collapse_greedy_tokens": 20.0}


def test_report_collapse_table_by_hand(tmp_path):
    a = write_run(tmp_path / "s0", [{"round": 0, **GREEDY0, **SAMPLED0}, {"round": 1, **GREEDY1}], ROLLOUTS)
    b = write_run(tmp_path / "s1", [{"round": 0, "collapse_greedy_similarity": 0.4, "collapse_sampled_distinct_2": 0.8},
                                    {"round": 1, "eval_adapted": 0.1}], ROLLOUTS)
    rows = collapse_rows([[{"round": 0, **GREEDY0, **SAMPLED0}, {"round": 1, **GREEDY1}],
                          [{"round": 0, "collapse_greedy_similarity": 0.4, "collapse_sampled_distinct_2": 0.8}]])
    assert [(r["round"], r["runs"]) for r in rows] == [(0, 2), (1, 1)]
    assert rows[0]["collapse_greedy_similarity"] == pytest.approx((0.2 + 0.4) / 2)  # both runs have it
    assert rows[0]["collapse_greedy_distinct_1"] == 0.9  # only run s0 has it
    assert rows[1]["collapse_sampled_similarity"] is None  # the last round collects nothing
    text = report([a, b])
    assert "| 0 | 2 | 2 | 0.500 ± 0.000 |" in text  # the rollout table is still there (t1 of each run: 2 tasks)
    assert "| round | runs | greedy: similarity | greedy: distinct-1 | greedy: distinct-2 | greedy: lines | greedy: tokens " \
           "| sampled: similarity | sampled: distinct-1 | sampled: distinct-2 | sampled: lines | sampled: tokens |" in text
    # round 0: greedy similarity (0.2 + 0.4) / 2, sampled distinct-2 (0.6 + 0.8) / 2, the rest from s0 alone
    assert "| 0 | 2 | 0.300 | 0.900 | 1.000 | 3.0 | 40.0 | 0.400 | 0.500 | 0.700 | 2.0 | 30.0 |" in text
    assert "| 1 | 1 | 0.600 | 0.700 | 0.800 | 1.0 | 20.0 | - | - | - | - | - |" in text
    assert "predate" not in text


def test_report_of_older_runs_says_they_predate_the_metrics(tmp_path):
    old = write_run(tmp_path / "old", [{"round": 0, "eval_adapted": 0.25}], ROLLOUTS)
    text = report([old])
    assert "predate the collapse metrics" in text and "Collapse per round" not in text
    assert "| 0 | 1 | 1 | 0.500 ± 0.000 |" in text


def png_size(path):
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    return struct.unpack(">II", data[16:24])  # IHDR width, height


def test_write_plot_with_and_without_collapse_keys(tmp_path):
    old = [{"round": 0, "eval_base": 0.25, "eval_adapted": 0.3}, {"round": 1, "eval_base": 0.25, "eval_adapted": 0.4}]
    write_plot(tmp_path / "old.png", old, "old run")
    new = [{**old[0], **GREEDY0, **SAMPLED0}, {**old[1], **GREEDY1}]
    write_plot(tmp_path / "new.png", new, "new run")
    (w_old, h_old), (w_new, h_new) = png_size(tmp_path / "old.png"), png_size(tmp_path / "new.png")
    assert (w_old, h_old) == (600, 400)  # one panel, as before
    assert (w_new, h_new) == (1200, 400)  # two panels side by side
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.png", "old.png"]


def test_results_table_has_the_collapse_columns():
    lines = results_table([{"round": 0, **GREEDY0, **SAMPLED0}, {"round": 1}]).splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    assert head[7:9] == ["greedy sim.", "sampled distinct-2"]
    assert [c.strip() for c in lines[2].strip("|").split("|")][7:9] == ["0.200", "0.600"]
    assert [c.strip() for c in lines[3].strip("|").split("|")][7:9] == ["-", "-"]


def test_results_table_shows_eval_sampled_only_for_runs_that_score_sampled_edits():
    greedy_only = results_table([{"round": 0, "eval_adapted": 0.3}]).splitlines()[0]
    sampled = results_table([{"round": 0, "eval_adapted": 0.3, "eval_sampled": 0.25}, {"round": 1}]).splitlines()
    assert "eval sampled" not in greedy_only
    head = [c.strip() for c in sampled[0].strip("|").split("|")]
    assert head[2:4] == ["eval adapted", "eval sampled"]
    assert [c.strip() for c in sampled[2].strip("|").split("|")][2:4] == ["0.300", "0.250"]
    assert [c.strip() for c in sampled[3].strip("|").split("|")][3] == "-"
