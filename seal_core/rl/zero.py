"""DeepSpeed ZeRO for the outer update: the shipped configs, and the optimisation loop the
algorithms share, which runs plain in one process or data-parallel under ``deepspeed.initialize``.

``--set trainer.deepspeed=zero2|zero3|zero3-offload|PATH.json`` picks the config (files in
``seal_core/rl/deepspeed_configs/``). Under a multi-process launcher an algorithm that supports
DeepSpeed always updates through it (``zero2`` unless the config names another), because every
rank holds the whole policy and must end the round with the same weights.

Why ``deepspeed.initialize`` and not TRL's ``SFTTrainer`` or accelerate: on 2 gloo (CPU) ranks
``SFTTrainer`` with a ZeRO config fails inside accelerate's gather (``ProcessGroupGloo::allgather:
invalid output tensor list``), and accelerate drops a DeepSpeed config when ``use_cpu=True``, so
neither could be tested here; ``deepspeed.initialize`` trains ZeRO-2 and ZeRO-3 on 2 gloo ranks
and on GPUs alike. The loop is :class:`UpdateLoop`, the same object the one-process paths of
``grpo``/``rloo``/``ppo`` use, so the two paths share the loss code and differ only in who steps.

The optimiser is always ``torch.optim.AdamW`` (handed to DeepSpeed as a client optimiser): the
same arithmetic as the one-process path, and no DeepSpeed op is compiled (FusedAdam and
DeepSpeedCPUAdam are C++/CUDA extensions built with ninja on first use). An ``optimizer`` or
``scheduler`` section in a user's JSON is therefore dropped with a warning.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import structlog
import torch

from seal_core.runtime import distributed
from seal_core.api.components import algorithm_flag
from seal_core.api.errors import ConfigError
from seal_core.models.loading import plain_state_dict

log = structlog.get_logger(__name__)

CONFIG_DIR = Path(__file__).with_name("deepspeed_configs")
SHIPPED = ("zero2", "zero3", "zero3-offload")
INSTALL_HINT = "pip install 'seal-framework[distributed]' (or pip install deepspeed)"


def load_config(value: str) -> dict[str, Any]:
    """The DeepSpeed config named by ``trainer.deepspeed``: a shipped name or a JSON file."""
    path = CONFIG_DIR / f"{value}.json" if value in SHIPPED else Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"Config key 'trainer.deepspeed' = {value!r} is neither a shipped DeepSpeed config "
            f"({', '.join(SHIPPED)}) nor an existing JSON file. Pick one of those names or pass a path."
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Config key 'trainer.deepspeed': {path} is not valid JSON: {exc}") from exc
    stage = config.get("zero_optimization", {}).get("stage", 0) if isinstance(config, dict) else None
    if stage not in (0, 1, 2, 3):
        raise ConfigError(f"Config key 'trainer.deepspeed': {path} must be a JSON object with zero_optimization.stage 0-3.")
    return config


def check_deepspeed(value: str | None, algorithm: Any) -> None:
    """Config-time checks of ``trainer.deepspeed``: the file, the algorithm, DeepSpeed itself
    (also when the value is unset but a multi-process launch will use ``zero2``)."""
    if value is None:
        if distributed.active() and algorithm_flag(algorithm, "supports_deepspeed") \
                and importlib.util.find_spec("deepspeed") is None:
            raise ConfigError(
                f"Under a multi-process launcher the update of '{algorithm.name}' runs under DeepSpeed "
                f"(trainer.deepspeed defaults to zero2), which is not installed: {INSTALL_HINT}."
            )
        return
    load_config(value)
    if not algorithm_flag(algorithm, "supports_deepspeed") and getattr(algorithm.options, "lora", False):
        raise ConfigError(
            f"Config key 'trainer.deepspeed' = {value!r}, but algorithm '{algorithm.name}' has lora: true, and "
            "its LoRA update runs in one process only. Set algorithm.lora=false to train all weights under "
            "DeepSpeed, or drop trainer.deepspeed (under a multi-process launcher rank 0 then updates the "
            "adapter alone and broadcasts the merged weights)."
        )
    if not algorithm_flag(algorithm, "supports_deepspeed"):
        raise ConfigError(
            f"Config key 'trainer.deepspeed' = {value!r}, but algorithm '{algorithm.name}' has no DeepSpeed "
            "update. Use rest-em, grpo, dr-grpo, rloo or ppo, or drop trainer.deepspeed."
        )
    if importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(f"Config key 'trainer.deepspeed' = {value!r} needs DeepSpeed, which is not installed: {INSTALL_HINT}.")


def deepspeed_config(value: str | None, algorithm: Any) -> dict[str, Any] | None:
    """The DeepSpeed config for this round's update, or None for the plain one-process update.

    Under a multi-process launcher an algorithm that supports DeepSpeed gets ``zero2`` when the
    config names none; one that does not is run by the engine on rank 0 alone.
    """
    if not algorithm_flag(algorithm, "supports_deepspeed"):
        return None
    if value is None and distributed.active():
        value = "zero2"
    return None if value is None else load_config(value)


def prepare(config: dict[str, Any], *, max_grad_norm: float, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """Fill a DeepSpeed config for :class:`UpdateLoop`: our batches, our optimiser, our clipping."""
    config = copy.deepcopy(config)
    for key in ("optimizer", "scheduler"):
        if config.pop(key, None) is not None:
            log.warning(f"deepspeed: the config's '{key}' section is ignored: the algorithm's AdamW "
                        "(learning_rate, weight_decay) is used")
    # batches are cut by the algorithm, one engine.step() per minibatch: DeepSpeed's own batch
    # keys only need to be consistent (train_batch_size = micro * accumulation * world size)
    for key in ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps"):
        config.pop(key, None)
    config.update(train_micro_batch_size_per_gpu=1, gradient_accumulation_steps=1,
                  train_batch_size=distributed.world_size())
    if config.get("gradient_clipping", "auto") == "auto":
        config["gradient_clipping"] = float(max_grad_norm)
    bf16 = config.setdefault("bf16", {})
    if bf16.get("enabled") == "auto":
        bf16["enabled"] = device.type == "cuda" and dtype == torch.bfloat16
    fp16 = config.get("fp16", {})
    if fp16.get("enabled") == "auto":
        fp16["enabled"] = False
    zero = config.setdefault("zero_optimization", {})
    if device.type != "cuda":  # pinned memory needs CUDA
        for key in ("offload_optimizer", "offload_param"):
            if isinstance(zero.get(key), dict):
                zero[key]["pin_memory"] = False
    config["zero_allow_untested_optimizer"] = True  # torch's AdamW, on purpose (see the module doc)
    config.setdefault("zero_force_ds_cpu_optimizer", False)
    return config


def minibatches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """A seeded shuffle of range(n), cut into batches (the same for the same seed and epoch)."""
    g = torch.Generator().manual_seed(seed * 1000 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def optimizer_step(params: list[torch.Tensor], optimizer: torch.optim.Optimizer, loss: torch.Tensor,
                   max_grad_norm: float) -> None:
    """One AdamW step on ``loss``, with the gradient norm clipped to ``max_grad_norm`` (0: off)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()


