"""Models already on this machine as candidates: the Hugging Face cache and model folders.

Reads only config.json files, with the project's JSON reader (advisor/catalog/hfconfig.py): never
a download, never model code, never weights. Layouts:
  Hugging Face cache  <hub>/models--<org>--<name>/snapshots/<revision>/config.json (the revision
                      refs/main names, else the newest snapshot holding a config.json); <hub> is
                      HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub
  model folders       <dir>/config.json, <dir>/<name>/config.json, <dir>/<org>/<name>/config.json
A local model whose repo id or folder name is a catalog id or alias takes that entry (licence,
benchmarks, sources) with the local architecture; any other is added unscored, licence unknown.
Every folder that is skipped gets one note saying why.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

ENV_HF_CACHE = "ADVISOR_HF_CACHE"
_UNSAFE = re.compile(r"[^a-z0-9.+_-]+")
MAX_MODELS = 500   # a cache is not expected to hold more; beyond this the scan stops with a note


@dataclass(frozen=True)
class LocalSources:
    """Where to look (hashable: it keys the catalog cache)."""

    hf_hubs: tuple[str, ...] = ()
    model_dirs: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.hf_hubs or self.model_dirs)


def default_hf_hub() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def sources_from_options(hf_cache: bool, models_dirs: tuple[str, ...] | list[str] = (),
                         env_value: str | None = None) -> LocalSources:
    """--hf-cache (or ADVISOR_HF_CACHE=1, or ADVISOR_HF_CACHE=<hub folder>) and --models-dir DIR."""
    hubs: list[str] = []
    value = (env_value or "").strip()
    if hf_cache or value.lower() in ("1", "true", "yes"):
        hubs.append(str(default_hf_hub()))
    elif value and value.lower() not in ("0", "false", "no"):
        hubs.append(str(Path(value).expanduser()))
    return LocalSources(tuple(hubs), tuple(str(Path(d).expanduser()) for d in models_dirs))


@dataclass
class Found:
    repo_id: str          # org/name, or the folder name
    config_path: Path


@dataclass
class ScanResult:
    found: list[Found] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _snapshot_config(repo_dir: Path) -> Path | None:
    snapshots = repo_dir / "snapshots"
    ref = repo_dir / "refs" / "main"
    try:
        if ref.is_file():
            rev = ref.read_text(encoding="utf-8", errors="replace").strip()
            candidate = snapshots / rev / "config.json"
            if rev and "/" not in rev and candidate.is_file():
                return candidate
        configs = [p / "config.json" for p in snapshots.iterdir() if (p / "config.json").is_file()]
    except OSError:
        return None
    return max(configs, key=lambda p: p.stat().st_mtime) if configs else None


def scan_hf_hub(hub: Path) -> ScanResult:
    out = ScanResult()
    try:
        repos = sorted(p for p in hub.iterdir() if p.is_dir() and p.name.startswith("models--"))
    except (OSError, ValueError) as exc:
        out.notes.append(f"Hugging Face cache {hub}: cannot be read ({type(exc).__name__}); no local models from it")
        return out
    for repo_dir in repos:
        repo_id = repo_dir.name[len("models--"):].replace("--", "/", 1)
        cfg = _snapshot_config(repo_dir)
        if cfg is None:
            out.notes.append(f"{repo_dir.name}: no config.json in any snapshot (skipped)")
            continue
        out.found.append(Found(repo_id, cfg))
    return out


def scan_models_dir(root: Path) -> ScanResult:
    out = ScanResult()
    try:
        if (root / "config.json").is_file():
            out.found.append(Found(root.name, root / "config.json"))
            return out
        children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except (OSError, ValueError) as exc:
        out.notes.append(f"models folder {root}: cannot be read ({type(exc).__name__})")
        return out
    for child in children:
        if (child / "config.json").is_file():
            out.found.append(Found(child.name, child / "config.json"))
            continue
        try:
            nested = sorted(p for p in child.iterdir() if p.is_dir() and (p / "config.json").is_file())
        except OSError:
            nested = []
        if nested:
            out.found.extend(Found(f"{child.name}/{p.name}", p / "config.json") for p in nested)
        else:
            out.notes.append(f"{child}: no config.json (skipped)")
    return out


def local_id(repo_id: str) -> str:
    """A catalog id from the repo's name: 'Qwen/Qwen2.5-7B-Instruct' -> 'qwen2.5-7b-instruct'."""
    name = repo_id.rsplit("/", 1)[-1].lower()
    name = _UNSAFE.sub("-", name).strip("-._+") or "local-model"
    return name[:80]


