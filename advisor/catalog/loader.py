"""Load the built-in catalog and the user's catalog files; later files override earlier ids."""

from __future__ import annotations

import importlib.util
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ValidationError

from advisor.catalog.families import REGISTRY, ArchitectureFamily, check_families
from advisor.catalog.hfconfig import architecture_from_path
from advisor.catalog.params import derived_params
from advisor.catalog.runtimes import RuntimeProfile
from advisor.catalog.schema import BenchmarkSpec, FormatSpec, HardwareTarget, LicenceSpec, ModelEntry, TaskProfile, Tier
from advisor.errors import CatalogError, unknown_id
from advisor.yamlio import field_errors, load_yaml, strip_lines

ENV_CATALOG_PATH = "ADVISOR_CATALOG_PATH"
PARAM_TOLERANCE = 0.02

# Top-level key in a catalog file -> the model it holds.
SECTIONS: dict[str, type[BaseModel]] = {
    "models": ModelEntry,
    "targets": HardwareTarget,
    "tasks": TaskProfile,
    "formats": FormatSpec,
    "tiers": Tier,
    "runtimes": RuntimeProfile,
    "benchmarks": BenchmarkSpec,
    "licenses": LicenceSpec,
    "architectures": ArchitectureFamily,
}
_FILE_KEYS = set(SECTIONS) | {"catalog_version", "description"}


class CatalogOverrideWarning(UserWarning):
    """A user file redefines an id that an earlier file defined."""


class CatalogConsistencyWarning(UserWarning):
    """A stated figure disagrees with one derived from the architecture."""


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    entry: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        parts = [where]
        if self.entry:
            parts.append(f"entry '{self.entry}'")
        if self.field:
            parts.append(f"field '{self.field}'")
        return ": ".join(parts) + f": {self.message}"


def builtin_catalog_dir() -> Path:
    spec = importlib.util.find_spec("advisor_catalog")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parents[2] / "catalog"  # running from a source tree


def catalog_files(path: Path) -> list[Path]:
    path = Path(path)
    try:
        if path.is_dir():
            return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        exists = path.exists()
    except (OSError, ValueError) as exc:  # name too long, embedded NUL, permission
        raise CatalogError(f"{str(path)[:120]!r}: cannot read ({type(exc).__name__})") from None
    if not exists:
        raise CatalogError(f"{path}: no such file or folder")
    return [path]


def user_catalog_paths(cli_paths: list[str] | tuple[str, ...] = ()) -> list[Path]:
    env = os.environ.get(ENV_CATALOG_PATH, "")
    paths = [Path(p) for p in env.split(os.pathsep) if p.strip()]
    return paths + [Path(p) for p in cli_paths]


@dataclass
class Catalog:
    models: dict[str, ModelEntry] = field(default_factory=dict)
    targets: dict[str, HardwareTarget] = field(default_factory=dict)
    tasks: dict[str, TaskProfile] = field(default_factory=dict)
    formats: dict[str, FormatSpec] = field(default_factory=dict)
    tiers: dict[str, Tier] = field(default_factory=dict)
    runtimes: dict[str, RuntimeProfile] = field(default_factory=dict)
    benchmarks: dict[str, BenchmarkSpec] = field(default_factory=dict)
    licenses: dict[str, LicenceSpec] = field(default_factory=dict)
    architectures: dict[str, ArchitectureFamily] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    origin: dict[str, str] = field(default_factory=dict)   # model id -> file that defined it
    target_origin: dict[str, str] = field(default_factory=dict)
    local_notes: list[str] = field(default_factory=list)   # from a --hf-cache / --models-dir scan
    builtin_dir: str = ""

    def user_model_ids(self) -> list[str]:
        return [m for m, f in self.origin.items() if not f.startswith(self.builtin_dir)]

    def model(self, model_id: str) -> ModelEntry:
        key = model_id.strip().lower()
        key = self.aliases.get(key, key)
        if key not in self.models:
            raise unknown_id("model", model_id, list(self.models) + list(self.aliases))
        return self.models[key]

    def target(self, target_id: str) -> HardwareTarget:
        if target_id not in self.targets:
            raise unknown_id("target", target_id, ["local", *self.targets])
        return self.targets[target_id]

    def task(self, task_id: str) -> TaskProfile:
        if task_id not in self.tasks:
            raise unknown_id("task", task_id, list(self.tasks))
        return self.tasks[task_id]

    def format(self, fmt: str) -> FormatSpec:
        if fmt not in self.formats:
            raise unknown_id("format", fmt, list(self.formats))
        return self.formats[fmt]

    def tier_of(self, params: int) -> str:
        for tier in self.tiers.values():
            if tier.contains(params):
                return tier.id
        return "unknown"

    def version(self) -> str:
        """A short digest of the loaded files' contents, logged with every recommendation."""
        import hashlib

        digest = hashlib.sha256()
        for f in self.files:
            try:
                digest.update(Path(f).read_bytes())
            except OSError:
                digest.update(f.encode())
        return digest.hexdigest()[:12]