class UpdateLoop:
    """AdamW steps on ``module``'s trainable weights, in one process or under DeepSpeed ZeRO.

    ``deepspeed=None`` is the plain path: :func:`optimizer_step` on the module itself. With a
    DeepSpeed config, ``deepspeed.initialize`` wraps the module and every rank runs the same
    minibatches; each takes its slice (:meth:`part`) and scales its loss by its share of the
    minibatch (:meth:`share`), so that DeepSpeed's average of the ranks' gradients equals the
    one-process gradient of the whole minibatch. Forward through :attr:`model`; read the trained
    weights with :meth:`state_dict`; call :meth:`close` when done.
    """

    def __init__(self, module: torch.nn.Module, *, learning_rate: float, weight_decay: float = 0.0,
                 max_grad_norm: float = 0.0, deepspeed: dict[str, Any] | None = None,
                 total_steps: int | None = None):
        self.module = module
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.max_grad_norm = max_grad_norm
        self.optimizer = torch.optim.AdamW(self.params, lr=learning_rate, weight_decay=weight_decay)
        # linear decay to 0 over total_steps (TRL's SFT default); None: constant
        self.scheduler = (torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: max(0.0, 1 - s / total_steps))
                          if total_steps else None)
        self.engine: Any = None
        self.model: Any = module
        if deepspeed is not None:
            self.engine = _initialize(module, self.optimizer, self.scheduler, deepspeed, max_grad_norm)
            self.model = self.engine

    @property
    def zero_stage(self) -> int | None:
        return None if self.engine is None else self.engine.zero_optimization_stage()

    def part(self, idx: Sequence[int]) -> list[int]:
        """This rank's items of minibatch ``idx`` (all of them in one process). A rank left without
        any gets the first item as a stand-in, weighted 0 by :meth:`share`: every rank must run a
        backward pass in every step, or the gradient reduction waits forever."""
        if self.engine is None:
            return list(idx)
        return distributed.shard(idx) or list(idx[:1])

    def share(self, idx: Sequence[int], weight: Callable[[int], float] | None = None) -> float:
        """The factor for this rank's loss on :meth:`part`: world size x its share of the minibatch
        by ``weight`` (per item: 1 for a per-sequence mean, its token count for a per-token mean).
        1.0 in one process."""
        if self.engine is None:
            return 1.0
        mine = distributed.shard(idx)
        if not mine:
            return 0.0
        weight = weight or (lambda i: 1.0)
        return distributed.world_size() * sum(weight(i) for i in mine) / sum(weight(i) for i in idx)

    def step(self, loss: torch.Tensor) -> None:
        """Backward and one optimiser step (clipped to ``max_grad_norm``; the scheduler steps too)."""
        if self.engine is None:
            optimizer_step(self.params, self.optimizer, loss, self.max_grad_norm)
            if self.scheduler is not None:
                self.scheduler.step()
        else:
            self.engine.backward(loss)
            self.engine.step()

    def run(self, n: int, *, epochs: int, batch_size: int, seed: int,
            step: Callable[[list[int], list[int]], list[tuple[torch.Tensor, float, dict[str, float]]]]) -> dict[str, float]:
        """The update every algorithm runs: ``epochs`` passes over ``n`` items in seeded
        minibatches of ``batch_size`` (:func:`minibatches`). For each minibatch ``idx``,
        ``step(idx, mine)`` (``mine``: this rank's part, :meth:`part`) computes the loss terms, each
        ``(loss, share, statistics)`` with ``share`` from :meth:`share`; one optimiser step is taken
        on the sum of ``loss * share``, and each term's statistics are reduced across ranks by its
        share. Returns each statistic's mean over the steps, and ``steps``."""
        sums: dict[str, float] = {}
        steps = 0
        for epoch in range(epochs):
            for idx in minibatches(n, batch_size, seed, epoch):
                terms = step(idx, self.part(idx))
                self.step(sum(loss * share for loss, share, _ in terms))
                for _, share, stats in terms:
                    for key, value in self.reduce(stats, share).items():
                        sums[key] = sums.get(key, 0.0) + value
                steps += 1
        return {key: value / max(steps, 1) for key, value in sums.items()} | {"steps": steps}

    def reduce(self, values: dict[str, float], share: float) -> dict[str, float]:
        """One step's statistics for the whole minibatch: the ranks' values weighted by their
        :meth:`share` (exact for losses; a weighted mean for the rest). Unchanged in one process."""
        if self.engine is None or not distributed.active():
            return values
        import torch.distributed as dist

        device = next(self.module.parameters()).device  # NCCL reduces CUDA tensors only
        total = torch.tensor([v * share for v in values.values()], dtype=torch.float64, device=device)
        dist.all_reduce(total)
        return dict(zip(values, (total / distributed.world_size()).tolist()))

    def state_dict(self, module: torch.nn.Module | None = None, *, trainable_only: bool = False) -> dict[str, torch.Tensor]:
        """The weights of ``module`` (default: the whole trained module), whole on every rank.

        One process: :func:`seal_core.models.loading.plain_state_dict`, as before. Under ZeRO-3 each
        parameter is gathered from its shards in turn (never the whole model at once).
        """
        module = self.module if module is None else module
        if self.engine is None:
            return plain_state_dict(module)
        import deepspeed

        out = {}
        for name, p in module.named_parameters():
            if trainable_only and not p.requires_grad:
                continue
            if self.zero_stage == 3:
                with deepspeed.zero.GatheredParameters([p]):
                    out[name] = p.data.detach().clone()
            else:
                out[name] = p.detach().clone()
        return out

    def close(self) -> None:
        """Free DeepSpeed's buffers (the module's ZeRO-3 shards are not usable afterwards)."""
        if self.engine is not None and hasattr(self.engine, "destroy"):
            self.engine.destroy()
        self.engine = None


