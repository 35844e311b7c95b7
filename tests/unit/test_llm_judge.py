"""seal_plugins.llm_judge against a stub OpenAI-compatible server on 127.0.0.1 (no network)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from seal_core.api.errors import ConfigError
from seal_core.api.types import TaskInstance
from seal_plugins.llm_judge import JudgeOptions, LLMJudge, Ungradable, endpoint_from_env


def reply(content: str) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()


class Stub:
    """A chat-completions server that plays a script: one (status, headers, body, delay) per request."""

    def __init__(self):
        self.script: list[tuple[int, dict, bytes, float]] = []
        self.requests: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                status, headers, payload, delay = stub.script.pop(0) if stub.script else (200, {}, reply("yes"), 0)
                time.sleep(delay)
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and hung up

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"


@pytest.fixture
def stub(monkeypatch):
    s = Stub()
    s.thread.start()
    monkeypatch.setenv("SEAL_JUDGE_BASE_URL", s.base_url)
    monkeypatch.setenv("SEAL_JUDGE_MODEL", "stub-judge")
    monkeypatch.setenv("SEAL_JUDGE_API_KEY", "sk-test-not-a-secret")
    try:
        yield s
    finally:
        s.server.shutdown()
        s.server.server_close()


def judge(**opts) -> tuple[LLMJudge, list[float]]:
    j = LLMJudge().configured(JudgeOptions(**{"timeout": 2.0, "max_retries": 2, "backoff": 0.5, **opts}))
    waits: list[float] = []
    j.sleep = waits.append  # no real waiting; record the backoff instead
    return j, waits


def grade(j: LLMJudge, answer: str = "in 1702") -> bool:
    return j.grade(endpoint_from_env(), "When was the bell cast?", ["1702"], answer)


def test_yes_and_no(stub):
    j, waits = judge()
    stub.script = [(200, {}, reply("Yes."), 0), (200, {}, reply("no"), 0)]
    assert grade(j) is True
    assert grade(j, "in 1850") is False
    first = stub.requests[0]
    assert first["path"] == "/v1/chat/completions"
    assert first["auth"] == "Bearer sk-test-not-a-secret"
    assert first["body"]["model"] == "stub-judge"
    user = first["body"]["messages"][-1]["content"]
    assert "When was the bell cast?" in user and "1702" in user and "in 1702" in user
    assert waits == []


def test_429_then_success_honours_retry_after(stub):
    j, waits = judge()
    stub.script = [(429, {"Retry-After": "3"}, b"slow down", 0), (503, {}, b"busy", 0), (200, {}, reply("yes"), 0)]
    assert grade(j) is True
    assert len(stub.requests) == 3
    assert waits == [3.0, 1.0]  # Retry-After, then the doubled backoff (0.5 * 2)


def test_500_until_retries_run_out_is_ungraded(stub):
    j, waits = judge(max_retries=2)
    stub.script = [(500, {}, b"oops", 0)] * 3
    with pytest.raises(Ungradable, match="HTTP 500.*3 attempts"):
        grade(j)
    assert len(stub.requests) == 3
    assert waits == [0.5, 1.0]


def test_timeout_is_ungraded(stub):
    j, _ = judge(timeout=0.2, max_retries=0)
    stub.script = [(200, {}, reply("yes"), 1.0)]
    with pytest.raises(Ungradable, match="timeout"):
        grade(j)


@pytest.mark.parametrize("payload", [b"not json", json.dumps({"choices": []}).encode(), reply("maybe")])
def test_malformed_reply_is_ungraded(stub, payload):
    j, _ = judge()
    stub.script = [(200, {}, payload, 0)]
    with pytest.raises(Ungradable):
        grade(j)
    assert len(stub.requests) == 1  # a bad reply is not retried


def test_rejected_key_is_a_config_error(stub):
    j, _ = judge()
    stub.script = [(401, {}, b"bad key", 0)]
    with pytest.raises(ConfigError, match="refused the API key"):
        grade(j)


def test_missing_key_is_a_config_error(monkeypatch):
    for name in ("SEAL_JUDGE_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="SEAL_JUDGE_API_KEY"):
        endpoint_from_env()
    assert "sk-" not in repr(endpoint_from_env({"OPENAI_API_KEY": "sk-hidden"}))
    assert endpoint_from_env({"OPENAI_API_KEY": "k"}).url == "https://api.openai.com/v1/chat/completions"


def test_evaluate_excludes_ungraded_questions_from_the_mean(stub, tiny):
    j, _ = judge(max_retries=0, max_new_tokens=4)
    task = TaskInstance("t", "passage", {"title": "", "questions": [
        {"question": f"q{i}?", "answers": ["a"]} for i in range(3)]})
    stub.script = [(200, {}, reply("yes"), 0), (500, {}, b"x", 0), (200, {}, reply("no"), 0)]
    score = j.evaluate(tiny.model, tiny.tokenizer, task)
    assert score.value == 0.5  # one yes, one no; the 500 is left out, not counted wrong
    assert score.details["judge"] == [True, None, False]
    assert score.details["graded"] == 2 and score.details["ungraded"] == 1
    assert "HTTP 500" in score.details["ungraded_reasons"][1]
    assert len(score.details["predictions"]) == 3


@pytest.mark.parametrize("bad", [{"timeout": 0.0}, {"max_retries": -1}, {"backoff": -1.0}, {"max_new_tokens": 0}])
def test_options_validation(bad):
    with pytest.raises(ValueError):
        JudgeOptions(**bad)
