"""`advisor compare`: picks from two machines, read back from a real MLflow server."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from mlflow_server import closed_port_uri

from advisor.cli.app import cli
from advisor.cli.guard import run_cli
from advisor.recommend.schema import Recommendation
from advisor.tracking.api import record

FIX = Path(__file__).parent / "fixtures" / "tracking"


def make_rec(hardware: str, pick_index: int = 0) -> Recommendation:
    rec = Recommendation.model_validate_json((FIX / "recommendation.json").read_text())
    pick = rec.candidates[pick_index]
    target = rec.primary.model_copy(update={"pick": pick, "verdict": f"Deploy {pick.model} on {hardware}.",
                                            "hardware_fingerprint": None})
    rec = rec.model_copy(update={"report_id": str(uuid.uuid4()), "targets": [target]})
    rec.hardware = json.loads((FIX / f"hardware-{hardware}.json").read_text())
    return rec


def cli_run(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run_cli(cli, list(args), "advisor")
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def two_machines(mlflow_server, tmp_path_factory):
    exp = f"cmp-{uuid.uuid4().hex[:8]}"
    ids = {}
    with pytest.MonkeyPatch.context() as mp:   # module scope runs before conftest's per-test isolation
        mp.setenv("ADVISOR_REPORTS_DIR", str(tmp_path_factory.mktemp("cmp-reports")))
        mp.setenv("ADVISOR_RUN_CONTEXT", "0")
        for hw, pick in (("h100", 1), ("h100", 0), ("a10g", 2)):   # the second h100 run supersedes the first
            res = record("recommendation", make_rec(hw, pick), send=True, tracking_uri=mlflow_server.uri,
                         experiment=exp)
            assert res.ok, res.message()
            ids[hw] = res.run_id
    return exp, ids


def test_compare_json_shows_the_latest_pick_per_machine(two_machines, mlflow_server, capsys):
    exp, ids = two_machines
    code, out, err = cli_run(capsys, "compare", "--experiment", exp, "--tracking-uri", mlflow_server.uri, "--json")
    assert code == 0, err
    rows = {r["gpu_name"]: r for r in json.loads(out)}
    assert set(rows) == {"NVIDIA H100 80GB HBM3", "NVIDIA A10G"}
    h100, a10g = rows["NVIDIA H100 80GB HBM3"], rows["NVIDIA A10G"]
    assert h100["run_id"] == ids["h100"] and h100["pick"] == "qwen2.5-3b:bf16@local"
    assert h100["e2e_p95_ms"] == 2300.0 and h100["tokens_per_s"] == 121.9 and h100["fingerprint"] == "fp-h100-0001"
    assert a10g["pick"] == "meta/llama:3 8b?x@local" and a10g["e2e_p95_ms"] == 2700.0 and a10g["quality_proxy"] is None
    assert h100["profile"] == "1 x NVIDIA H100 80GB HBM3" and a10g["task"] == "summarization"


def test_compare_table_and_plot(two_machines, mlflow_server, capsys, tmp_path):
    exp, _ = two_machines
    png = tmp_path / "out" / "picks.png"
    code, out, err = cli_run(capsys, "compare", "--experiment", exp, "--tracking-uri", mlflow_server.uri,
                             "--task", "summarization", "--plot", str(png))
    assert code == 0, err
    assert "NVIDIA H100 80GB HBM3" in out and "NVIDIA A10G" in out and " qwen2.5-3b:bf16 " in out
    assert "2,300" in out and "2,700" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_compare_with_no_runs_exits_1(mlflow_server, capsys):
    code, out, err = cli_run(capsys, "compare", "--experiment", "never-used", "--tracking-uri", mlflow_server.uri)
    assert code == 1 and out == "" and "no advisor recommendations" in err
    code, out, err = cli_run(capsys, "compare", "--experiment", "never-used", "--tracking-uri", mlflow_server.uri,
                             "--task", "x", "--json")
    assert code == 1 and json.loads(out) == []


def test_compare_unreachable_is_exit_3(capsys):
    code, _, err = cli_run(capsys, "compare", "--tracking-uri", closed_port_uri())
    assert code == 3 and err.startswith("error: cannot read runs from MLflow") and len(err.strip().splitlines()) == 1
