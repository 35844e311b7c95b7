"""The K = 8 path's LoRA products, two ways, on one packed step's shapes: ``RoutedLora`` (the one in
``seal_core.inner.stacked``: one pair of small matmuls per adapter segment, gradients written
straight into the stacked ``.grad`` slots) against a masked alternative (all K adapters stacked into
one rank-K*r product per projection, each token's other adapters masked to zero; 8x the FLOPs in
6 large matmuls instead of 48 small ones, gradients by autograd).

    .venv/bin/python benchmarks/lora_products.py                 # ~1 min on a 2-core CPU

Shapes: SmolLM2-135M's 7 projections of one layer (hidden 576, MLP 1536, k/v 192), K = 8 adapters
of rank 32, a packed step of K rows of ``--tokens`` tokens each (the bundled passages' texts are
~30 tokens: batch size 1 packs 8 rows of ~30). Forward and backward of the LoRA part only (the
frozen base's matmul is the same in both), timed per layer, interleaved over ``--repeats`` rounds so
that the CPU's drift falls on both alike. The masked product in bf16 casts the adapters per call,
as a bf16 LoRA product would. Before timing, the two ways' adapter gradients are compared in fp32
(``max_gradient_gap``; it stops above 1e-4), so the times compare the same work. The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from seal_core.inner import RoutedLora, Routing, StackedLoraLinear, runs  # noqa: E402

PROJECTIONS = [(576, 576), (576, 192), (576, 192), (576, 576), (576, 1536), (576, 1536), (1536, 576)]
K, RANK, SCALE = 8, 32, 2.0


def _layers(tokens: int) -> tuple[list[tuple[StackedLoraLinear, torch.Tensor]], torch.Tensor]:
    """The 7 projections' stacked layers, each with a packed input of K rows of ``tokens`` tokens,
    and the mask that keeps each token's own adapter (the same for every projection; the routed
    way's segments are :func:`segments` of the same rows)."""
    routing = Routing()
    mask = torch.zeros(K * tokens, K * RANK)
    for k in range(K):
        mask[k * tokens:(k + 1) * tokens, k * RANK:(k + 1) * RANK] = 1
    layers = []
    for d_in, d_out in PROJECTIONS:
        layer = StackedLoraLinear(nn.Linear(d_in, d_out, bias=False), K, RANK, SCALE, 0.0, routing)
        with torch.no_grad():
            layer.lora_A.normal_(std=0.02)
            layer.lora_B.normal_(std=0.02)
        layer.lora_A.grad, layer.lora_B.grad = torch.zeros_like(layer.lora_A), torch.zeros_like(layer.lora_B)
        layers.append((layer, torch.randn(K * tokens, d_in)))
    return layers, mask


def segments(rows: int) -> list[tuple[int, int, int]]:
    """K rows of ``rows`` tokens each, row k through adapter k: the packed step's token segments."""
    return runs([k for k in range(K) for _ in range(rows)])


def routed(layers) -> None:
    """One step's LoRA forward and backward through ``RoutedLora``, as ``multi-lora`` runs it
    (autograd adds its whole-stack gradients into ``.grad``, as the masked way's)."""
    for layer, x in layers:
        x = x.detach().requires_grad_()
        y = torch.zeros(x.shape[0], layer.lora_B.shape[1], requires_grad=True).clone()  # the base output
        out = RoutedLora.apply(y, x, layer.lora_A, layer.lora_B, layer.scale, segments(x.shape[0] // K))
        out.backward(torch.ones_like(out))


def masked(layers, mask: torch.Tensor) -> None:
    """The same products as one masked rank-K*r matmul per projection, in the mask's dtype."""
    dtype = mask.dtype
    for layer, x in layers:
        x = x.detach().requires_grad_()
        y = torch.zeros(x.shape[0], layer.lora_B.shape[1], requires_grad=True)  # the base output
        a_all = layer.lora_A.reshape(K * RANK, -1).to(dtype)  # [K r, in]
        b_all = layer.lora_B.permute(1, 0, 2).reshape(layer.lora_B.shape[1], K * RANK).to(dtype)  # [out, K r]
        h = (x.to(dtype) @ a_all.t()) * mask
        out = y + (h @ b_all.t()).to(x.dtype) * SCALE
        out.backward(torch.ones_like(out))


def same_gradients(layers, mask: torch.Tensor) -> float:
    """Largest gap between the two ways' adapter gradients, relative to each tensor's largest value
    (fp32): both must compute the same products for the timing to compare like with like."""
    routed(layers)
    wanted = [(layer.lora_A.grad.clone(), layer.lora_B.grad.clone()) for layer, _ in layers]
    for layer, _ in layers:
        layer.lora_A.grad.zero_()
        layer.lora_B.grad.zero_()
    masked(layers, mask)
    return max(float((got - want).abs().max() / want.abs().max())
               for (layer, _), pair in zip(layers, wanted)
               for got, want in zip((layer.lora_A.grad, layer.lora_B.grad), pair))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", default="30,60", help="tokens per row, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40, help="timed calls per round")
    args = parser.parse_args()
    torch.manual_seed(0)
    result = {"threads": torch.get_num_threads(), "k": K, "rank": RANK, "ms_per_layer": {}}
    for tokens in [int(t) for t in args.tokens.split(",")]:
        layers, mask = _layers(tokens)
        gap = same_gradients(layers, mask)
        if gap > 1e-4:
            raise SystemExit(f"the masked product's gradients differ from RoutedLora's by {gap:.1e}: not the same work")
        result.setdefault("max_gradient_gap", {})[str(tokens)] = gap
        mask_bf16 = mask.to(torch.bfloat16)  # cast once: a masked implementation would keep it
        ways = {"routed_fp32": lambda: routed(layers),
                "masked_fp32": lambda: masked(layers, mask),
                "masked_bf16": lambda: masked(layers, mask_bf16)}
        times: dict[str, list[float]] = {name: [] for name in ways}
        for name, way in ways.items():  # warm-up
            for _ in range(3):
                way()
        for _ in range(args.repeats):
            for name, way in ways.items():
                start = time.perf_counter()
                for _ in range(args.steps):
                    way()
                times[name].append((time.perf_counter() - start) / args.steps * 1e3)
        medians = {name: statistics.median(t) for name, t in times.items()}
        result["ms_per_layer"][str(tokens)] = medians
        base = medians["routed_fp32"]
        print(f"{K} rows x {tokens} tokens: " + ", ".join(
            f"{name} {ms:.2f} ms/layer ({ms / base:.2f}x routed)" for name, ms in medians.items()))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
