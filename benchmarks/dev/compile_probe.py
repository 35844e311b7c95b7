"""multi-lora's training, eager against ``inner.compile=true``: two K-adapter batches each on the
same model, their seconds, and how far the final adapter weights differ.

    .venv/bin/python benchmarks/dev/compile_probe.py 8 embedded     # K, model spec
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from seal_core.hooks.registry import Registry  # noqa: E402
from seal_core.inner import StackedLoraLinear  # noqa: E402
from seal_core.models.loading import load_model  # noqa: E402
from seal_domains.knowledge import KnowledgeDomain  # noqa: E402


def weights(student) -> dict:
    return {n: (m.lora_A.detach().clone(), m.lora_B.detach().clone())
            for n, m in student.model.named_modules() if isinstance(m, StackedLoraLinear)}


def main() -> None:
    k = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    spec = sys.argv[2] if len(sys.argv) > 2 else "tiny-random"
    domain = KnowledgeDomain()
    tasks = domain.load_tasks("train")[:k]
    datas = [domain.training_set(t, "\n".join(t.context.split(". "))) for t in tasks]
    found = {}
    for compiled in (False, True):
        updater = Registry().get("inner_updater", "multi-lora")
        updater = updater.configured(updater.Options(epochs=2, batch_size=8, max_adapters=k, lr_schedule="constant",
                                                     learning_rate=2e-3, compile=compiled))
        student = load_model(spec)
        for repeat in range(2):
            started = time.perf_counter()
            updater.adapt_batch(student, datas, list(range(1, k + 1)))
            print("compile" if compiled else "eager", repeat, round(time.perf_counter() - started, 2), flush=True)
            found[compiled] = weights(student)
            updater.reset(student)
    gap = max(float((found[False][n][i] - found[True][n][i]).abs().max() / found[False][n][i].abs().max().clamp_min(1e-12))
              for n in found[False] for i in (0, 1))
    print("max relative gap", gap)


if __name__ == "__main__":
    main()
