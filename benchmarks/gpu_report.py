"""The GPU check's report (benchmarks/gpu_check.py): the environment it ran in, and its Markdown
summary of every section's results."""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path


def environment(device: str) -> dict:
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "device": device,
           "cpu": platform.processor() or platform.machine()}
    for name in ("transformers", "peft", "trl", "accelerate", "deepspeed"):
        try:
            env[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            env[name] = None
    try:
        model_name = [l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")]
        env["cpu"] = model_name[0].split(":", 1)[1].strip() if model_name else env["cpu"]
    except OSError:
        pass
    if device.startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda,
                   nccl=".".join(map(str, torch.cuda.nccl.version())))
    return env


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [f"# GPU check ({report['form']} form)", "",
             f"{env.get('gpu') or env['cpu']}; torch {env['torch']}, CUDA {env.get('cuda')}, transformers "
             f"{env['transformers']}, peft {env['peft']}, trl {env['trl']}, deepspeed {env['deepspeed']}; "
             f"{report['seconds']:.0f} s in all.", "", "| section | status | seconds |", "| --- | --- | ---: |"]
    for name, result in report["sections"].items():
        for label, r in (result.items() if name in ("runs", "inner") and "status" not in result else [(None, result)]):
            lines.append(f"| {name}{'/' + label if label else ''} | {r['status']} | {r.get('seconds', '')} |")
    tests = report["sections"].get("tests", {})
    if tests.get("cases"):
        lines += ["", "## tests (`pytest -m cuda tests/unit/test_device.py`)", "", "| test | outcome | seconds |",
                  "| --- | --- | ---: |"]
        lines += [f"| {c['name']} | {c['outcome']}{': ' + c['message'][:120] if c.get('message') else ''} | {c['seconds']:.1f} |"
                  for c in tests["cases"]]
    ds = report["sections"].get("deepspeed", {})
    if ds.get("cases"):
        lines += ["", "## DeepSpeed: the outer update, one rank, against the plain update", "",
                  "| case | backend | max weight difference | plain vs plain (noise floor) | max weight change | plain s | DeepSpeed s |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        lines += [f"| {c} | {r['backend']} | {r['max_abs_diff']:.2e} | "
                  f"{'' if r.get('plain_floor') is None else format(r['plain_floor'], '.2e')} | {r['max_abs_change']:.2e} | "
                  f"{r['plain_seconds']:.1f} | {r['deepspeed_seconds']:.1f} |" for c, r in ds["cases"].items()]
    inner = report["sections"].get("inner", {})
    rows = [(m, r["summary"]) for m, r in inner.items() if isinstance(r, dict) and r.get("summary")]
    if rows:
        lines += ["", "## inner loop (`benchmarks/inner_loop.py`, reference hyperparameters, bundled passages)", "",
                  "| shape | path | self-edits | s/edit | train TFLOP/s | share of bf16 matmul peak | peak GPU GiB |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        for model, s in rows:
            share = s.get("train_share_of_bf16_peak", {})
            for path, spe in s["seconds_per_edit"].items():
                gpu = s["peak_gpu_gb"].get(path)
                lines.append(f"| {model} | {path} | {s['edits'][path]} | {spe:.2f} | "
                             f"{s['achieved_train_gflops'][path] / 1000:.2f} | "
                             f"{f'{share[path]:.1%}' if path in share else ''} | {'' if gpu is None else f'{gpu:.1f}'} |")
        for model, s in rows:
            rates = ", ".join(f"{k} {v / 1000:.0f} TFLOP/s" for k, v in s["matmul_gflops"].items())
            speed = ", ".join(f"{k} {s[k]:.2f}x" for k in ("speedup_k8_vs_reference", "speedup_k32_vs_reference",
                                                           "speedup_k8_vs_lora") if s.get(k))
            lines.append(f"\n{model} ({s['parameters'] / 1e9:.2f}B parameters, {s['dtype']}): matmul {rates}; {speed}.")
    round_ = report["sections"].get("round", {}).get("summary")
    if round_:
        lines += ["", f"## one SEAL round (`benchmarks/round.py`, {round_['model']})", "",
                  f"{round_['rollouts_per_minute']} self-edits scored per minute; round 1 {round_['round_seconds']} s "
                  f"(round 0, with warm-up: {round_['first_round_seconds']} s)", "", "| phase | seconds |", "| --- | ---: |"]
        lines += [f"| {name} | {seconds} |" for name, seconds in round_["phases"].items()]
    return "\n".join(lines) + "\n"
