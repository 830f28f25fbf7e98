"""With MLFLOW_TRACKING_URI unset, reports go to MLflow 3's embedded default: ./mlflow.db."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from advisor.recommend.schema import Recommendation
from advisor.tracking import connection
from advisor.tracking.api import record

FIX = Path(__file__).parent / "fixtures" / "tracking"


def test_default_store_is_sqlite_in_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("ADVISOR_RUN_CONTEXT", "0")
    monkeypatch.chdir(tmp_path)
    rec = Recommendation.model_validate_json((FIX / "recommendation.json").read_text())
    rec = rec.model_copy(update={"report_id": str(uuid.uuid4())})
    rec.hardware = json.loads((FIX / "hardware-a10g.json").read_text())

    assert connection.resolve_tracking_uri() == "sqlite:///mlflow.db"
    res = record("recommendation", rec, {"report.md": "# x"}, send=True)
    assert res.ok, res.message()
    assert (tmp_path / "mlflow.db").is_file()

    from mlflow import MlflowClient

    run = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(res.run_id)
    assert run.data.tags["advisor.gpu.name"] == "NVIDIA A10G" and run.data.tags["advisor.complete"] == "true"
    assert json.loads((res.folder / "manifest.json").read_text())["sent_tracking_uri"] == "sqlite:///mlflow.db"


def test_redact_hides_credentials():
    assert connection.redact("https://bob:s3cret@mlflow.example.com/x") == "https://***@mlflow.example.com/x"
    assert connection.redact("postgresql://u:p@db/mlflow") == "postgresql://***@db/mlflow"
    assert connection.redact("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_bounded_http_sets_short_defaults_and_respects_the_user(monkeypatch):
    import os

    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")
    with connection.bounded_http():
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"