def parse_file(path: Path, problems: list[Problem]) -> dict[str, list[tuple[BaseModel, int | None]]]:
    """Validate one catalog file; every problem is appended, valid entries returned."""
    out: dict[str, list[tuple[BaseModel, int | None]]] = {k: [] for k in SECTIONS}
    try:
        doc = load_yaml(path, with_lines=True)
    except CatalogError as exc:
        line, reason = getattr(exc, "line", None), getattr(exc, "reason", None)   # YamlSyntaxError: keep the line
        problems.append(Problem(str(path), line, None, None, reason or exc.message.split(": ", 1)[-1]))
        return out
    if doc is None:
        return out
    if not isinstance(doc, dict):
        problems.append(Problem(str(path), None, None, None,
                                "expected a mapping with 'models', 'targets', 'tasks', ..."))
        return out
    lines = doc.get("__lines__", {})
    for key in doc:
        if key == "__lines__":
            continue
        if key not in _FILE_KEYS:
            problems.append(Problem(str(path), lines.get(key), None, str(key),
                                    f"unknown top-level key (expected one of: {', '.join(sorted(SECTIONS))})"))
    for section, model_cls in SECTIONS.items():
        entries = doc.get(section)
        if entries is None:
            continue
        if not isinstance(entries, list):
            problems.append(Problem(str(path), lines.get(section), None, section, "expected a list of entries"))
            continue
        for raw in entries:
            entry_id = raw.get("id") if isinstance(raw, dict) else None
            if entry_id is not None:  # an id that is not a scalar (even a deeply nested list) is shown as such
                entry_id = str(entry_id)[:80] if isinstance(entry_id, (str, int, float, bool)) else "<not a string>"
            line = raw.get("__lines__", {}).get("id") if isinstance(raw, dict) else None
            if not isinstance(raw, dict):
                problems.append(Problem(str(path), lines.get(section), None, section, "entry is not a mapping"))
                continue
            try:
                obj = model_cls.model_validate(strip_lines(raw))
            except ValidationError as exc:
                try:  # reading the errors renders the input, which can itself recurse too deeply
                    for fe in field_errors(exc, raw, model_cls):
                        msg = fe.message + (f" ({fe.hint})" if fe.hint else "")
                        problems.append(Problem(str(path), fe.line or line, entry_id, fe.field, msg))
                except RecursionError:
                    problems.append(Problem(str(path), line, entry_id, None, "entry nested too deeply"))
                continue
            except RecursionError:
                problems.append(Problem(str(path), line, entry_id, None, "entry nested too deeply"))
                continue
            except CatalogError as exc:  # alias bomb refused by strip_lines
                problems.append(Problem(str(path), line, entry_id, None, exc.message))
                continue
            out[section].append((obj, line))
    return out


def _resolve_hf_config(entry: ModelEntry, base: Path) -> ModelEntry:
    cfg_path = Path(entry.hf_config)
    if not cfg_path.is_absolute():
        cfg_path = base / cfg_path
    arch = architecture_from_path(cfg_path)
    return entry.with_architecture(arch, hf_config=None,
                                   architecture_source=entry.architecture_source or str(cfg_path))


