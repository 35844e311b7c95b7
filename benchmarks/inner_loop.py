"""Inner-loop benchmark: seconds per self-edit (train + score) for four ways of scoring self-edits.

    .venv/bin/python benchmarks/inner_loop.py            # full run, ~12 min on a quiet 2-core CPU
    .venv/bin/python benchmarks/inner_loop.py --quick    # smoke run: 4 self-edits, 2 epochs
    .venv/bin/python benchmarks/inner_loop.py --profile  # + torch.profiler table of one multi-lora batch (one epoch, untimed)
    python benchmarks/inner_loop.py --device cuda --model random:qwen2.5-0.5b --data bundled \
        --edits 32 --sequential-edits 8                     # on a GPU (benchmarks/gpu_check.py runs this)

Paths, all on the same passages, self-edits and training texts (the knowledge domain's
``training_set``: the self-edit's lines plus the passage), all with the reference hyperparameters
(LoRA r=32, alpha=64 on the 7 projection layers, lr 1e-3, batch size 1, 10 epochs):

- ``reference``: the SEAL reference code's pattern: per self-edit a fresh peft ``get_peft_model``
  and a fresh transformers ``Trainer`` (its default AdamW with linear decay), then ``unload``;
  its texts unpadded (batch size 1), so it is a stronger bar than the code as written. It stays
  the bar of every speedup and of ``scores_equal``;
- ``reference-as-written``: the reference code's own tokenization as well (knowledge-incorporation/
  src/inner/TTT_server.py): every text padded to 2048 tokens, the pads in the labels. A full
  self-edit takes many minutes on a CPU, so only ``--as-written-steps`` optimizer steps of the
  first self-edit are timed and its seconds per self-edit are **extrapolated** (the median step
  time x the steps of a self-edit, plus the scoring time measured after those steps); it has no
  score. Not in the default paths: ask for it with ``--paths``;
- ``lora``: this project's ``lora`` updater, one self-edit at a time;
- ``multi-lora-k8-fp32`` / ``multi-lora-k8-bf16``: ``multi-lora`` with K = 8 self-edits per batch,
  base matmuls in fp32 / bf16 (fp32 adapters and optimizer state either way), and
  ``multi-lora-k4-<fast>`` with K = 4 in the faster precision here. The fast precision is the one
  whose 2048^3 matmul rate (measured first) is higher: bf16 on CPUs with AMX, fp32 on CPUs without
  native bf16, where bf16 matmuls are emulated and several times slower.

On CUDA the model is bf16 (``model.dtype=auto``) with fp32 adapters and optimizer state, every
path included, and the default paths are ``reference``, ``lora``, ``multi-lora-k8-bf16`` and
``multi-lora-k32-bf16``; each path's peak GPU memory and its training TFLOP/s against the GPU's
measured bf16 matmul rate are reported. ``--sequential-edits N`` times the one-at-a-time paths
(``reference``, ``lora``) on the first N self-edits only, and ``--batches N`` each multi-lora path
on its first N x K (s/edit is per self-edit either way), so that K = 32 can be filled without
paying 32 sequential runs.

Every path scores each adapted model with the ``qa`` evaluator (containment), the multi-lora paths
with one routed generate call per batch. Each path runs in its own process, so its peak memory
(max RSS) is its own. The last line printed is one JSON object with every figure. The paths'
code is in ``inner_paths.py``; this script holds the workload, the FLOP count, the matmul probe and
the summary.

Data: the first ``--edits`` passages of ../shared/data/squad/gpt4_1_val_self_edits.json (beside
the checkout) with their first GPT-4.1 self-edit; without that file, the bundled passages with a
stand-in self-edit (the passage's sentences, one per line).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # inner_paths, when imported from elsewhere

from inner_paths import (AS_WRITTEN, AS_WRITTEN_LENGTH, TARGETS, Scorer, clock, inner_overrides,  # noqa: E402,F401
                         lora_options, multi_path, run_path)  # TARGETS, lora_options: the dev/ diagnostics use them

ROOT = Path(__file__).resolve().parents[1]
SQUAD_EDITS = ROOT.parent / "shared" / "data" / "squad" / "gpt4_1_val_self_edits.json"
PATHS = ["reference", "lora", "multi-lora-k4-FAST", "multi-lora-k8-fp32", "multi-lora-k8-bf16"]
# scores_agree: lora and multi-lora K = 8 (fp32) within this many nats of mean answer-token
# log-prob on every self-edit (see benchmarks/README.md for how it was chosen)
DENSE_TOLERANCE = 0.05
CUDA_PATHS = ["reference", "lora", "multi-lora-k8-bf16", "multi-lora-k32-bf16"]
SEQUENTIAL = ("reference", "lora", AS_WRITTEN)
# where bf16 matmuls are emulated (no AMX / AVX512-BF16) the bf16 path is left out unless asked for:
# it runs several times slower than fp32 and is not the fast path there
DEFAULT_PATHS_FP32_MACHINE = [p for p in PATHS if p != "multi-lora-k8-bf16"]


# -- workload ------------------------------------------------------------------------------------


def workload(args):
    """(tasks, training sets, seeds, data source) for the first ``args.edits`` passages."""
    from seal_core.runtime.seeding import derive_seed
    from seal_domains.knowledge import KnowledgeDomain, KnowledgeOptions
    from seal_plugins.from_file import load_completions

    domain = KnowledgeDomain().configured(KnowledgeOptions(max_edit_lines=args.max_lines))
    source = str(SQUAD_EDITS) if SQUAD_EDITS.is_file() and args.data != "bundled" else None
    tasks = domain.load_tasks("train", source) + domain.load_tasks("eval", source)
    tasks = sorted(tasks, key=lambda t: t.id)[: args.edits]
    if source:
        table = load_completions(SQUAD_EDITS, "completions")
        edits = [table[(t.evaluation.get("title") or "", t.context)][0] for t in tasks]
    else:
        edits = ["\n".join(s.strip() + "." for s in t.context.split(". ") if s.strip()) for t in tasks]
    datas = [domain.training_set(t, e) for t, e in zip(tasks, edits)]
    # the data order of each self-edit, as the engine seeds it for run seed --seed; LoRA's initial
    # A is the same in every run (lora and multi-lora draw it under seed 0)
    seeds = [derive_seed(args.seed, "inner", 0, t.id, 0) for t in tasks]
    return tasks, datas, seeds, source or "bundled passages"


# -- one path in this process ------------------------------------------------------------------


def training_gflop(loaded, datas, args, padded_to: int | None = None) -> float:
    """Training FLOPs counted from the matmuls: per token, 4 x the base's matmul weights (forward
    and input-gradient backward; a frozen base has no weight gradients, the output layer
    included) + 6 x the LoRA weights (forward, input and weight gradients). Attention's
    score matmuls and elementwise work are left out, so this is a lower bound. ``padded_to``:
    every text counts that many tokens (the reference as written computes its pads too)."""
    from torch import nn

    base = sum(m.in_features * m.out_features for m in loaded.model.modules() if isinstance(m, nn.Linear))
    adapters = sum(32 * (m.in_features + m.out_features) for n, m in loaded.model.named_modules()
                   if isinstance(m, nn.Linear) and n.rsplit(".", 1)[-1] in TARGETS)
    eos = loaded.tokenizer.eos_token
    tokens = sum(padded_to or min(len(ids), 256) for d in datas for ids in loaded.tokenizer(
        [t + eos for t in d.texts], add_special_tokens=False)["input_ids"]) * args.epochs
    return (4 * base + 6 * adapters) * tokens / 1e9


def worker(path: str, args) -> dict:
    """Run one path in this process; returns its figures."""
    import torch

    from seal_core.models.loading import load_model

    loaded = load_model(args.model, device=args.device)
    tasks, datas, seeds, source = workload(args)
    keep = 1 if path == AS_WRITTEN else args.sequential_edits if path in SEQUENTIAL else multi_path(path)[0] * args.batches
    if keep:
        tasks, datas, seeds = tasks[:keep], datas[:keep], seeds[:keep]
    qa = Scorer(loaded)
    cuda = loaded.device.type == "cuda"
    if cuda if args.warmup is None else args.warmup:
        # untimed warm-up (one epoch of the first self-edit): CUDA's first calls (cuBLAS handles,
        # kernel loading) cost seconds, which would land on the first timed self-edit only
        warm = argparse.Namespace(**{**vars(args), "epochs": 1, "profile": False})
        run_path(path, loaded, tasks[:1], datas[:1], seeds[:1], warm, qa)
    if cuda:
        torch.cuda.reset_peak_memory_stats(loaded.device)
    qa.reset()
    started = clock(loaded)
    scores, train_s, score_s = run_path(path, loaded, tasks, datas, seeds, args, qa)
    total = clock(loaded) - started
    score_s -= qa.dense_seconds  # the callers' scoring time holds both; report them apart
    total -= qa.dense_seconds
    extrapolated = scores is None  # reference-as-written: a few steps timed, no score
    if extrapolated:
        total, scores, qa.dense_scores = train_s + score_s, [], []
    gflop = training_gflop(loaded, datas, args, padded_to=AS_WRITTEN_LENGTH if extrapolated else None)
    mean = (lambda xs: sum(xs) / len(xs) if xs else None)  # noqa: E731
    return {"path": path, "edits": len(tasks), "texts": sum(len(d) for d in datas), "source": source,
            "extrapolated": extrapolated,
            "seconds_per_edit": total / len(tasks), "train_seconds": train_s, "score_seconds": score_s,
            "train_gflop": gflop, "achieved_train_gflops": gflop / train_s, "scores": [s.value for s in scores],
            "f1": [s.details["f1"] for s in scores], "mean_score": mean([s.value for s in scores]),
            "mean_f1": mean([s.details["f1"] for s in scores]),
            "dense": [s.value for s in qa.dense_scores], "mean_dense": mean([s.value for s in qa.dense_scores]),
            "dense_seconds": qa.dense_seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "threads": torch.get_num_threads(), "device": str(loaded.device),
            "dtype": str(next(loaded.model.parameters()).dtype).removeprefix("torch."),
            "parameters": sum(p.numel() for n, p in loaded.model.named_parameters() if "lora_" not in n),
            "peak_gpu_gb": torch.cuda.max_memory_allocated(loaded.device) / 2**30 if cuda else None}


# -- the machine's ceiling -----------------------------------------------------------------------


def matmul_rates(device: str = "cpu") -> dict[str, float]:
    """GFLOP/s of plain matmuls here: 2048^3 (the ceiling) and one training-shaped product
    (256 tokens x 576 -> 1536, SmolLM2's MLP), in fp32 and bf16. On CUDA: 8192^3 in bf16 (the
    ceiling) and fp32 (TF32 off, torch's default), timed with CUDA events."""
    import torch

    if device.startswith("cuda"):
        return cuda_matmul_rates(device)
    out = {}
    for label, (m, k, n) in {"2048": (2048, 2048, 2048), "mlp_256tok": (256, 576, 1536)}.items():
        for dtype in (torch.float32, torch.bfloat16):
            a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
            for _ in range(3):
                a @ b
            reps, began = 0, time.perf_counter()
            while time.perf_counter() - began < 1.0:
                a @ b
                reps += 1
            seconds = (time.perf_counter() - began) / reps
            out[f"{label}_{str(dtype).removeprefix('torch.')}"] = 2 * m * k * n / seconds / 1e9
    return out


def cuda_matmul_rates(device: str) -> dict[str, float]:
    import torch

    out = {}
    n = 8192
    for dtype in (torch.bfloat16, torch.float32):
        a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
        for _ in range(3):
            a @ b
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(10):
            a @ b
        end.record()
        torch.cuda.synchronize()
        seconds = start.elapsed_time(end) / 1000 / 10
        out[f"{n}_{str(dtype).removeprefix('torch.')}"] = 2 * n ** 3 / seconds / 1e9
    return out


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# -- driver --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 self-edits, 2 epochs, 4 lines each: checks it works")
    parser.add_argument("--edits", type=int, default=8, help="self-edits (passages) per path")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--max-lines", type=int, default=8, help="self-edit lines trained on (plus the passage)")
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--data", choices=["auto", "bundled"], default="auto",
                        help="auto: the GPT-4.1 SQuAD self-edits when present; bundled: the bundled passages")
    parser.add_argument("--paths", help="comma-separated paths (default: all; without fast bf16 here, all but "
                                        "multi-lora-k8-bf16): " + ", ".join(PATHS))
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table of one K=8 batch of one epoch (fast precision), untimed, before the timed run")
    parser.add_argument("--fast", choices=["fp32", "bf16"], help="the fast precision (default: from the matmul probe)")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0,
                        help="run seed: each self-edit's data order (and the reference Trainer's seed) follow it")
    parser.add_argument("--sequential-edits", type=int, default=0,
                        help="time reference and lora on the first N self-edits only (0: all --edits)")
    parser.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=None,
                        help="an untimed epoch of one self-edit first (default: on CUDA only)")
    parser.add_argument("--batches", type=int, default=0,
                        help="time multi-lora with K adapters on the first N*K self-edits only (0: all --edits)")
    parser.add_argument("--inner", action="append", metavar="KEY=VALUE",
                        help="an option of lora and multi-lora (not of the reference paths), e.g. --inner lr_schedule=constant "
                             "--inner max_grad_norm=1 --inner stop_loss=0.05 (repeatable)")
    parser.add_argument("--as-written-steps", type=int, default=6,
                        help="optimizer steps timed for reference-as-written (its s/edit is extrapolated from them)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.edits, args.epochs, args.max_lines = 4, 2, 4
    if args.device == "auto":
        args.device = default_device()
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, args)))
        return

    cuda = args.device.startswith("cuda")
    rates = matmul_rates(args.device)
    if cuda:  # the model is bf16 on CUDA (model.dtype=auto): every path runs bf16 base matmuls
        args.fast = "bf16"
    args.fast = args.fast or ("bf16" if rates["2048_bfloat16"] > rates["2048_float32"] else "fp32")
    print(f"matmul GFLOP/s on {args.device}: " + ", ".join(f"{k} {v:.0f}" for k, v in rates.items())
          + f"; fast precision: {args.fast}", flush=True)
    if args.paths is None:
        args.paths = ",".join(CUDA_PATHS if cuda else PATHS if args.fast == "bf16" else DEFAULT_PATHS_FP32_MACHINE)
        if args.fast == "fp32":
            print("multi-lora-k8-bf16 left out: bf16 matmuls are slower than fp32 here (see the rates above); "
                  "add it with --paths to measure bf16's effect on the scores anyway", flush=True)
    results = {}
    for path in args.paths.replace("FAST", args.fast).split(","):
        cmd = [sys.executable, __file__, "--worker", path, "--edits", str(args.edits), "--epochs", str(args.epochs),
               "--max-lines", str(args.max_lines), "--model", args.model, "--fast", args.fast, "--data", args.data,
               "--seed", str(args.seed), "--as-written-steps", str(args.as_written_steps),
               *[f"--inner={item}" for item in args.inner or []],
               "--device", args.device, "--sequential-edits", str(args.sequential_edits), "--batches", str(args.batches)]
        cmd += [] if args.warmup is None else ["--warmup" if args.warmup else "--no-warmup"]
        cmd += ["--profile"] if args.profile else []
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode or not lines:
            sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
            raise SystemExit(f"path {path} failed (exit {proc.returncode})")
        if "PROFILE-BEGIN" in proc.stderr:
            print(f"torch.profiler, first batch of {path}:")
            print(proc.stderr.split("PROFILE-BEGIN\n")[1].split("PROFILE-END")[0], flush=True)
        r = results[path] = json.loads(lines[0][len("RESULT "):])
        if r["extrapolated"]:
            print(f"{path:>20}: {r['seconds_per_edit']:7.2f} s/edit EXTRAPOLATED from {args.as_written_steps} steps "
                  f"(train {r['train_seconds']:.1f} s, score {r['score_seconds']:.1f} s for 1 edit), "
                  f"{r['achieved_train_gflops']:6.1f} GFLOP/s in training (pads counted), no score", flush=True)
            continue
        print(f"{path:>20}: {r['seconds_per_edit']:7.2f} s/edit (train {r['train_seconds']:.1f} s, score "
              f"{r['score_seconds']:.1f} s for {r['edits']} edits), {r['achieved_train_gflops']:6.1f} GFLOP/s in "
              f"training, peak RSS {r['peak_rss_mb']:.0f} MB"
              + (f", peak GPU {r['peak_gpu_gb']:.1f} GiB" if r["peak_gpu_gb"] is not None else "")
              + f", mean score {r['mean_score']:.3f} (F1 {r['mean_f1']:.3f}, answer log-prob {r['mean_dense']:.3f}; "
              f"dense scoring {r['dense_seconds']:.1f} s against {r['score_seconds']:.1f} s greedy)",
              flush=True)

    summary = summarise(results, rates, args)
    for key in ("speedup_k8_vs_reference", "speedup_k8_vs_lora", "speedup_k32_vs_reference", "scores_agree",
                "bf16_minus_fp32_mean_score"):
        print(f"{key}: {summary.get(key)}")
    print(json.dumps(summary))


