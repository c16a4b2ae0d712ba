"""One logging setup: text or JSON lines, each web line with its request id, user and
organization; the request id comes back in the response (the proxy's when trusted); the
scheduler writes one line per job run with its duration and counts."""

from __future__ import annotations

import dataclasses
import json

import pytest

from engine.scheduler import runner
from engine.scheduler.jobs import JOBS
from engine.settings import Settings, SettingsError
from tests.support.pages import Pages
from web import create_app, logs


@pytest.fixture
def json_lines(capsys):
    """Configure JSON lines and give a reader of what was written since."""
    logs.configure("json", "INFO")

    def read() -> list[dict]:
        err = capsys.readouterr().err
        return [json.loads(line) for line in err.splitlines() if line.startswith("{")]

    yield read
    logs.configure("text", "WARNING")


def test_each_request_logs_once_with_its_id_user_and_organization(settings, db, cast, json_lines):
    app = create_app(dataclasses.replace(settings, log_format="json", log_level="INFO"), db)
    page = Pages(app).login(cast.users["gestor"])
    json_lines()  # drop the sign-in's lines
    res = page.get("/", headers={"X-Request-ID": "forjado-pelo-cliente"})
    rid = res.headers["X-Request-ID"]
    assert len(rid) == 32 and rid != "forjado-pelo-cliente"  # no trusted proxy: not taken
    lines = [line for line in json_lines() if line["logger"] == "credencia.request"]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == rid and line["method"] == "GET" and line["path"] == "/"
    assert line["status"] == res.status_code and line["duration_ms"] >= 0
    assert line["client"] == "127.0.0.1"  # what gunicorn's access line had, now ours alone
    assert line["user_id"] == cast.users["gestor"].actor.user_id and line["org_id"] == cast.org
    # an anonymous request: no user, no organization
    Pages(app).get("/healthz")
    [anon] = [x for x in json_lines() if x.get("path") == "/healthz"]
    assert anon["user_id"] == "-" and anon["org_id"] == "-"


def test_a_trusted_proxy_gives_the_request_id(settings, db, json_lines):
    app = create_app(
        dataclasses.replace(settings, trusted_proxies=1, log_format="json", log_level="INFO"), db
    )
    client = app.test_client()
    res = client.get("/healthz", headers={"X-Request-ID": "lb-7f3a.42"})
    assert res.headers["X-Request-ID"] == "lb-7f3a.42"
    assert [x["request_id"] for x in json_lines() if x.get("path") == "/healthz"] == ["lb-7f3a.42"]
    # a malformed one (a newline, a forged log line) is replaced
    res = client.get("/healthz", headers={"X-Request-ID": "x\u2028{json}"})
    assert res.headers["X-Request-ID"] != "x\u2028{json}" and len(res.headers["X-Request-ID"]) == 32


def test_text_lines_carry_the_same_context(settings, db, capsys):
    try:
        app = create_app(dataclasses.replace(settings, log_level="INFO"), db)
        res = app.test_client().get("/healthz")
        err = capsys.readouterr().err
    finally:
        logs.configure("text", "WARNING")
    [line] = [x for x in err.splitlines() if "credencia.request" in x]
    assert f"request_id={res.headers['X-Request-ID']}" in line
    assert "credencia.request: GET /healthz 200 " in line and " ms [request_id=" in line
    assert "user_id=- org_id=-]" in line


def test_the_scheduler_logs_each_job_run(settings, db, json_lines):
    job = next(j for j in JOBS if j.name == "outbox")
    runner._run(db, settings, job, "teste")
    [line] = [x for x in json_lines() if x.get("job") == "outbox"]
    assert line["logger"] == "engine.scheduler.runner" and line["duration_ms"] >= 0
    assert isinstance(line["summary"], dict) and line["message"].startswith("job outbox ran in")


def test_log_settings_are_checked(monkeypatch):
    monkeypatch.setenv("CREDENCIA_LOG_FORMAT", "xml")
    with pytest.raises(SettingsError, match="CREDENCIA_LOG_FORMAT"):
        Settings()
    monkeypatch.setenv("CREDENCIA_LOG_FORMAT", "JSON")
    monkeypatch.setenv("CREDENCIA_LOG_LEVEL", "debug")
    chosen = Settings()
    assert (chosen.log_format, chosen.log_level) == ("json", "DEBUG")
    with pytest.raises(ValueError):
        logs.configure("xml")


def test_a_completion_at_info_logs_no_workflow_state_changes(client, world, json_lines):
    """SpiffWorkflow's line per task state change stays out of INFO (a dozen per completion);
    its warnings still come through."""
    import logging

    from tests.support.flows import flow

    f = flow(client, world)
    json_lines()
    f.complete("obter_certificado_digital")
    lines = json_lines()
    assert not [x for x in lines if x["logger"].startswith("spiff")]
    assert logging.getLogger("spiff.task").isEnabledFor(logging.WARNING)
    assert logging.getLogger("credencia.request").isEnabledFor(logging.INFO)
    # SpiffWorkflow builds each state change's record details whether or not it is written,
    # with the task's data (and a workflow's every task id) when its logger's own level is
    # below INFO: the levels are set on those loggers, not left to inherit.
    from pathlib import Path

    from engine.workflow import spiff

    bpmn = Path(__file__).resolve().parents[2] / "processes" / "credenciamento-rnds.bpmn"
    loaded = spiff.LoadedSpec("k", *spiff.parse(bpmn.read_text("utf-8"), "credenciamento-rnds"),
                              {}, {})  # fmt: skip
    workflow = spiff.new_workflow(loaded, {"possui_certificado_valido": False})
    assert "data" not in workflow.task_tree.collect_log_extras()
    assert "tasks" not in workflow.collect_log_extras()