def _check_params(entry: ModelEntry, path: str, line: int | None, problems: list[Problem], warn: list[str]):
    try:
        derived = derived_params(entry.arch)
    except Exception as exc:  # arithmetic on absurd (but schema-valid) sizes
        problems.append(Problem(path, line, entry.id, "architecture", f"cannot derive parameters ({exc})"))
        return
    stated = entry.params_total
    if abs(derived - stated) > PARAM_TOLERANCE * stated:
        vision = f" (params_vision {entry.params_vision:,} included)" if entry.params_vision else ""
        warn.append(f"{path}: entry '{entry.id}': params_total {stated:,} differs from the "
                    f"{derived:,} derived from its architecture{vision} by {100 * (derived - stated) / stated:+.1f}%")
    note = entry.arch.family.note
    if note:
        warn.append(f"{path}: entry '{entry.id}': {note}")


def _resolve_instances(cat: Catalog, problems: list[Problem]) -> None:
    """Instance targets take their device's figures; a device that is missing is a problem."""
    for t in list(cat.targets.values()):
        if t.device is None:
            continue
        where = cat.target_origin.get(t.id, "targets")
        device = cat.targets.get(t.device)
        if device is None:
            problems.append(Problem(where, None, t.id, "device", f"unknown device target '{t.device}'"
                                    + _hint(t.device, [d for d in cat.targets if not cat.targets[d].device])))
            del cat.targets[t.id]
            continue
        if device.device is not None:
            problems.append(Problem(where, None, t.id, "device", f"'{t.device}' is itself an instance target"))
            del cat.targets[t.id]
            continue
        if device.kind != t.kind:
            problems.append(Problem(where, None, t.id, "kind", f"kind '{t.kind}' differs from device "
                                    f"'{device.id}' ({device.kind})"))
        if device.gpus_per_node is not None and t.gpus > device.gpus_per_node:
            problems.append(Problem(where, None, t.id, "gpus", f"{t.gpus} GPUs exceed the {device.gpus_per_node} "
                                    f"one node of '{device.id}' holds"))
        cat.targets[t.id] = t.with_device(device)


def _check_families(cat: Catalog, problems: list[Problem]) -> None:
    if not cat.architectures:
        return
    known = {**REGISTRY.all(), **cat.architectures}
    for fam_id, fld, msg in check_families(known, require_base=False):
        if fam_id in cat.architectures:
            problems.append(Problem("architectures", None, fam_id, fld, msg))
    if "llama" in cat.architectures:
        for fam_id, fld, msg in check_families({"llama": cat.architectures["llama"]}, require_base=True):
            problems.append(Problem("architectures", None, fam_id, fld, msg))


def _check_references(cat: Catalog, problems: list[Problem], warns: list[str]) -> None:
    """Ids that one entry names and another file defines: formats and benchmarks."""
    if not cat.benchmarks and not cat.formats and not cat.licenses:
        return  # a catalog without the vocabularies (a user file validated on its own) cannot be checked
    for m in cat.models.values():
        where = cat.origin.get(m.id, "catalog")
        if cat.formats:
            for f in m.formats:
                if f not in cat.formats:
                    problems.append(Problem(where, None, m.id, "formats", f"unknown format '{f}'"
                                            + _hint(f, list(cat.formats))))
        if m.lineage and "/" not in m.lineage.derived_from and cat.formats:
            parent = m.lineage.derived_from.lower()
            if parent not in cat.models and parent not in cat.aliases:
                problems.append(Problem(where, None, m.id, "lineage.derived_from",
                                        f"'{m.lineage.derived_from}' is not a catalog id (give an org/name repo id "
                                        "for a model outside the catalog)" + _hint(parent, list(cat.models))))
        if cat.benchmarks:
            for b in m.benchmarks:
                if b.name not in cat.benchmarks:
                    problems.append(Problem(where, None, m.id, "benchmarks",
                                            f"unknown benchmark '{b.name}'" + _hint(b.name, list(cat.benchmarks))))
    if cat.licenses:
        from advisor.rules.licences import canonical

        for m in cat.models.values():
            if canonical(m.license, cat.licenses) != m.license:
                # a team's own models may carry their own licence ids: a warning, not an error
                known = canonical(m.license, cat.licenses)
                warns.append(f"{cat.origin.get(m.id, 'catalog')}: entry '{m.id}': licence '{m.license}' is not an id "
                             "of catalog/licenses.yaml" + (f" (write '{known}')" if known
                                                           else _hint(m.license, list(cat.licenses))))
    if cat.benchmarks:
        for t in cat.tasks.values():
            for name in t.quality_proxy.weights:
                if name not in cat.benchmarks:
                    problems.append(Problem("tasks", None, t.id, "quality_proxy.weights",
                                            f"unknown benchmark '{name}'" + _hint(name, list(cat.benchmarks))))