def summarise(results: dict, rates: dict, args) -> dict:
    spe = {p: r["seconds_per_edit"] for p, r in results.items()}
    first = next(iter(results.values()))
    fast = f"multi-lora-k8-{args.fast}"
    out = {"model": args.model, "seed": args.seed, "inner": inner_overrides(args.inner), "scores": {p: r["scores"] for p, r in results.items()},
           "device": first["device"], "dtype": first["dtype"], "parameters": first["parameters"],
           "fast_precision": args.fast, "edits": {p: r["edits"] for p, r in results.items()},
           "texts": {p: r["texts"] for p, r in results.items()}, "epochs": args.epochs,
           "source": first["source"], "threads": first["threads"], "seconds_per_edit": spe,
           "train_seconds": {p: r["train_seconds"] for p, r in results.items()},
           "score_seconds": {p: r["score_seconds"] for p, r in results.items()},
           "achieved_train_gflops": {p: r["achieved_train_gflops"] for p, r in results.items()},
           "matmul_gflops": rates, "peak_rss_mb": {p: r["peak_rss_mb"] for p, r in results.items()},
           "peak_gpu_gb": {p: r["peak_gpu_gb"] for p, r in results.items()},
           "mean_score": {p: r["mean_score"] for p, r in results.items()},
           "mean_f1": {p: r["mean_f1"] for p, r in results.items()},
           "dense": {p: r["dense"] for p, r in results.items()},
           "mean_dense": {p: r["mean_dense"] for p, r in results.items()},
           "dense_seconds": {p: r["dense_seconds"] for p, r in results.items()},
           "extrapolated": [p for p, r in results.items() if r["extrapolated"]]}
    if AS_WRITTEN in spe and "reference" in spe:
        out["reference_as_written_over_reference"] = spe[AS_WRITTEN] / spe["reference"]
    if fast in spe:  # K = 8 in the fast precision
        for base in ("reference", "lora"):
            if base in spe:
                out[f"speedup_k8_vs_{base}"] = spe[base] / spe[fast]
    k32 = f"multi-lora-k32-{args.fast}"
    if k32 in spe and "reference" in spe:
        out["speedup_k32_vs_reference"] = spe["reference"] / spe[k32]
    if "2048_float32" in rates:  # on a CPU: achieved training rate over the 2048^3 matmul rate of its precision
        out["ceiling_share"] = {p: r["achieved_train_gflops"] / rates["2048_bfloat16" if p.endswith("bf16") else "2048_float32"]
                                for p, r in results.items()}
    ceiling = rates.get("8192_bfloat16")
    if ceiling:  # on CUDA: achieved training rate as a share of the measured bf16 matmul rate
        out["train_share_of_bf16_peak"] = {p: r["achieved_train_gflops"] / ceiling for p, r in results.items()}
    if "reference" in spe and "multi-lora-k8-fp32" in spe:
        out["speedup_k8_fp32_vs_reference"] = spe["reference"] / spe["multi-lora-k8-fp32"]
    if "lora" in results and "multi-lora-k8-fp32" in results:
        # the same optimisation up to float rounding: compared on the dense score (it cannot flip
        # on a tie); greedy answers that flip between two nearly tied tokens are counted apart
        lora, k8 = results["lora"], results["multi-lora-k8-fp32"]
        dense_gap = max(abs(a - b) for a, b in zip(lora["dense"], k8["dense"]))
        out["scores_agree"] = dense_gap <= DENSE_TOLERANCE
        out["max_dense_gap_lora_vs_k8_fp32"] = dense_gap
        out["greedy_flips_lora_vs_k8_fp32"] = sum(a != b for a, b in zip(lora["scores"], k8["scores"]))
        out["max_f1_gap_lora_vs_k8_fp32"] = max(abs(a - b) for a, b in zip(lora["f1"], k8["f1"]))
    if "multi-lora-k8-bf16" in results and "multi-lora-k8-fp32" in results:
        out["bf16_minus_fp32_mean_score"] = (results["multi-lora-k8-bf16"]["mean_score"]
                                            - results["multi-lora-k8-fp32"]["mean_score"])
        out["bf16_minus_fp32_mean_f1"] = results["multi-lora-k8-bf16"]["mean_f1"] - results["multi-lora-k8-fp32"]["mean_f1"]
    if "reference" in results and "lora" in results:
        out["reference_minus_lora_mean_score"] = results["reference"]["mean_score"] - results["lora"]["mean_score"]
    return out


if __name__ == "__main__":
    main()
