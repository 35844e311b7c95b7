"""Algorithm ``rest-em``: ReST^EM, the paper's outer loop.

E-step: the engine sampled ``k`` self-edits per task and scored each by the student's
improvement. Here, per task, the ``keep_top`` edits with the highest reward are kept if their
reward exceeds ``min_reward`` (the paper: reward > 0, i.e. the edit helped). M-step: supervised
fine-tuning of the generator on (edit prompt -> kept self-edit) with TRL's ``SFTTrainer``, loss
on the self-edit tokens only, with LoRA merged back afterwards (``lora: true``) or on all weights.

``restart_from_base: true`` trains each round from the initial policy weights, as ReST^EM
(Singh et al. 2023) does; the default continues from the current policy, so the improvements
of successive rounds add up (what small budgets need).

``beta > 0`` anchors the policy against collapse: the M-step's loss gains beta x KL(policy ||
initial policy) on the kept self-edits' tokens (the k3 estimator grpo's ``beta`` uses).

Under DeepSpeed (``trainer.deepspeed``, or any multi-process launch), and with ``beta > 0``, the
M-step is our own loop on :class:`seal_core.rl.zero.UpdateLoop` instead of ``SFTTrainer`` (which
fails on gloo ranks, see docs/distributed.md, and has no reference term), with SFTTrainer's defaults: the same rows and LoRA, loss on the self-edit
tokens (mean over the minibatch's tokens), AdamW without weight decay, gradient norm clipped to
1, learning rate decaying linearly to 0; minibatches are drawn by
:func:`seal_core.rl.zero.minibatches` rather than by the Trainer's sampler.

The run's ``report_to`` reaches the SFT Trainer (:func:`trainer_reporting`): its loss per step goes
to TensorBoard under ``RUN_DIR/tensorboard/rest-em-roundN`` and to wandb or trackio when installed.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from typing import Any, Literal

import structlog
import torch

from seal_core import LoadedModel, RLAlgorithm, Rollout, UpdateContext, hookimpl
from seal_core.models.loading import blank_model, load_weights, plain_copy, plain_state_dict
from seal_core.models.prompting import format_prompt
from seal_core.models.logprobs import TokenizedRollouts, forward_completions, pad_rows
from seal_core.rl import aggregate, item_weight, kl_k3, reference_logprobs
from seal_core.rl.zero import UpdateLoop

log = structlog.get_logger(__name__)


@dataclass
class RestEMOptions:
    keep_top: int = 1  # self-edits kept per task (highest reward first)
    min_reward: float = 0.0  # keep only edits whose reward is strictly above this
    lora: bool = True  # SFT through a LoRA adapter merged afterwards; false: all weights
    lora_r: int = 16
    lora_alpha: float = 32.0
    learning_rate: float = 3e-4
    epochs: int = 2
    batch_size: int = 4
    max_length: int = 1024  # prompt + self-edit tokens
    restart_from_base: bool = False  # ReST^EM proper: every round starts from the initial policy
    #: an anti-collapse anchor: beta x KL(policy || initial policy) on the kept self-edits' tokens
    #: (k3 estimator, as grpo's beta) added to the SFT loss; > 0 runs the M-step in our own loop
    #: (the DeepSpeed path's, one process), not SFTTrainer, which has no reference term
    beta: float = 0.0
    # recompute activations in the backward instead of keeping them (TRL's default, true): saves
    # memory, costs a second forward. auto: on for CUDA, off on a CPU, where memory is not short
    # (make run's update on a 2-core CPU: 54 s on, 41 s off, the same loss; docs/reports/2026-12-06-round-speed.md)
    gradient_checkpointing: Literal["auto", True, False] = "auto"

    def __post_init__(self) -> None:
        if self.keep_top < 1 or self.epochs < 1 or self.batch_size < 1 or self.lora_r < 1:
            raise ValueError("keep_top, epochs, batch_size and lora_r must be >= 1")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")


def select_rollouts(rollouts: list[Rollout], keep_top: int, min_reward: float) -> list[Rollout]:
    """Per task, the ``keep_top`` rollouts with the highest reward above ``min_reward``.

    Ties keep the lower edit index, so the choice is deterministic.
    """
    by_task: dict[str, list[Rollout]] = {}
    for r in rollouts:
        if r.reward > min_reward:
            by_task.setdefault(r.task_id, []).append(r)
    kept = []
    for task_id in sorted(by_task):
        ranked = sorted(by_task[task_id], key=lambda r: (-r.reward, r.edit_index))
        kept.extend(ranked[:keep_top])
    return kept


def trainer_reporting(context: UpdateContext) -> tuple[list[str], list[Any]]:
    """(``report_to``, callbacks) for the SFT Trainer from the run's ``report_to``: the trackers
    among tensorboard, wandb and trackio that are installed (a missing one is left out, never an
    error). TensorBoard gets its own callback writing under ``RUN_DIR/tensorboard/rest-em-roundN``:
    the Trainer's default directory is inside its temporary output directory."""
    if not context.report_to:
        return [], []
    from transformers.integrations import get_available_reporting_integrations

    ours = {"tensorboard", "wandb", "trackio"}
    available = ours & set(get_available_reporting_integrations())
    wanted = available if "all" in context.report_to else available & set(context.report_to)
    callbacks = []
    if "tensorboard" in wanted:
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        log_dir = context.workdir / "tensorboard" / f"rest-em-round{context.round}"
        callbacks.append(TensorBoardCallback(SummaryWriter(log_dir=str(log_dir))))
    return sorted(wanted - {"tensorboard"}), callbacks


