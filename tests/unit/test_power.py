"""seal_core.studies.power: variance components and the detectable difference, by hand."""

from __future__ import annotations

import math

import pytest

from seal_core.studies.power import Z_POWER, components


def test_components_of_a_hand_worked_table():
    # 2 seeds x 3 passages; seed means 0.2 and 0.4 (grand 0.3), passage means 0.1, 0.3, 0.5, residuals 0
    table = {0: {"a": 0.0, "b": 0.2, "c": 0.4}, 1: {"a": 0.2, "b": 0.4, "c": 0.6}}
    got = components(table)
    assert got.mean == pytest.approx(0.3)
    # MS_seed = 3 x (0.1^2 + 0.1^2) / 1 = 0.06; MS_res = 0 -> var_seed = 0.06 / 3 = 0.02
    # MS_passage = 2 x (0.2^2 + 0 + 0.2^2) / 2 = 0.08 -> var_passage = 0.08 / 2 = 0.04
    assert (got.seed, got.passage, got.residual) == pytest.approx((0.02, 0.04, 0.0))
    # 3 seeds x 24 passages: sqrt(0.02/3 + 0.04/24) = sqrt(0.008333...) = 0.091287
    assert got.standard_error(3, 24) == pytest.approx(math.sqrt(0.02 / 3 + 0.04 / 24))
    assert got.detectable(3, 24) == pytest.approx(Z_POWER * 0.0912871, rel=1e-5)
    assert got.detectable(6, 48) < got.detectable(3, 24)


def test_residual_noise_and_floors():
    # pure interaction: seed and passage means all equal, so only the residual is left
    table = {0: {"a": 1.0, "b": -1.0}, 1: {"a": -1.0, "b": 1.0}}
    got = components(table)
    # residuals +-1, MS_res = 4 x 1 / (1 x 1) = 4; MS_seed = MS_passage = 0 -> floored at 0
    assert (got.seed, got.passage, got.residual) == pytest.approx((0.0, 0.0, 4.0))
    with pytest.raises(ValueError, match="at least 2 seeds"):
        components({0: {"a": 1.0, "b": 2.0}})


def test_command_prints_an_rl_gain_with_its_interval(tmp_path, capsys):
    # two runs (seeds), each scoring 3 passages at rounds 0 and 1; round 1 is 0.1 higher everywhere
    import json

    from seal_core.studies.power import main

    runs = []
    for seed in (0, 1):
        run = tmp_path / f"seed{seed}"
        run.mkdir()
        rows = [{"round": rnd, "task_id": p, "score_after": 0.2 * i + 0.1 * rnd + 0.05 * seed, "details": {}}
                for rnd in (0, 1) for i, p in enumerate("abc")]
        (run / "evaluations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        runs.append(str(run))
    assert main([*runs, "--against", *runs, "--round", "1", "--against-round", "0", "--seeds", "3",
                 "--passages", "24"]) == 0
    out = capsys.readouterr().out
    # every paired difference is 0.1, so every bootstrap replicate is too
    assert "difference (score_after): 0.100 [0.100, 0.100] over 2 seeds x 3 passages" in out
    assert "residual 0.0000" in out