def _hint(word: str, choices: list[str]) -> str:
    from advisor.errors import did_you_mean

    hint = did_you_mean(word, choices)
    return f" ({hint})" if hint else ""


def load_catalog(extra_paths: list[str] | tuple[str, ...] = (), *, include_builtin: bool = True,
                 strict: bool = True, include_env: bool = True) -> tuple[Catalog, list[Problem], list[str]]:
    """Load catalogs in order (built-in, ADVISOR_CATALOG_PATH, --catalog); later ids override.

    Returns the catalog, the problems found and the warnings (overrides, param mismatches).
    With strict=True any problem raises one CatalogError naming the first and the count.
    """
    sources: list[Path] = []
    if include_builtin:
        sources.append(builtin_catalog_dir())
    sources += user_catalog_paths(extra_paths) if include_env else [Path(p) for p in extra_paths]
    cat = Catalog(builtin_dir=str(builtin_catalog_dir()) if include_builtin else "\0")
    problems: list[Problem] = []
    warns: list[str] = []
    seen_in: dict[tuple[str, str], str] = {}
    for src in sources:
        try:
            files = catalog_files(src)
        except CatalogError as exc:
            problems.append(Problem(str(src), None, None, None, exc.message.split(": ", 1)[-1]))
            continue
        for f in files:
            cat.files.append(str(f))
            parsed = parse_file(f, problems)
            for section, items in parsed.items():
                store: dict = getattr(cat, section)
                for obj, line in items:
                    key = (section, obj.id)
                    if section == "models" and obj.hf_config:
                        try:
                            obj = _resolve_hf_config(obj, f.parent)
                        except CatalogError as exc:
                            problems.append(Problem(str(f), line, obj.id, "hf_config", exc.message))
                            continue
                    if key in seen_in:
                        if seen_in[key] == str(f):
                            problems.append(Problem(str(f), line, obj.id, "id", f"duplicate id in {section}"))
                            continue
                        warns.append(f"{f}: {section[:-1]} '{obj.id}' overrides the one from {seen_in[key]}")
                    seen_in[key] = str(f)
                    if section == "models":
                        _check_params(obj, str(f), line, problems, warns)
                        cat.origin[obj.id] = str(f)
                    if section == "architectures":
                        REGISTRY.register([obj])
                    if section == "targets":
                        cat.target_origin[obj.id] = str(f)
                    store[obj.id] = obj
    for m in cat.models.values():
        for alias in m.aliases:
            cat.aliases[alias.lower()] = m.id
    _resolve_instances(cat, problems)
    _check_families(cat, problems)
    _check_references(cat, problems, warns)
    if strict and problems:
        more = f" (and {len(problems) - 1} more; run 'advisor catalog validate')" if len(problems) > 1 else ""
        raise CatalogError(f"{problems[0]}{more}")
    for w in warns:
        warnings.warn(w, CatalogOverrideWarning if "overrides" in w else CatalogConsistencyWarning, stacklevel=2)
    return cat, problems, warns


_CACHE: dict[tuple, Catalog] = {}


def get_catalog(extra_paths: list[str] | tuple[str, ...] = (), local=None) -> Catalog:
    """The merged catalog, cached per process and per list of paths.

    `local` (advisor.catalog.localmodels.LocalSources) adds the models found in the Hugging Face
    cache and model folders it names (config.json files only).
    """
    key = (tuple(extra_paths), os.environ.get(ENV_CATALOG_PATH, ""))
    if key not in _CACHE:
        _CACHE[key] = load_catalog(extra_paths)[0]
    if not local:
        return _CACHE[key]
    local_key = key + (local,)
    if local_key not in _CACHE:
        from advisor.catalog.localmodels import with_local_models

        _CACHE[local_key] = with_local_models(_CACHE[key], local)
    return _CACHE[local_key]
