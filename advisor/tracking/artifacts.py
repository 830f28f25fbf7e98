"""Upload a saved report folder's files as run artifacts (the manifest stays local)."""

from __future__ import annotations

from pathlib import Path

from advisor.tracking.outbox import MANIFEST, safe_filename


def report_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")
                  and p.name == safe_filename(p.name))


def log_files(client, run_id: str, folder: Path) -> list[str]:
    names = []
    for path in report_files(folder):
        client.log_artifact(run_id, str(path))
        names.append(path.name)
    return names
