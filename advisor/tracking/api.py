"""What the recommend / estimate / probe commands call: save the report, then maybe send it.

    from advisor.tracking.api import record
    result = record("recommendation", rec, {"report.md": md, "pareto.png": png}, send=mlflow_flag)
    ...print the report...
    if result.error:
        raise result.error          # InfraError: one line, exit 3; the folder is kept

record() never raises for MLflow trouble: the delivery error comes back in RecordResult.error (an
InfraError whose message names the kept folder and `advisor log <folder>`), so the caller can still
print its report before exiting 3. It raises InfraError only when the report cannot be written to
disk (nothing was kept), and UsageError for a bad kind or payload, a database store without full
MLflow (nothing kept), or a deleted experiment (then the folder is kept too).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advisor.errors import InfraError


@dataclass
class RecordResult:
    folder: Path
    run_id: str | None = None
    error: InfraError | None = None
    already_sent: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    def message(self) -> str:
        """One line for humans (stderr)."""
        if self.error is not None:
            return self.error.one_line()
        if self.run_id:
            return f"logged to MLflow as run {self.run_id}; report saved at {self.folder}"
        return f"report saved at {self.folder}"


def record(kind: str, payload: Any, files: dict[str, bytes | str | Path] | None = None, *, send: bool,
           tracking_uri: str | None = None, experiment: str | None = None) -> RecordResult:
    """Save the report under reports_dir() first; deliver it to MLflow when send=True."""
    from advisor.tracking.outbox import save_report

    if send:  # a store this install cannot open is a setup problem (exit 2), found before anything is kept
        from advisor.tracking.connection import require_store

        require_store(tracking_uri)

    folder = save_report(kind, payload, files or {})
    if not send:
        return RecordResult(folder)
    from advisor.tracking.deliver import send as deliver_folder

    try:
        delivery = deliver_folder(folder, tracking_uri=tracking_uri, experiment=experiment)
    except InfraError as exc:
        return RecordResult(folder, error=exc)
    return RecordResult(folder, run_id=delivery.run_id, already_sent=delivery.already_sent)