def _initialize(module: torch.nn.Module, optimizer: Any, scheduler: Any, config: dict[str, Any],
                max_grad_norm: float) -> Any:
    try:
        import deepspeed
    except ImportError as exc:
        raise ConfigError(f"trainer.deepspeed is set but DeepSpeed cannot be imported ({exc}): {INSTALL_HINT}.") from exc
    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    first = next(module.parameters())
    if first.device.type != "cuda":
        _skip_cpu_op_builds()
    distributed.init(str(first.device), single=True)  # a one-rank group when not under a launcher
    config = prepare(config, max_grad_norm=max_grad_norm, device=first.device, dtype=first.dtype)
    engine, _, _, _ = deepspeed.initialize(model=module, optimizer=optimizer, lr_scheduler=scheduler, config=config)
    return engine


def _skip_cpu_op_builds() -> None:
    """Keep DeepSpeed from compiling its C++ shared-memory all-reduce for CPU ranks.

    On the CPU accelerator ``deepspeed.comm`` builds ``deepspeed_shm_comm`` with ninja on first
    use (measured: ~2 minutes on 2 cores, every fresh machine) when its op-compatibility table
    says it can; gloo does the same job. The table is probed lazily on first read (compiler
    subprocesses) and that build is its only reader (DeepSpeed 0.19), so an empty table, put in
    before the first read, means "build nothing". On GPUs nothing here is touched.
    """
    import deepspeed.ops

    vars(deepspeed.ops).setdefault("__compatible_ops__", {})
