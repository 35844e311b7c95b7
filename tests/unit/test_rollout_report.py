"""The per-round rollout report: its arithmetic by hand, and its messages."""

from __future__ import annotations

import json

from seal_core.runs.report import main, report, round_rows


def write_run(path, rollouts):
    path.mkdir(parents=True)
    (path / "config.yaml").write_text("seed: 0\n")
    (path / "rollouts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rollouts))
    return path


def rollout(rnd, task, reward, edit):
    return {"round": rnd, "task_id": task, "edit_index": 0, "edit": edit, "reward": reward}


def test_round_summaries_by_hand(tmp_path):
    a = write_run(tmp_path / "s0", [rollout(0, "t1", 0.0, "one two"), rollout(0, "t1", 0.0, "x"),  # a tie: the later is "best"
                                    rollout(0, "t2", 0.5, "a b c\nd"), rollout(1, "t1", 1.0, "w")])
    b = write_run(tmp_path / "s1", [rollout(0, "t1", 0.25, "p q")])
    rows = round_rows([{**r, "run": "a"} for r in (rollout(0, "t1", 0.0, "one two"), rollout(0, "t1", 0.0, "x"),
                                                  rollout(0, "t2", 0.5, "a b c\nd"), rollout(1, "t1", 1.0, "w"))]
                      + [{**rollout(0, "t1", 0.25, "p q"), "run": "b"}])
    r0, r1 = rows
    assert (r0["round"], r0["self_edits"], r0["tasks"]) == (0, 4, 3)  # t1 of run a and t1 of run b are two tasks
    assert r0["mean"] == 0.1875 and r0["above_0"] == 0.5
    assert r0["tied"] == 0.5  # the two 0.0 rewards of run a's t1 tie; the other two are alone in their task
    assert r0["best_mean"] == (0.0 + 0.5 + 0.25) / 3
    assert r0["words"] == (2 + 1 + 4 + 2) / 4 and r0["lines"] == (1 + 1 + 2 + 1) / 4
    assert (r1["self_edits"], r1["mean"], r1["sd"], r1["tied"]) == (1, 1.0, 0.0, 0.0)
    text = report([a, b])
    assert "| 0 | 4 | 3 | 0.188 ± 0.239 |" in text
    assert "- best, reward 0.000: x\n- worst, reward 0.000: one two" in text and "Round 1, task t1 (1 self-edits):\n- only, reward 1.000: w" in text


def test_messages(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere")]) == 2 and "not a run directory" in capsys.readouterr().err
    empty = write_run(tmp_path / "empty", [])
    assert main([str(empty)]) == 0 and "have not trained yet" in capsys.readouterr().out
    assert main([]) == 2
