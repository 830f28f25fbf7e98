"""Issue 18, `advisor compare`: machines keyed by fingerprint and target, grouped by task, and an empty
folder never gets an mlflow.db. Real recommendations logged to a real sqlite store."""

from __future__ import annotations

import json

import pytest
from conftest import run_advisor

from advisor.cli.app import cli
from advisor.cli.guard import run_cli


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """This machine's own pick (local) and a what-if on a named target, for two tasks, from one machine."""
    from advisor.recommend.engine import recommend
    from advisor.tracking.api import record

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'compare.db'}"
    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADVISOR_REPORTS_DIR", str(tmp_path_factory.mktemp("reports")))
        mp.setenv("ADVISOR_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        mp.setenv("ADVISOR_RUN_CONTEXT", "0")
        for task, target in (("summarization", "local"), ("summarization", "a10g-24gb"), ("chat", "l4-24gb")):
            rec = recommend(task, targets=[target], probe=False)
            res = record("recommendation", rec, send=True, tracking_uri=uri, experiment="fleet")
            assert res.ok, res.message()
            runs[(task, target)] = (res.run_id, rec)
    return uri, runs


def cli_run(capsys, *args: str, env=None) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run_cli(cli, list(args), "advisor")
    out, err = capsys.readouterr()
    return code, out, err


def test_a_what_if_on_a_named_target_does_not_hide_the_machines_own_pick(store, capsys):
    uri, runs = store
    code, out, err = cli_run(capsys, "compare", "--tracking-uri", uri, "--experiment", "fleet", "--task",
                             "summarization", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [(r["target"], r["run_id"]) for r in rows] == [("local", runs[("summarization", "local")][0]),
                                                          ("a10g-24gb", runs[("summarization", "a10g-24gb")][0])]
    assert rows[0]["fingerprint"] == rows[1]["fingerprint"]        # one machine, two rows
    assert rows[1]["figures_for"] == "1 x NVIDIA A10G (24 GB)"


def test_without_task_there_is_one_table_per_task(store, capsys, monkeypatch):
    uri, runs = store
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = cli_run(capsys, "compare", "--tracking-uri", uri, "--experiment", "fleet")
    assert code == 0, err
    titles = [line for line in out.splitlines() if "the pick on each machine" in line]
    assert [t.split(":")[0] for t in titles] == ["chat", "summarization"]
    chat = out[out.index(titles[0]):out.index(titles[1])]
    assert "l4-24gb (what-if)" in chat and "a10g-24gb" not in chat
    assert all(len(line) <= 80 for line in out.splitlines()), out
    for _, rec in runs.values():
        pick = rec.primary.pick
        assert pick is None or f" {pick.model}:{pick.format} " in out     # the pick's id, whole


def test_in_an_empty_folder_compare_reads_the_uri_and_creates_no_store(tmp_path):
    env = {"MLFLOW_TRACKING_URI": ""}
    r = run_advisor("compare", env=env, cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == ""
    assert "at sqlite:///mlflow.db (no such store here yet; set MLFLOW_TRACKING_URI" in r.stderr
    assert list(tmp_path.iterdir()) == []                      # no mlflow.db, no mlruns
    there = tmp_path / "elsewhere.db"
    r = run_advisor("compare", "--json", env={"MLFLOW_TRACKING_URI": f"sqlite:///{there}"}, cwd=tmp_path)
    assert r.returncode == 1 and json.loads(r.stdout) == [] and f"sqlite:///{there}" in r.stderr
    assert not there.exists()
