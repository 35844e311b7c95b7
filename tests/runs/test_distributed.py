"""Distributed runs: the helpers in one process, config checks, and (marked ``distributed``) real
2-process runs under torchrun on gloo, compared with one-process runs of the same seed.

The 2-process tests take ~80 s together on 2 CPU cores, so they are marked ``slow`` (out of the
default ``pytest``) and ``distributed``: ``make test`` runs them with ``pytest -m distributed``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seal_core.runtime import distributed
from seal_core.loop.config import load_raw, resolve
from seal_core.api.errors import ConfigError
from seal_core.rl.zero import SHIPPED, deepspeed_config, load_config, prepare

from tiny import rows

HAS_DEEPSPEED = importlib.util.find_spec("deepspeed") is not None
needs_deepspeed = pytest.mark.skipif(not HAS_DEEPSPEED, reason="DeepSpeed is not installed (make install installs it: the 'distributed' extra)")

# Float32 sums in another order (each rank's gradient summed by DeepSpeed instead of one batch's
# gradient), and DeepSpeed's own clipping formula, move gradients by ~1e-7 relative; AdamW divides
# by sqrt(v), which carries that into the few steps here as weight differences measured at
# 5e-8 (rest-em) to 2.3e-6 (grpo/ppo). 1e-5 is 1% of the largest learning rate used (1e-3) and
# about 1% of the smallest weight change the updates make, so a wrong gradient fails it.
WEIGHT_ATOL = 1e-5


# --- one process: the helpers are identities -------------------------------------------------


def test_one_process_is_rank_0_of_1():
    assert distributed.world_size() == 1 and distributed.rank() == 0 and distributed.is_main()
    assert not distributed.active()
    assert distributed.gather({"a": 1}) == [{"a": 1}]
    assert distributed.broadcast([3]) == [3]
    assert list(distributed.waves(list(range(5)), 2)) == [[0, 1], [2, 3], [4]]


@pytest.mark.parametrize("n", [0, 1, 2, 5, 7])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_shards_partition_items_in_order(n, world):
    items = list(range(n))
    parts = [distributed.shard(items, of=world, at=r) for r in range(world)]
    assert [x for p in parts for x in p] == items  # gather_lists undoes shard
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_follower_store_writes_nothing(tmp_path):
    from seal_core.api.types import Rollout

    from seal_core.runs.checkpoints import save_policy
    from seal_core.runs.store import FollowerStore

    store = FollowerStore(tmp_path / "run")
    store.write_config("a: 1\n")
    store.append_rollout(Rollout(0, "t", 0, "p", "e", 0.0, 0.0, 0.0))
    store.append_evaluation({"round": 0})
    store.append_metrics({"round": 0})
    store.save_checkpoint(None, "policy")
    assert save_policy(store, None, "policy", None, []) == tmp_path / "run" / "checkpoints" / "policy"
    store.save_resume_point(None, 0, {})
    store.drop_resume_point()
    assert not (tmp_path / "run").exists()


# --- trainer.deepspeed: checked before any model loads -----------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_load_and_fill(name):
    import torch

    config = prepare(load_config(name), max_grad_norm=0.5, device=torch.device("cpu"), dtype=torch.float32)
    assert config["gradient_clipping"] == 0.5 and config["bf16"]["enabled"] is False
    assert config["train_batch_size"] == 1 and "optimizer" not in config
    for key in ("offload_optimizer", "offload_param"):
        assert config["zero_optimization"].get(key, {}).get("pin_memory", False) is False  # no CUDA here


def test_bad_deepspeed_values_are_config_errors(registry, tmp_path):
    with pytest.raises(ConfigError, match="neither a shipped DeepSpeed config"):
        resolve(load_raw(None, ["trainer.deepspeed=zero9"]), registry)
    bad = tmp_path / "ds.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(str(bad))
    with pytest.raises(ConfigError, match="algorithm 'none' has no DeepSpeed update"):
        resolve(load_raw(None, ["trainer.deepspeed=zero2", "algorithm.name=none"]), registry)
    with pytest.raises(ConfigError, match="Unknown config key 'trainer.stage'"):
        resolve(load_raw(None, ["trainer.stage=2"]), registry)


@needs_deepspeed
def test_deepspeed_choice(registry, tmp_path):
    config = resolve(load_raw(None, ["trainer.deepspeed=zero3"]), registry)
    assert config.raw["trainer"]["deepspeed"] == "zero3"
    custom = tmp_path / "mine.json"
    custom.write_text(json.dumps({"zero_optimization": {"stage": 2}}))
    rest_em, none = registry.get("algorithm", "rest-em"), registry.get("algorithm", "none")
    assert deepspeed_config(str(custom), rest_em) == {"zero_optimization": {"stage": 2}}
    assert deepspeed_config(None, rest_em) is None  # one process: the plain update, unchanged
    assert deepspeed_config("zero2", none) is None


def test_a_launch_without_deepspeed_installed_fails_before_any_model_loads(registry, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else real(name, *a))
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="defaults to zero2.*not installed"):
        resolve(load_raw(None, []), registry)
    resolve(load_raw(None, ["algorithm.name=none"]), registry)  # rank 0 updates alone: no DeepSpeed needed
    monkeypatch.setenv("WORLD_SIZE", "1")
    resolve(load_raw(None, []), registry)  # one process: the plain update


def test_without_deepspeed_the_config_is_unchanged(registry):
    config = resolve(load_raw(None, []), registry)
    assert config.trainer.deepspeed is None and config.raw["trainer"]["deepspeed"] is None


# --- two processes under torchrun, gloo ---------------------------------------------------------

RUN_ARGS = [
    "--set", "model.policy=tiny-random", "--set", "rounds=1", "--set", "edits_per_task=2",
    "--set", "domain.train_limit=3", "--set", "domain.eval_limit=3", "--set", "generator.max_new_tokens=12",
    "--set", "inner.epochs=1", "--set", "algorithm.min_reward=-1", "--set", "trainer.deepspeed=zero2",
]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1",
               TOKENIZERS_PARALLELISM="false")
    return env


def _torchrun(n: int, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # --standalone: a rendezvous on a free local port, so parallel test runs do not collide
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", *args]
    done = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return done


@pytest.mark.slow
@pytest.mark.distributed
@needs_deepspeed
def test_two_ranks_match_one_process(tmp_path):
    """1 round, ZeRO-2: the 2-rank run's rollouts and evaluations equal the 1-process run's, its
    final weights match within WEIGHT_ATOL, and only rank 0 wrote files. One task per generation
    batch: otherwise each rank's slice cuts other batches than one process does (docs/distributed.md)."""
    from safetensors.torch import load_file

    from seal_core.models.loading import load_model

    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    # one process without a launcher (DeepSpeed in a one-rank group), as a user would run it
    args = [*RUN_ARGS, "--set", "generator.batch_size=1"]
    done = subprocess.run([sys.executable, "-m", "seal_core", "run", "--run-dir", "run", *args], cwd=one,
                          env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-6000:]
    done = _torchrun(2, ["-m", "seal_core", "run", "--run-dir", "run", *args], two)
    assert "process group joined" in done.stderr

    assert sorted(p.name for p in two.iterdir()) == ["run"]  # no rank wrote beside the run dir
    assert sorted(p.name for p in (two / "run").iterdir()) == sorted(p.name for p in (one / "run").iterdir())
    rollouts = rows(two / "run" / "rollouts.jsonl")
    assert len(rollouts) == 3 * 2
    assert rollouts == rows(one / "run" / "rollouts.jsonl")  # same order, same edits, same scores
    assert rows(two / "run" / "evaluations.jsonl") == rows(one / "run" / "evaluations.jsonl")
    assert [m["n_kept"] for m in rows(two / "run" / "metrics.jsonl")[:1]] == [3]

    a = load_file(str(one / "run" / "checkpoints" / "policy" / "model.safetensors"))
    b = load_file(str(two / "run" / "checkpoints" / "policy" / "model.safetensors"))
    start = load_model("tiny-random").model.state_dict()
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < WEIGHT_ATOL
    assert max(float((b[k] - start[k]).abs().max()) for k in b) > 10 * WEIGHT_ATOL  # the update did something