def trainer_progress(rnd: int) -> Any:
    """A Trainer callback that shows the M-step as a labelled progress bar and sends every log
    the Trainer makes (each step's loss, the final runtime figures) to the run's log as a
    ``rest-em trainer log`` event, instead of printing the raw dicts."""
    from tqdm import tqdm
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        bar: Any = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.bar = tqdm(total=state.max_steps, desc=f"round {rnd} · rest-em update", unit="step", dynamic_ncols=True)

        def on_step_end(self, args, state, control, **kwargs):
            self.bar.update(1)

        def on_log(self, args, state, control, logs=None, **kwargs):
            log.debug("rest-em trainer log", round=rnd, step=state.global_step, **(logs or {}))

        def on_train_end(self, args, state, control, **kwargs):
            self.bar.close()

    return Progress()


class RestEM(RLAlgorithm):
    name = "rest-em"
    Options = RestEMOptions
    supports_deepspeed = True

    def update(self, policy: LoadedModel, rollouts: list[Rollout], context: UpdateContext) -> dict[str, Any]:
        opts = self.options
        kept = select_rollouts(rollouts, opts.keep_top, opts.min_reward)
        stats: dict[str, Any] = {"n_rollouts": len(rollouts), "n_kept": len(kept)}
        if not kept:
            log.info("rest-em: no self-edit beat min_reward; policy unchanged", round=context.round,
                     min_reward=opts.min_reward)
            return stats
        if opts.restart_from_base:
            if context.reference is None:
                raise RuntimeError("rest-em: restart_from_base needs context.reference, the engine's loader of the initial policy")
            work = context.reference()
        else:
            work = plain_copy(policy)
        sft = self._sft if context.deepspeed is None and not opts.beta else self._sft_loop
        stats |= sft(work, kept, context)
        load_weights(policy, plain_state_dict(work.model))
        return stats

    def _lora_config(self) -> Any:
        from peft import LoraConfig

        opts = self.options
        return LoraConfig(r=opts.lora_r, lora_alpha=opts.lora_alpha, lora_dropout=0.0,
                          target_modules="all-linear", task_type="CAUSAL_LM")

    def _sft_loop(self, work: LoadedModel, kept: list[Rollout], context: UpdateContext) -> dict[str, float]:
        """The M-step in our own loop: data-parallel under DeepSpeed ZeRO where the context gives
        a config, else in this process; with ``beta`` the KL anchor to the initial policy added
        (its mean over the M-step, ``kl``, goes to the round's metrics). Leaves the merged result
        in ``work``."""
        from peft import get_peft_model

        opts = self.options
        data = TokenizedRollouts(work, kept, opts.max_length)  # format_prompt(prompt) -> edit + eos
        ref = reference_logprobs(context, data, opts.batch_size, self.name) if opts.beta else None
        module = get_peft_model(work.model, self._lora_config()) if opts.lora else work.model
        module.train()
        steps = opts.epochs * math.ceil(len(data) / opts.batch_size)
        loop = UpdateLoop(module, learning_rate=opts.learning_rate, max_grad_norm=1.0,
                          deepspeed=context.deepspeed, total_steps=steps)
        weight = item_weight(data, "token-mean")

        def step(idx: list[int], mine: list[int]) -> list[tuple[Any, float, dict[str, float]]]:
            batch = data.batch(mine)
            logp, _ = forward_completions(loop.model, batch)  # (b, T)
            loss = -aggregate(logp, batch.mask, "token-mean")  # NLL per self-edit token
            values = {"loss": loss.item()}
            if ref is not None:
                kl = kl_k3(logp, pad_rows([ref[i] for i in mine], logp.shape[1]))
                loss = loss + opts.beta * aggregate(kl, batch.mask, "token-mean")
                values["kl"] = float(aggregate(kl.detach(), batch.mask, "token-mean"))
            return [(loss, loop.share(idx, weight), values)]

        stats = loop.run(len(data), epochs=opts.epochs, batch_size=opts.batch_size, seed=context.seed, step=step)
        if loop.engine is None:  # one process: the trained module itself holds the result
            loop.close()
            work.model = (module.merge_and_unload() if opts.lora else module).eval()
        else:
            state = loop.state_dict()  # whole on every rank (gathered under ZeRO-3)
            loop.close()
            # a fresh copy takes the result: under ZeRO-3 the trained module holds only its shards
            fresh = blank_model(work.model.config, next(iter(state.values())).dtype, work.device)
            if opts.lora:
                fresh = get_peft_model(fresh, self._lora_config())
            unexpected = fresh.load_state_dict(state, strict=False).unexpected_keys
            if unexpected:
                raise RuntimeError(f"rest-em: trained weights do not fit a fresh model: {unexpected[:5]}")
            work.model = (fresh.merge_and_unload() if opts.lora else fresh).to(work.device).eval()
        loss = stats["loss"]
        log.info("rest-em: policy updated (own loop)", round=context.round, examples=len(kept), loss=round(loss, 4),
                 deepspeed=context.deepspeed is not None, beta=opts.beta, kl=stats.get("kl"))
        return {"sft_loss": loss} | ({"kl": stats["kl"]} if "kl" in stats else {})

    def _sft(self, work: LoadedModel, kept: list[Rollout], context: UpdateContext) -> dict[str, float]:
        import datasets
        from datasets import Dataset
        from transformers import PrinterCallback
        from trl import SFTConfig, SFTTrainer

        opts = self.options
        datasets.disable_progress_bars()  # TRL's dataset preparation bars, for a handful of rows
        tokenizer = work.tokenizer
        rows = [{"prompt": format_prompt(tokenizer, r.prompt), "completion": r.edit} for r in kept]
        report_to, callbacks = trainer_reporting(context)
        on_gpu = work.device.type == "cuda"
        with tempfile.TemporaryDirectory(dir=context.workdir, prefix="rest-em-") as tmp:
            args = SFTConfig(
                output_dir=tmp,
                num_train_epochs=opts.epochs,
                per_device_train_batch_size=opts.batch_size,
                learning_rate=opts.learning_rate,
                max_length=opts.max_length,
                completion_only_loss=True,
                bf16=on_gpu and torch.cuda.is_bf16_supported(),
                use_cpu=not on_gpu,
                gradient_checkpointing=on_gpu if opts.gradient_checkpointing == "auto" else opts.gradient_checkpointing,
                seed=context.seed,
                data_seed=context.seed,
                save_strategy="no",
                report_to=report_to or "none",
                logging_strategy="steps",  # each step's loss: a log.jsonl event and the trackers'
                logging_steps=1,
                disable_tqdm=True,  # the progress is trainer_progress's labelled bar instead
                dataloader_num_workers=0,
            )
            peft_config = self._lora_config() if opts.lora else None
            work.model.train()
            trainer = SFTTrainer(model=work.model, args=args, train_dataset=Dataset.from_list(rows),
                                 processing_class=tokenizer, peft_config=peft_config,
                                 callbacks=[*callbacks, trainer_progress(context.round)])
            trainer.remove_callback(PrinterCallback)  # it prints each log dict; ours logs it as an event
            result = trainer.train()
            model = trainer.model
            if opts.lora:
                model = model.merge_and_unload()
            model.eval()
            work.model = model
        log.info("rest-em: policy updated", round=context.round, examples=len(rows), loss=round(result.training_loss, 4))
        return {"sft_loss": float(result.training_loss)}


@hookimpl
def seal_register_algorithms(register):
    register(RestEM())
