"""Evaluator ``llm-judge``: a chat model grades the student's answers against the gold answers.

The student answers each question without the passage exactly as ``qa`` has it answer (one
batched greedy ``generate`` call; the first line is the answer). Each answer is then sent to an
OpenAI-compatible chat-completions endpoint, which is asked, as the paper's grader is, whether
the answer conveys the gold answer without contradicting it, and to reply yes or no. The score
is the share of "yes" among the questions it could grade.

The endpoint comes from the environment, never from the config (the config is saved with the
run)::

    SEAL_JUDGE_BASE_URL   default $OPENAI_BASE_URL, else https://api.openai.com/v1
    SEAL_JUDGE_MODEL      default $OPENAI_MODEL, else gpt-4.1
    SEAL_JUDGE_API_KEY    default $OPENAI_API_KEY; required (a missing key is a ConfigError)

Requests are retried on 429 and 5xx (and on timeouts and refused connections) with exponential
backoff, honouring ``Retry-After``; each has a timeout. A question that still cannot be graded
(retries exhausted, an unreadable reply) is reported as ungraded in ``details`` and left out of
the mean rather than counted wrong. A task whose questions are all ungraded scores 0.0 with
``details["graded"] == 0``; check that count before reading such a score.

Departure from the paper: its grader sees all of a passage's questions in one prompt; here each
question is graded in its own request, so one unreadable reply costs one question, not a passage.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import structlog

from seal_core import Score, TaskInstance, hookimpl
from seal_core.api.errors import ConfigError
from seal_core.evaluation.qa import QAEvaluator, contains, token_f1

log = structlog.get_logger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4.1"

JUDGE_SYSTEM = (
    "You grade answers to quiz questions. You are given a question, the gold answer and a "
    "student's answer. Decide from the gold answer alone, without outside knowledge, whether the "
    "student's answer conveys the gold answer and does not contradict it. Extra details, wording "
    "and style do not matter. Reply with exactly one word: yes or no."
)
JUDGE_USER = "Question: {question}\nGold answer: {gold}\nStudent answer: {answer}\n\nDoes the student's answer convey the gold answer? yes or no"

_FIRST_WORD = re.compile(r"[a-z]+")


@dataclass
class JudgeOptions:
    max_new_tokens: int = 24  # the student's answer length, as in qa; the first line is graded
    timeout: float = 30.0  # seconds per request
    max_retries: int = 4  # retries after the first attempt, on 429, 5xx, timeouts and refused connections
    backoff: float = 1.0  # seconds before the first retry; doubles each retry
    max_backoff: float = 60.0  # cap on one wait, Retry-After included

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1 or self.timeout <= 0 or self.backoff < 0 or self.max_backoff < 0 or self.max_retries < 0:
            raise ValueError("max_new_tokens >= 1 and timeout > 0 are required; backoff, max_backoff and max_retries must be >= 0")


@dataclass(frozen=True)
class Endpoint:
    url: str  # .../chat/completions
    model: str
    key: str

    def __repr__(self) -> str:  # never print the key
        return f"Endpoint(url={self.url!r}, model={self.model!r})"


def endpoint_from_env(env: dict[str, str] | None = None) -> Endpoint:
    """The judge endpoint from the environment; a missing key is a :class:`ConfigError`."""
    env = os.environ if env is None else env
    key = env.get("SEAL_JUDGE_API_KEY") or env.get("OPENAI_API_KEY")
    if not key:
        raise ConfigError(
            "The llm-judge evaluator needs an API key in the environment: set SEAL_JUDGE_API_KEY (or "
            "OPENAI_API_KEY), and SEAL_JUDGE_BASE_URL / SEAL_JUDGE_MODEL for an endpoint other than "
            f"{DEFAULT_BASE_URL} with {DEFAULT_MODEL}. Keys never go in the config."
        )
    base = env.get("SEAL_JUDGE_BASE_URL") or env.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    model = env.get("SEAL_JUDGE_MODEL") or env.get("OPENAI_MODEL") or DEFAULT_MODEL
    return Endpoint(base.rstrip("/") + "/chat/completions", model, key)


class Ungradable(Exception):
    """The judge gave no usable verdict for one question; the message says why."""


def parse_verdict(body: bytes) -> bool:
    """``True``/``False`` from a chat-completions reply whose first word is yes or no."""
    try:
        content = json.loads(body)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise Ungradable(f"malformed reply ({type(exc).__name__})") from exc
    word = _FIRST_WORD.search(str(content).lower())
    if word is None or word.group() not in ("yes", "no"):
        raise Ungradable(f"reply is neither yes nor no: {str(content)[:60]!r}")
    return word.group() == "yes"


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    value = exc.headers.get("Retry-After") if exc.headers else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class LLMJudge(QAEvaluator):
    name = "llm-judge"
    Options = JudgeOptions

    sleep = staticmethod(time.sleep)  # tests replace it

    def grade(self, endpoint: Endpoint, question: str, gold: list[str], answer: str) -> bool:
        """Ask the judge about one answer; raises :class:`Ungradable` when it cannot tell."""
        opts = self.options
        body = json.dumps({
            "model": endpoint.model,
            "temperature": 0,
            "max_tokens": 3,
            "messages": [
                {"role": "system", "content": JUDGE_SYSTEM},
                {"role": "user", "content": JUDGE_USER.format(question=question, gold=" / ".join(gold), answer=answer)},
            ],
        }).encode()
        request = urllib.request.Request(endpoint.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {endpoint.key}"})
        reason = ""
        for attempt in range(opts.max_retries + 1):
            wait = min(opts.max_backoff, opts.backoff * 2 ** attempt)
            try:
                with urllib.request.urlopen(request, timeout=opts.timeout) as response:
                    return parse_verdict(response.read())
            except urllib.error.HTTPError as exc:
                if exc.code in (401, 403):
                    raise ConfigError(
                        f"The llm-judge endpoint {endpoint.url} refused the API key (HTTP {exc.code}); "
                        "check SEAL_JUDGE_API_KEY / OPENAI_API_KEY and SEAL_JUDGE_BASE_URL."
                    ) from exc
                if exc.code != 429 and exc.code < 500:
                    raise Ungradable(f"HTTP {exc.code}") from exc
                reason = f"HTTP {exc.code}"
                after = _retry_after(exc)
                if after is not None:
                    wait = min(opts.max_backoff, after)
            except (TimeoutError, socket.timeout):
                reason = f"timeout after {opts.timeout:g} s"
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                    reason = f"timeout after {opts.timeout:g} s"
                else:
                    reason = f"connection failed ({exc.reason})"
            if attempt < opts.max_retries:
                log.warning("llm-judge request failed; retrying", reason=reason, attempt=attempt + 1, wait_s=wait)
                self.sleep(wait)
        raise Ungradable(f"{reason}; gave up after {opts.max_retries + 1} attempts")

    def evaluate(self, model: Any, tokenizer: Any, task: TaskInstance) -> Score:
        endpoint = endpoint_from_env()
        questions = task.evaluation["questions"]
        predictions = self.answer(model, tokenizer, [q["question"] for q in questions])
        verdicts: list[bool | None] = []
        reasons: dict[int, str] = {}
        for i, (q, pred) in enumerate(zip(questions, predictions)):
            try:
                verdicts.append(self.grade(endpoint, q["question"], q["answers"], pred))
            except Ungradable as exc:
                verdicts.append(None)
                reasons[i] = str(exc)
                log.warning("llm-judge could not grade a question", task_id=task.id, question=i, reason=str(exc))
        graded = [v for v in verdicts if v is not None]
        cont = [max(contains(p, g) for g in q["answers"]) for p, q in zip(predictions, questions)]
        f1 = [max(token_f1(p, g) for g in q["answers"]) for p, q in zip(predictions, questions)]
        value = sum(graded) / len(graded) if graded else 0.0
        return Score(value, {"judge": verdicts, "graded": len(graded), "ungraded": len(verdicts) - len(graded),
                             "ungraded_reasons": reasons, "judge_model": endpoint.model,
                             "containment": sum(cont) / len(cont), "f1": sum(f1) / len(f1),
                             "predictions": predictions})


@hookimpl
def seal_register_evaluators(register):
    register(LLMJudge())
