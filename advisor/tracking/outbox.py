"""The outbox: every report is written to a local folder before anything is sent to MLflow.

Layout: reports_dir()/<kind>-<UTC timestamp>-<report_id[:8]>/
    <kind>.json      the payload (e.g. recommendation.json)
    <extra files>    report.md, pareto.png, hardware.json, probes.json ...
    manifest.json    {kind, report_id, created_at, files, sent_run_id, ...}

A folder appears whole or not at all (written under a dot-name, then renamed). A folder whose
manifest has sent_run_id null is pending; `advisor log --all` sends those.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from advisor.errors import InfraError, UsageError
from advisor.paths import reports_dir

MANIFEST = "manifest.json"
_KIND = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: str, *, max_len: int = 120) -> str:
    """A file name safe as a local file and an MLflow artifact path (model ids carry '/', ':')."""
    base = _UNSAFE.sub("_", str(name).replace("/", "__")).strip("._") or "file"
    return base[:max_len]


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_report(kind: str, payload: Any, files: dict[str, bytes | str | Path] | None = None) -> Path:
    """Write the report folder and return its path. Raises InfraError when the disk refuses."""
    if not _KIND.match(kind):
        raise UsageError(f"invalid report kind '{kind}'")
    data = payload.model_dump(mode="json") if hasattr(payload, "model_dump") else payload
    text = payload.model_dump_json(indent=2) if hasattr(payload, "model_dump_json") else json.dumps(
        payload, indent=2, default=str)
    report_id = str((data or {}).get("report_id") or uuid.uuid4()) if isinstance(data, dict) else str(uuid.uuid4())
    created = _utc_now()
    created_at = (data.get("created_at") if isinstance(data, dict) else None) or created.isoformat()

    root = reports_dir()
    name = f"{kind}-{created.strftime('%Y%m%dT%H%M%S%fZ')}-{safe_filename(report_id)[:8]}"
    tmp = root / f".{name}.tmp-{os.getpid()}"
    final = root / name
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        written = {f"{kind}.json": text.encode("utf-8")}
        for fname, content in (files or {}).items():
            safe = safe_filename(fname)
            if safe in (MANIFEST, f"{kind}.json"):
                raise UsageError(f"extra file name '{fname}' clashes with the report's own files")
            if isinstance(content, Path):
                content = content.read_bytes()
            elif isinstance(content, str):
                content = content.encode("utf-8")
            written[safe] = bytes(content)
        for fname, content in written.items():
            (tmp / fname).write_bytes(content)
        manifest = {"kind": kind, "report_id": report_id, "created_at": created_at,
                    "files": sorted(written), "sent_run_id": None}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        os.rename(tmp, final)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise InfraError(f"cannot write the report under {root}: {exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{folder}: not a saved report folder (no {MANIFEST})") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise UsageError(f"{path}: unreadable manifest ({type(exc).__name__})") from None
    if not isinstance(manifest, dict) or not manifest.get("kind") or not manifest.get("report_id"):
        raise UsageError(f"{path}: manifest lacks kind or report_id")
    return manifest


def read_payload(folder: Path, manifest: dict | None = None) -> dict:
    manifest = manifest or read_manifest(folder)
    path = Path(folder) / f"{manifest['kind']}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{folder}: the report file {path.name} is missing") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise UsageError(f"{path}: not valid JSON ({type(exc).__name__})") from None


def resolve_folder(path: str | Path) -> Path:
    """A report folder from a folder path or a file inside it (recommendation.json, manifest.json)."""
    p = Path(path)
    if p.is_file():
        p = p.parent
    if not p.is_dir():
        raise UsageError(f"{path}: no such report folder")
    read_manifest(p)
    return p


def pending() -> list[Path]:
    """Unsent report folders, oldest first."""
    root = reports_dir()
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(root.iterdir(), key=lambda p: (p.name.rsplit("-", 2)[-2:-1], p.name)):  # by timestamp
        if folder.name.startswith(".") or not (folder / MANIFEST).is_file():
            continue
        try:
            if read_manifest(folder).get("sent_run_id") is None:
                out.append(folder)
        except UsageError:
            continue
    return out


def mark_sent(folder: Path, run_id: str, *, tracking_uri: str | None = None,
              experiment: str | None = None) -> None:
    """Record the run id in the manifest (atomic rewrite). tracking_uri must already be redacted."""
    manifest = read_manifest(folder)
    manifest.update(sent_run_id=run_id, sent_at=_utc_now().isoformat(),
                    sent_tracking_uri=tracking_uri, sent_experiment=experiment)
    _write_atomic(Path(folder) / MANIFEST, json.dumps(manifest, indent=2).encode("utf-8"))