@pytest.mark.slow
@pytest.mark.distributed
@needs_deepspeed
def test_policy_gradient_updates_match_one_process(tmp_path):
    """grpo under ZeRO-3 and ppo under ZeRO-2 on 2 ranks against their plain one-process update."""
    out = tmp_path / "diffs.json"
    _torchrun(2, [str(Path(__file__).with_name("dist_update_check.py")), str(out)], tmp_path)
    results = json.loads(out.read_text())
    assert set(results) == {"grpo-zero3", "ppo-zero2"}
    for case, r in results.items():
        assert r["max_abs_diff"] < WEIGHT_ATOL, (case, r)
        assert r["max_abs_change"] > 10 * WEIGHT_ATOL, (case, r)


def _workers(launcher: subprocess.Popen) -> list[int]:
    """The rank processes torchrun started (its children running seal_core), by pid."""
    found = subprocess.run(["pgrep", "-f", "-P", str(launcher.pid), "seal_core"], capture_output=True, text=True)
    return sorted(int(pid) for pid in found.stdout.split())


FAULT_TIMEOUT = 20  # trainer.collective_timeout; torchrun gives a rank 30 s between SIGTERM and SIGKILL
FAULT_ARGS = [*RUN_ARGS, "--set", f"trainer.collective_timeout={FAULT_TIMEOUT}", "--set", "checkpoint=final"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The 2-rank run the faulted runs must end equal to."""
    where = tmp_path_factory.mktemp("uninterrupted")
    _torchrun(2, ["-m", "seal_core", "run", "--run-dir", "reference", *FAULT_ARGS], where)
    return where / "reference"


@pytest.mark.slow
@pytest.mark.distributed
@needs_deepspeed
@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGSTOP"])
@pytest.mark.parametrize(("moment", "rollouts_before"), [("collection", 1), ("update", 6)])  # 6: all of round 0
def test_a_dead_or_stalled_rank_stops_the_job_and_the_resume_is_exact(signal_name, moment, rollouts_before,
                                                                      uninterrupted, tmp_path):
    """One rank SIGKILLed or SIGSTOPped during collection or during the outer update: the job ends
    within trainer.collective_timeout plus the launcher's grace (no hang), and ``--resume`` under
    the launcher ends with the rows and (within WEIGHT_ATOL) the weights of an uninterrupted run."""
    import signal
    import time

    from safetensors.torch import load_file

    sig = getattr(signal, signal_name)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "seal_core"]
    run_dir = tmp_path / "faulted"
    job = subprocess.Popen([*launcher, "run", "--run-dir", str(run_dir), *FAULT_ARGS], cwd=tmp_path, env=_env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and job.poll() is None:
        path = run_dir / "rollouts.jsonl"
        if path.is_file() and len(path.read_text().splitlines()) >= rollouts_before:
            break
        time.sleep(0.05)
    ranks = _workers(job)
    assert job.poll() is None and len(ranks) == 2, "the job ended before the fault"
    os.kill(ranks[-1], sig)
    signalled = time.time()
    try:
        job.communicate(timeout=FAULT_TIMEOUT + 30 + 60)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        raise AssertionError(f"{signal_name} during {moment}: the job hung past the bound")
    finally:
        for pid in ranks:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert job.returncode != 0, f"{signal_name} during {moment}: the job ended as if nothing happened"
    print(f"{signal_name} during {moment}: the job stopped {time.time() - signalled:.0f} s after the signal")
    _torchrun(2, ["-m", "seal_core", "run", "--resume", str(run_dir)], tmp_path)
    for name in ("rollouts.jsonl", "evaluations.jsonl"):
        assert sorted(map(str, rows(run_dir / name))) == sorted(map(str, rows(uninterrupted / name))), name
    a = load_file(str(uninterrupted / "checkpoints" / "policy" / "model.safetensors"))
    b = load_file(str(run_dir / "checkpoints" / "policy" / "model.safetensors"))
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < WEIGHT_ATOL
