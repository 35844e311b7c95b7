"""The pieces every RL algorithm shares: completion log-probs, advantages, losses, one update loop.

An algorithm plugin (``grpo``, ``rloo``, ``ppo`` or yours) builds on these, so the algorithms
differ only in how they turn scored rollouts into a gradient, never in how they score tokens:

- :func:`completion_logprobs`: per-token log-probs of each self-edit given its edit prompt (the
  engine stores them with the rollouts as the "old" policy's; algorithms compute the new ones);
- ``ADVANTAGE_ESTIMATORS``: one advantage per rollout from the rewards of its group (the ``k``
  self-edits of one task in one round); add one with :func:`register_advantage_estimator`;
  :func:`gae` for algorithms with a value function;
- :func:`clipped_policy_loss`, :func:`clipped_value_loss`, :func:`kl_k3`, :func:`masked_mean`;
- :class:`OutcomePolicyGradient`: the critic-free update loop (GRPO, RLOO) over those pieces;
  its steps go through :class:`seal_core.zero.UpdateLoop`, in one process or under DeepSpeed.

Conventions: ``B`` rollouts in a batch, ``T`` completion tokens (right-padded), ``L`` prompt +
completion tokens, ``V`` vocabulary, ``H`` hidden size. Masks are float tensors of 0 and 1.
The tests in ``tests/test_rl_math.py`` check every formula here against hand-computed values.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import structlog
import torch

from seal_core.components import RLAlgorithm, UpdateContext
from seal_core.models import load_weights, plain_copy
from seal_core.prompting import format_prompt
from seal_core.types import LoadedModel, Rollout
from seal_core.zero import UpdateLoop, optimizer_step  # noqa: F401  (optimizer_step: public here since before)

log = structlog.get_logger(__name__)

Tensor = torch.Tensor
LossAgg = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"]
LOSS_AGGS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")


# ---------------------------------------------------------------------------------------------
# masked reductions
# ---------------------------------------------------------------------------------------------


def masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of ``x`` where ``mask`` is 1 (over ``dim``, or everything)."""
    return (x * mask).sum() if dim is None else (x * mask).sum(dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` where ``mask`` is 1; 0 where the mask is empty (never NaN)."""
    count = mask.sum() if dim is None else mask.sum(dim)
    return masked_sum(x, mask, dim) / count.clamp_min(1e-8) * (count > 0)


def masked_whiten(x: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """``x`` shifted and scaled to mean 0, variance 1 over the masked entries (population variance)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + eps) * mask


def aggregate(loss: Tensor, mask: Tensor, agg: str) -> Tensor:
    """Reduce a per-token loss (B, T) to a scalar.

    - ``token-mean``: every completion token of the batch weighs the same (DAPO, verl's default);
    - ``seq-mean-token-mean``: mean over each completion's tokens, then over completions (the
      GRPO paper's 1/|o|, which favours long wrong answers over short ones);
    - ``seq-mean-token-sum``: sum over each completion's tokens, then mean over completions (the
      whole completion is one action: RLOO, and Dr. GRPO without the 1/|o|).
    """
    if agg == "token-mean":
        return masked_mean(loss, mask)
    if agg == "seq-mean-token-mean":
        return masked_mean(loss, mask, dim=-1).mean()
    if agg == "seq-mean-token-sum":
        return masked_sum(loss, mask, dim=-1).mean()
    raise ValueError(f"loss_agg must be one of {', '.join(LOSS_AGGS)}, got {agg!r}")


def item_weight(data: "TokenizedRollouts", agg: str) -> Callable[[int], float]:
    """How much rollout ``i`` weighs in a minibatch's loss reduced with ``agg``: its completion
    tokens for ``token-mean``, 1 for the per-sequence means (for splitting a minibatch across
    ranks, :meth:`seal_core.zero.UpdateLoop.share`)."""
    if agg == "token-mean":
        return lambda i: float(data.n_tokens(i))
    return lambda i: 1.0


# ---------------------------------------------------------------------------------------------
# log-probabilities of completions
# ---------------------------------------------------------------------------------------------


@dataclass
class CompletionBatch:
    """Prompts and completions as one batch: prompts left-padded, completions right-padded, so
    every completion starts at the same column and the model computes logits for those only."""

    input_ids: Tensor  # (B, L) padding, prompt ids | completion ids, eos, padding
    attention_mask: Tensor  # (B, L)
    position_ids: Tensor  # (B, L) positions as if unpadded (the same numbers as generation)
    targets: Tensor  # (B, T) the completion token ids (0 under padding); L = P + T
    mask: Tensor  # (B, T) float: 1 for a completion token, 0 for padding


def tokenize_pairs(tokenizer: Any, prompts: Sequence[str], completions: Sequence[str],
                   max_length: int = 1024) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, completion ids + eos) per pair; the prompt formatted as the generator saw it.

    Prompt and completion are tokenised separately, as generation produced them: one tokenizer
    call on the joined text could merge tokens across the boundary. A pair longer than
    ``max_length`` loses the end of its completion (eos first).
    """
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    pairs = []
    for prompt, completion in zip(prompts, completions):
        p = tokenizer(format_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"]
        if not p:
            raise ValueError(f"prompt {prompt!r} has no tokens: nothing predicts the completion's first token")
        c = tokenizer(completion, add_special_tokens=False)["input_ids"] + eos
        pairs.append((p, c[: max(0, max_length - len(p))]))
    return pairs


def collate(pairs: Sequence[tuple[list[int], list[int]]], pad_id: int, device: Any = "cpu") -> CompletionBatch:
    """Left-pad the prompts to the longest (P), right-pad the completions to the longest (T)."""
    P = max(len(p) for p, _ in pairs)
    T = max(1, max(len(c) for _, c in pairs))
    B = len(pairs)
    input_ids = torch.full((B, P + T), pad_id, dtype=torch.long)
    attention = torch.zeros((B, P + T), dtype=torch.long)
    targets = torch.zeros((B, T), dtype=torch.long)
    mask = torch.zeros((B, T))
    for b, (p, c) in enumerate(pairs):
        input_ids[b, P - len(p): P + len(c)] = torch.tensor(p + c, dtype=torch.long)
        attention[b, P - len(p): P + len(c)] = 1
        targets[b, : len(c)] = torch.tensor(c, dtype=torch.long)
        mask[b, : len(c)] = 1.0
    position_ids = (attention.cumsum(-1) - 1).clamp_min(0)  # (B, L)
    return CompletionBatch(*(t.to(device) for t in (input_ids, attention, position_ids, targets, mask)))


def _keeps_logits(model: Any) -> bool:
    model = getattr(model, "module", model)  # a DeepSpeed engine forwards to its module
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def forward_completions(model: Any, batch: CompletionBatch, *, hidden: bool = False) -> tuple[Tensor, Tensor | None]:
    """Log-probs (B, T) of the completion tokens (0 under padding) and, with ``hidden``, the last
    hidden state (B, T, H) at the position that predicts each of them (what a value head reads).

    Gradients flow unless the caller uses ``torch.no_grad()``. The model computes logits for the
    last T + 1 positions only (``logits_to_keep``, where the model supports it), never for the
    prompt, and log-softmax runs on them in float32.
    """
    T = batch.targets.shape[1]
    kwargs = {"logits_to_keep": T + 1} if _keeps_logits(model) else {}
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
                output_hidden_states=hidden, **kwargs)
    logits = out.logits[:, -(T + 1):-1].float()  # (B, T, V): position P - 1 + t predicts token t
    logp = torch.log_softmax(logits, dim=-1).gather(-1, batch.targets[..., None]).squeeze(-1)  # (B, T)
    states = out.hidden_states[-1][:, -(T + 1):-1] if hidden else None  # (B, T, H)
    return logp * batch.mask, states


def completion_logprobs(model: Any, tokenizer: Any, prompts: list[str], completions: list[str], *,
                        max_length: int = 1024) -> tuple[Tensor, Tensor]:
    """Per-token log-probs (B, T) of each completion (and the eos after it) given its edit prompt,
    and the float mask (B, T) of real completion tokens.

    ``prompts`` are raw edit prompts: they are formatted with
    :func:`seal_core.prompting.format_prompt`, as the generator formats them. Call under
    ``torch.no_grad()`` unless you want gradients. The log-probs of rollout ``i`` as
    :class:`seal_core.Rollout` stores them: ``[lp for lp, m in zip(logp[i], mask[i]) if m]``.
    """
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    batch = collate(tokenize_pairs(tokenizer, prompts, completions, max_length), pad, device)
    logp, _ = forward_completions(model, batch)
    return logp, batch.mask


def pad_rows(rows: Sequence[Tensor], T: int) -> Tensor:
    """1-D tensors of up to ``T`` values as one (B, T) tensor, zero-padded on the right."""
    out = torch.zeros((len(rows), T), dtype=torch.float32, device=rows[0].device if rows else "cpu")
    for b, row in enumerate(rows):
        out[b, : len(row)] = row
    return out


class TokenizedRollouts:
    """A round's rollouts tokenised once; :meth:`batch` collates any subset of them."""

    def __init__(self, loaded: LoadedModel, rollouts: Sequence[Rollout], max_length: int):
        self.rollouts = list(rollouts)
        self.pairs = tokenize_pairs(loaded.tokenizer, [r.prompt for r in rollouts], [r.edit for r in rollouts], max_length)
        tok = loaded.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        self.device = loaded.device

    def __len__(self) -> int:
        return len(self.pairs)

    def batch(self, idx: Sequence[int]) -> CompletionBatch:
        return collate([self.pairs[i] for i in idx], self.pad_id, self.device)

    def n_tokens(self, i: int) -> int:
        return len(self.pairs[i][1])


@torch.no_grad()
def rollout_logprobs(model: Any, data: TokenizedRollouts, idx: Sequence[int], batch_size: int) -> list[Tensor]:
    """Per-token log-probs of rollouts ``idx`` under ``model``, one 1-D tensor each (no grad)."""
    out: list[Tensor] = []
    for start in range(0, len(idx), batch_size):
        chunk = list(idx[start:start + batch_size])
        batch = data.batch(chunk)
        logp, _ = forward_completions(model, batch)
        out += [logp[b, : data.n_tokens(i)] for b, i in enumerate(chunk)]
    return out


def old_logprobs(model: Any, data: TokenizedRollouts, batch_size: int,
                 computed: Sequence[Tensor] | None = None) -> list[Tensor]:
    """The log-probs each rollout was sampled with: stored ones where their length fits, the
    current ``model``'s otherwise (call before the first update step, so that model is the
    policy that wrote them; pass ``computed`` if you already have them). A stored list of the
    wrong length is recomputed with a warning."""
    found: list[Tensor | None] = []
    for i, r in enumerate(data.rollouts):
        if r.logprobs is not None and len(r.logprobs) != data.n_tokens(i):
            log.warning("stored logprobs do not match the completion's tokens; recomputing",
                        task_id=r.task_id, edit_index=r.edit_index, stored=len(r.logprobs),
                        tokens=data.n_tokens(i))
            found.append(None)
        else:
            found.append(None if r.logprobs is None else torch.tensor(r.logprobs, dtype=torch.float32, device=data.device))
    missing = [i for i, lp in enumerate(found) if lp is None]
    fresh = [computed[i] for i in missing] if computed is not None else rollout_logprobs(model, data, missing, batch_size)
    for i, lp in zip(missing, fresh):
        found[i] = lp
    return found  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# advantages
# ---------------------------------------------------------------------------------------------

AdvantageEstimator = Callable[..., Tensor]
ADVANTAGE_ESTIMATORS: dict[str, AdvantageEstimator] = {}


def register_advantage_estimator(name: str) -> Callable[[AdvantageEstimator], AdvantageEstimator]:
    """Decorator: add ``fn(rewards (N,), groups (N,) long, *, eps) -> advantages (N,)`` as ``name``."""

    def add(fn: AdvantageEstimator) -> AdvantageEstimator:
        if ADVANTAGE_ESTIMATORS.get(name, fn) is not fn:
            raise ValueError(f"advantage estimator {name!r} is already registered")
        ADVANTAGE_ESTIMATORS[name] = fn
        return fn

    return add


def group_ids(rollouts: Sequence[Rollout]) -> Tensor:
    """(N,) long: rollouts of the same round and task share an id, in order of first appearance."""
    seen: dict[tuple[int, str], int] = {}
    return torch.tensor([seen.setdefault((r.round, r.task_id), len(seen)) for r in rollouts], dtype=torch.long)


def _group_stats(rewards: Tensor, groups: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per rollout: its group's size, reward sum and unbiased reward std (0 for groups of one)."""
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    size = torch.zeros(n_groups).index_add_(0, groups, torch.ones_like(rewards))[groups]  # (N,)
    total = torch.zeros(n_groups).index_add_(0, groups, rewards)[groups]  # (N,)
    sq = torch.zeros(n_groups).index_add_(0, groups, (rewards - total / size) ** 2)[groups]  # (N,)
    std = torch.sqrt(sq / (size - 1).clamp_min(1))
    return size, total, std


@register_advantage_estimator("grpo")
def grpo_advantages(rewards: Tensor, groups: Tensor, *, eps: float = 1e-6) -> Tensor:
    """(r - group mean) / (group std + eps); a group of one gets 0 (nothing to compare with)."""
    rewards = rewards.float()
    size, total, std = _group_stats(rewards, groups)
    return (rewards - total / size) / (std + eps) * (size > 1)


@register_advantage_estimator("dr-grpo")
def dr_grpo_advantages(rewards: Tensor, groups: Tensor, *, eps: float = 1e-6) -> Tensor:
    """r - group mean (Dr. GRPO: no division by the std); a group of one gets 0."""
    rewards = rewards.float()
    size, total, _ = _group_stats(rewards, groups)
    return (rewards - total / size) * (size > 1)


@register_advantage_estimator("rloo")
def rloo_advantages(rewards: Tensor, groups: Tensor, *, eps: float = 1e-6) -> Tensor:
    """r_i - mean of the other rewards of its group; a group of one gets 0."""
    rewards = rewards.float()
    size, total, _ = _group_stats(rewards, groups)
    return (rewards - (total - rewards) / (size - 1).clamp_min(1)) * (size > 1)


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0, lam: float = 0.95) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over each completion; returns (advantages, returns), (B, T).

    ``rewards`` and ``values`` are per token (B, T); ``values[:, t]`` is V of the state before
    token t, and the value after the last real token is 0 (the episode ends there).
    """
    rewards, values = rewards * mask, values * mask  # (B, T)
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(values[:, 0])  # (B,)
    for t in reversed(range(values.shape[1])):
        next_value = values[:, t + 1] if t + 1 < values.shape[1] else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        advantages[:, t] = running
    return advantages, (advantages + values) * mask


# ---------------------------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------------------------


def clipped_policy_loss(logp_new: Tensor, logp_old: Tensor, advantages: Tensor, mask: Tensor,
                        clip_eps: float = 0.2, agg: str = "token-mean") -> tuple[Tensor, Tensor]:
    """PPO's clipped surrogate, -min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A) per token,
    reduced with :func:`aggregate`. ``advantages`` is (B,) (one per completion) or (B, T).
    Returns (loss, fraction of tokens where the clipped term was taken)."""
    if advantages.dim() == 1:
        advantages = advantages[:, None].expand_as(logp_new)  # (B, T)
    ratio = torch.exp(logp_new - logp_old)  # (B, T)
    unclipped = ratio * advantages
    clipped = ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantages
    loss = -torch.minimum(unclipped, clipped)  # (B, T)
    clip_frac = masked_mean((clipped < unclipped).float(), mask)
    return aggregate(loss, mask, agg), clip_frac.detach()


def clipped_value_loss(values_new: Tensor, values_old: Tensor, returns: Tensor, mask: Tensor,
                       clip_eps: float = 0.2) -> tuple[Tensor, Tensor]:
    """0.5 * token-mean of max((v - R)^2, (v_old + clip(v - v_old, -eps, eps) - R)^2).
    Returns (loss, fraction of tokens where the clipped term was taken)."""
    clipped = values_old + (values_new - values_old).clamp(-clip_eps, clip_eps)  # (B, T)
    a, b = (values_new - returns) ** 2, (clipped - returns) ** 2
    return 0.5 * masked_mean(torch.maximum(a, b), mask), masked_mean((b > a).float(), mask).detach()


def kl_k3(logp: Tensor, logp_ref: Tensor) -> Tensor:
    """Per-token KL(policy || reference) estimate "k3": exp(ref - logp) - (ref - logp) - 1 >= 0."""
    d = logp_ref - logp
    return torch.exp(d) - d - 1


# ---------------------------------------------------------------------------------------------
# the update loop of critic-free algorithms (GRPO, RLOO)
# ---------------------------------------------------------------------------------------------


def minibatches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """A seeded shuffle of range(n), cut into batches (the same for the same seed and epoch)."""
    g = torch.Generator().manual_seed(seed * 1000 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


@dataclass
class PolicyGradientOptions:
    """Knobs shared by the critic-free algorithms; subclasses add their own and may change defaults."""

    learning_rate: float = 1e-5  # AdamW, all weights of a plain copy of the policy
    epochs: int = 1  # passes over the round's rollouts (GRPO's mu); > 1 makes the clipping bite
    batch_size: int = 8  # rollouts per optimiser step
    clip_eps: float = 0.2  # ratio clipped to [1 - clip_eps, 1 + clip_eps]
    beta: float = 0.0  # KL(policy || initial policy) coefficient, k3 estimator; 0: no reference
    loss_agg: LossAgg = "seq-mean-token-mean"  # see seal_core.rl.aggregate
    max_grad_norm: float = 1.0  # gradient norm clipping; 0: off
    weight_decay: float = 0.0
    max_length: int = 1024  # prompt + self-edit tokens; longer self-edits lose their end

    def __post_init__(self) -> None:
        check_update_options(self, "epochs")


def check_update_options(opts: Any, epochs_field: str) -> None:
    """Range checks of the knobs every policy-gradient algorithm has (ValueError on a bad one)."""
    if opts.learning_rate <= 0:
        raise ValueError(f"learning_rate must be > 0, got {opts.learning_rate}")
    if getattr(opts, epochs_field) < 1 or opts.batch_size < 1 or opts.max_length < 2:
        raise ValueError(f"{epochs_field} and batch_size must be >= 1 and max_length >= 2")
    if not 0 < opts.clip_eps < 1:
        raise ValueError(f"clip_eps must be in (0, 1), got {opts.clip_eps}")
    if opts.beta < 0 or opts.max_grad_norm < 0 or opts.weight_decay < 0:
        raise ValueError("beta, max_grad_norm and weight_decay must be >= 0")
    if opts.loss_agg not in LOSS_AGGS:
        raise ValueError(f"loss_agg must be one of {', '.join(LOSS_AGGS)}, got {opts.loss_agg!r}")


def trainable_copy(policy: LoadedModel) -> LoadedModel:
    """A plain copy of ``policy`` to train: adapters stripped, float32, eval mode.

    float32 because AdamW steps of ~1e-5 vanish in bfloat16 weights (their spacing near 0.02 is
    ~1e-4); :func:`seal_core.models.load_weights` casts the result back to the policy's dtype.
    Eval mode because dropout would make old and new log-probs disagree before the first step.
    """
    work = plain_copy(policy)
    if next(work.model.parameters()).dtype in (torch.float16, torch.bfloat16):
        work.model.float()
    work.model.eval()
    return work


def reference_logprobs(context: UpdateContext, data: TokenizedRollouts, batch_size: int, who: str) -> list[Tensor]:
    """Per-rollout log-probs under the initial policy, loaded with ``context.reference``."""
    if context.reference is None:
        raise ValueError(
            f"{who}: beta > 0 needs the reference policy, but context.reference is None. "
            "Set algorithm.beta=0 or pass UpdateContext(reference=...) (the engine always does)."
        )
    ref = context.reference()
    ref.model.eval()
    lps = rollout_logprobs(ref.model, data, range(len(data)), batch_size)
    del ref
    return lps


class OutcomePolicyGradient(RLAlgorithm):
    """Base of the critic-free algorithms: one advantage per rollout (from :meth:`advantages`),
    the same advantage on every token of its completion, clipped-ratio loss, optional k3 KL.

    Subclasses set ``name``, ``Options`` (a :class:`PolicyGradientOptions`) and
    :meth:`advantages`. Trains a plain copy with AdamW and writes it back in place; with
    ``context.deepspeed`` the steps run data-parallel under DeepSpeed ZeRO.
    """

    needs_logprobs = True
    supports_deepspeed = True
    Options = PolicyGradientOptions

    def advantages(self, rewards: Tensor, groups: Tensor) -> Tensor:
        """(N,) advantages from (N,) rewards and (N,) group ids."""
        raise NotImplementedError

    def update(self, policy: LoadedModel, rollouts: list[Rollout], context: UpdateContext) -> dict[str, Any]:
        opts = self.options
        rewards = torch.tensor([r.reward for r in rollouts], dtype=torch.float32)  # (N,)
        groups = group_ids(rollouts)  # (N,)
        adv = self.advantages(rewards, groups) if rollouts else rewards  # (N,)
        stats: dict[str, Any] = {"n_rollouts": len(rollouts), "n_groups": int(groups.max()) + 1 if rollouts else 0,
                                 "n_kept": int((adv != 0).sum())}
        if not rollouts or not bool((adv != 0).any()):
            reason = "all advantages are zero (each task's rewards are equal, or one rollout per task)"
            log.info(f"{self.name}: update skipped: {reason}", round=context.round, rollouts=len(rollouts))
            return {**stats, "skipped": reason}
        stats |= {"adv_mean": float(adv.mean()), "adv_abs_mean": float(adv.abs().mean())}

        work = trainable_copy(policy)
        data = TokenizedRollouts(work, rollouts, opts.max_length)
        old = old_logprobs(work.model, data, opts.batch_size)
        ref = reference_logprobs(context, data, opts.batch_size, self.name) if opts.beta > 0 else None
        adv = adv.to(work.device)
        loop = UpdateLoop(work.model, learning_rate=opts.learning_rate, weight_decay=opts.weight_decay,
                          max_grad_norm=opts.max_grad_norm, deepspeed=context.deepspeed)
        weight = item_weight(data, opts.loss_agg)
        sums: dict[str, float] = {}
        steps = 0
        for epoch in range(opts.epochs):
            for idx in minibatches(len(data), opts.batch_size, context.seed, epoch):
                mine, share = loop.part(idx), loop.share(idx, weight)  # all of idx and 1.0 in one process
                batch = data.batch(mine)
                T = batch.mask.shape[1]
                logp, _ = forward_completions(loop.model, batch)  # (b, T)
                logp_old = pad_rows([old[i] for i in mine], T)  # (b, T)
                pg, clip_frac = clipped_policy_loss(logp, logp_old, adv[mine], batch.mask, opts.clip_eps, opts.loss_agg)
                loss = pg
                step = {"pg_loss": pg.item(), "clip_frac": float(clip_frac),
                        "approx_kl_old": float(masked_mean(logp_old - logp.detach(), batch.mask))}
                if ref is not None:
                    kl = kl_k3(logp, pad_rows([ref[i] for i in mine], T))  # (b, T)
                    loss = loss + opts.beta * aggregate(kl, batch.mask, opts.loss_agg)
                    step["kl"] = float(masked_mean(kl.detach(), batch.mask))
                loop.step(loss * share)
                step["loss"] = loss.item()
                for k, v in loop.reduce(step, share).items():
                    sums[k] = sums.get(k, 0.0) + v
                steps += 1
        load_weights(policy, loop.state_dict())
        loop.close()
        stats |= {k: v / steps for k, v in sums.items()} | {"steps": steps}
        log.info(f"{self.name}: policy updated", round=context.round, rollouts=len(rollouts), steps=steps,
                 loss=round(stats["loss"], 4), clip_frac=round(stats["clip_frac"], 3))
        return stats