def _matching_entry(cat, repo_id: str):
    for key in (repo_id.lower(), local_id(repo_id)):
        key = cat.aliases.get(key, key)
        if key in cat.models:
            return cat.models[key]
    return None


def local_entries(cat, sources: LocalSources) -> tuple[list, list[str]]:
    """ModelEntry candidates for every local config.json, and one note per skipped folder."""
    from advisor.catalog.hfconfig import architecture_from_config, checkpoint_format, has_vision_tower, read_config_json
    from advisor.catalog.params import derived_params
    from advisor.catalog.schema import _ALIAS_RE, ModelEntry
    from advisor.errors import CatalogError

    scans = [scan_hf_hub(Path(h)) for h in sources.hf_hubs] + [scan_models_dir(Path(d)) for d in sources.model_dirs]
    notes = [n for s in scans for n in s.notes]
    entries: list = []
    seen: set[str] = set()
    for item in (f for s in scans for f in s.found):
        if len(entries) >= MAX_MODELS:
            notes.append(f"more than {MAX_MODELS} local models: the rest were not read")
            break
        where = item.config_path.parent
        try:
            config = read_config_json(item.config_path)
            arch = architecture_from_config(config, origin=str(item.config_path))
        except CatalogError as exc:
            notes.append(f"{item.repo_id}: skipped, {exc.message.split(': ', 1)[-1]}")
            continue
        fmt = checkpoint_format(config)
        fmt_note = ""
        if fmt is not None and fmt not in cat.formats:
            fmt_note = f" Its checkpoint format ({fmt}) is not in formats.yaml."
            fmt = None
        vision = " It has a vision tower, which is not counted." if has_vision_tower(config) else ""
        match = _matching_entry(cat, item.repo_id)
        if match is not None:
            entry = match.with_architecture(arch, architecture_source=str(item.config_path),
                                            hf_config=None)
            entry_id = match.id
            note = f"local copy of catalog entry '{match.id}' at {where}"
        else:
            entry_id = local_id(item.repo_id)
            if entry_id in cat.models or entry_id in seen:
                entry_id = f"{entry_id}-local"
            if entry_id in seen:
                notes.append(f"{item.repo_id}: skipped, a second local model with id '{entry_id}'")
                continue
            aliases = [item.repo_id] if _ALIAS_RE.match(item.repo_id) and item.repo_id.lower() != entry_id else []
            try:
                entry = ModelEntry(
                    id=entry_id, name=item.repo_id, family="local", aliases=aliases,
                    params_total=derived_params(arch),
                    params_source=f"derived from {item.config_path} by model-advisor",
                    architecture=arch, architecture_source=str(item.config_path),
                    context_length=arch.max_position_embeddings,
                    license="unknown", license_source=f"not recorded for the local model at {where}",
                    formats=[fmt] if fmt else [], formats_source=str(item.config_path) if fmt else None,
                    official_16bit=fmt is None,
                    notes=(f"Found on this machine at {where}; unscored: no catalog entry matches "
                           f"'{item.repo_id}'.{vision}{fmt_note}"))
            except ValueError as exc:  # pydantic ValidationError is a ValueError
                notes.append(f"{item.repo_id}: skipped, {str(exc).splitlines()[0][:160]}")
                continue
            note = f"local model '{entry_id}' (unscored) at {where}"
        seen.add(entry_id)
        entries.append((entry, note))
    return entries, notes


def with_local_models(cat, sources: LocalSources):
    """A copy of the catalog with the local models added (marked as the user's own)."""
    import copy

    if not sources:
        return cat
    entries, notes = local_entries(cat, sources)
    out = copy.copy(cat)
    out.models = dict(cat.models)
    out.aliases = dict(cat.aliases)
    out.origin = dict(cat.origin)
    out.local_notes = list(notes)
    for entry, note in entries:
        out.models[entry.id] = entry
        out.origin[entry.id] = str(entry.architecture_source)
        for alias in entry.aliases:
            out.aliases.setdefault(alias.lower(), entry.id)
        out.local_notes.append(note)
    if not entries:
        out.local_notes.append("no local models found in " + ", ".join(sources.hf_hubs + sources.model_dirs))
    return out
