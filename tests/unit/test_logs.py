"""seal_core.runtime.logs: JSON lines in the run directory, readable lines on the console."""

from __future__ import annotations

import json

import structlog

from seal_core.runtime import logs


def test_events_go_to_file_as_json_and_to_console(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SEAL_LOG_LEVEL", "info")
    log_file = tmp_path / "log.jsonl"
    logs.configure(log_file)
    try:
        structlog.get_logger("t").info("round finished", round=3, eval_adapted=0.25)
        structlog.get_logger("t").debug("quiet detail", x=1)
    finally:
        logs.configure()
    rows = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [r["event"] for r in rows] == ["round finished", "quiet detail"]  # the file gets everything
    assert rows[0]["round"] == 3 and rows[0]["level"] == "info" and "timestamp" in rows[0]
    err = capsys.readouterr().err
    assert "round finished" in err and "eval_adapted=0.25" in err
    assert "quiet detail" not in err  # below the console level
    assert not err.lstrip().startswith("{")  # human-readable, not JSON


def test_configure_again_closes_the_previous_file(tmp_path):
    first = tmp_path / "a.jsonl"
    logs.configure(first)
    logs.configure()
    structlog.get_logger("t").info("after close")
    assert "after close" not in first.read_text()
