"""The outbox: reports land on disk whole, before anything is sent; no MLflow needed here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advisor.errors import InfraError, UsageError
from advisor.recommend.schema import Recommendation
from advisor.tracking import outbox

FIX = Path(__file__).parent / "fixtures" / "tracking"


@pytest.fixture
def rec() -> Recommendation:
    return Recommendation.model_validate_json((FIX / "recommendation.json").read_text())


def test_save_report_writes_payload_extras_and_manifest(rec, tmp_path):
    png = tmp_path / "chart.png"
    png.write_bytes(b"\x89PNG fake")
    folder = outbox.save_report("recommendation", rec, {"report.md": "# Pick\n", "pareto.png": png,
                                                        "probes.json": b"[]"})
    assert folder.parent == Path(outbox.reports_dir())
    assert folder.name.startswith("recommendation-") and folder.name.endswith(rec.report_id[:8])
    assert Recommendation.model_validate_json((folder / "recommendation.json").read_text()) == rec
    assert (folder / "report.md").read_text() == "# Pick\n"
    assert (folder / "pareto.png").read_bytes() == b"\x89PNG fake"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest == {"kind": "recommendation", "report_id": rec.report_id, "created_at": rec.created_at,
                        "files": ["pareto.png", "probes.json", "recommendation.json", "report.md"],
                        "sent_run_id": None}
    # nothing half-written is left beside it
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]


def test_pending_and_mark_sent(rec):
    a = outbox.save_report("recommendation", rec)
    b = outbox.save_report("estimate", {"model": "qwen2.5-3b", "target": "t4-16gb"})
    assert outbox.pending() == [a, b]          # oldest first, whatever the kind
    outbox.mark_sent(a, "run123", tracking_uri="http://***@host", experiment="model-advisor")
    assert outbox.pending() == [b]
    manifest = outbox.read_manifest(a)
    assert manifest["sent_run_id"] == "run123" and manifest["sent_tracking_uri"] == "http://***@host"
    # a payload without report_id gets a fresh uuid
    assert len(outbox.read_manifest(b)["report_id"]) == 36


def test_resolve_folder_accepts_a_file_inside_and_rejects_others(rec, tmp_path):
    folder = outbox.save_report("recommendation", rec)
    assert outbox.resolve_folder(folder / "recommendation.json") == folder
    assert outbox.resolve_folder(str(folder)) == folder
    with pytest.raises(UsageError, match="no such report folder"):
        outbox.resolve_folder(tmp_path / "missing")
    with pytest.raises(UsageError, match="not a saved report folder"):
        outbox.resolve_folder(tmp_path)


def test_extra_file_names_from_model_ids_are_sanitised(rec):
    folder = outbox.save_report("recommendation", rec, {"meta-llama/Llama-3.1-8B:int4?.json": b"{}",
                                                        "../../etc/passwd": b"x"})
    names = sorted(p.name for p in folder.iterdir())
    assert "meta-llama__Llama-3.1-8B_int4_.json" in names
    assert all("/" not in n and not n.startswith(".") for n in names)
    assert not (folder.parent.parent / "etc").exists()


def test_clashing_or_bad_names_are_usage_errors(rec):
    with pytest.raises(UsageError):
        outbox.save_report("recommendation", rec, {"manifest.json": b"{}"})
    with pytest.raises(UsageError):
        outbox.save_report("../evil", rec)
    assert outbox.pending() == []   # nothing half-written stays behind


def test_unwritable_reports_dir_is_an_infra_error(rec, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    monkeypatch.setenv("ADVISOR_REPORTS_DIR", str(blocker / "reports"))
    with pytest.raises(InfraError, match="cannot write the report"):
        outbox.save_report("recommendation", rec)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=0, max_size=300))
def test_safe_filename_is_always_a_plain_name(name):
    safe = outbox.safe_filename(name)
    assert safe and len(safe) <= 120
    assert "/" not in safe and "\\" not in safe and safe not in (".", "..")
    assert not safe.startswith(".")
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in safe)


def test_record_without_send_only_saves(rec):
    from advisor.tracking.api import record

    res = record("recommendation", rec, {"report.md": "# r"}, send=False)
    assert res.ok and res.run_id is None and outbox.pending() == [res.folder]
    assert res.message() == f"report saved at {res.folder}"


def test_saving_imports_no_mlflow():
    import subprocess
    import sys

    code = ("import sys; from advisor.tracking.api import record;"
            "record('estimate', {'model': 'x'}, send=False); print('mlflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
    assert len(outbox.pending()) == 1
