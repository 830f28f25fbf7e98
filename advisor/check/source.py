"""Where the checked model comes from: a catalog id, a local config.json/folder, or the MLflow registry.

A model outside the catalog becomes an in-memory ModelEntry (architecture + derived parameter
count) for the estimator; its licence and benchmarks stay unknown.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from advisor.catalog.schema import Architecture, ModelEntry
from advisor.check.policy import parse_model_uri
from advisor.check.schema import ModelSource
from advisor.errors import UsageError

# Depth to search registry artifacts for config.json (transformers flavour keeps it one or two
# folders down); only the small JSON files are downloaded, never the weights.
_MAX_DEPTH = 3


@dataclass
class ResolvedModel:
    source: ModelSource
    estimate_model: str | ModelEntry   # what the estimator is given: a catalog id or the built entry
    catalog_entry: ModelEntry | None   # licence and benchmarks, when known


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9.+_-]+", "-", text.lower()).strip("-._+")
    return slug or "model"


def _external_entry(arch: Architecture, entry_id: str, name: str, origin: str) -> ModelEntry:
    from advisor.catalog.params import derived_params

    return ModelEntry(
        id=entry_id, name=name, family="external", params_total=derived_params(arch),
        params_source=f"derived from the architecture in {origin}", architecture=arch,
        architecture_source=origin, license="unknown",
        license_source=f"not in the catalog (architecture read from {origin})")


def registry_version(uri: str, tracking_uri: str | None) -> tuple[str, str]:
    """(name, version) of models:/NAME/VERSION or models:/NAME@ALIAS, checked against the registry."""
    from advisor.check.mlflowio import client_for, mlflow_errors

    name, version, alias = parse_model_uri(uri)
    with mlflow_errors(f"cannot resolve {uri} in the MLflow registry", tracking_uri):
        client = client_for(tracking_uri)
        if alias:
            mv = client.get_model_version_by_alias(name, alias)
        else:
            mv = client.get_model_version(name, version)
    return name, str(mv.version)


@contextmanager
def _quiet_progress():
    """No artifact progress bar in CI logs (MLflow reads this variable at call time); restored after."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    saved = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = saved


def _download_config(name: str, version: str, tracking_uri: str | None, dst: Path) -> Path:
    """Fetch only the shallowest config.json of a registered version's artifacts, never the weights."""
    import mlflow.artifacts

    from advisor.check.mlflowio import client_for, effective_uri, mlflow_errors

    uri, tracking_uri = f"models:/{name}/{version}", effective_uri(tracking_uri)
    with mlflow_errors(f"cannot read the artifacts of {uri}", tracking_uri), _quiet_progress():
        source = client_for(tracking_uri).get_model_version_download_uri(name, version).rstrip("/")
        level, found = [source], None
        for _ in range(_MAX_DEPTH):  # breadth first: the shallowest config.json wins
            subdirs = []
            for folder in level:
                for info in mlflow.artifacts.list_artifacts(artifact_uri=folder, tracking_uri=tracking_uri) or []:
                    # entries' paths are relative to different roots per store: keep the last part
                    child = f"{folder}/{info.path.rstrip('/').rsplit('/', 1)[-1]}"
                    if info.is_dir:
                        subdirs.append(child)
                    elif child.endswith("/config.json") and found is None:
                        found = child
            if found or not subdirs:
                break
            level = sorted(subdirs)
        if found is None:
            raise UsageError(f"no config.json in the artifacts of {uri} ({source})",
                             hint="register the model with its Hugging Face config.json")
        local = mlflow.artifacts.download_artifacts(artifact_uri=found, dst_path=str(dst), tracking_uri=tracking_uri)
    return Path(local)


def resolve(*, model: str | None, model_path: str | None, model_uri: str | None, catalog, workdir: Path,
            tracking_uri: str | None = None) -> ResolvedModel:
    """The model to check. `model` (catalog id) supplies licence and benchmarks; a path or URI the
    architecture. With only a path or URI, licence and quality are unknown."""
    from advisor.catalog.hfconfig import architecture_from_path

    entry = catalog.model(model) if model else None  # unknown id -> UsageError with did-you-mean
    if not model_path and not model_uri:
        if entry is None:
            raise UsageError("no model to check",
                             hint="give MODEL, --model-path, --model-uri or 'model:' in the policy")
        return ResolvedModel(
            source=ModelSource(kind="catalog", id=entry.id, name=entry.name, in_catalog=True,
                               params_total=entry.params_total),
            estimate_model=entry.id, catalog_entry=entry)

    registered = version = None
    if model_uri:
        registered, version = registry_version(model_uri, tracking_uri)
        config = _download_config(registered, version, tracking_uri, workdir / "artifacts")
        origin, label = f"models:/{registered}/{version} ({config.name})", f"{registered}-v{version}"
    else:
        path = Path(model_path)
        if not path.exists():
            raise UsageError(f"{path}: no such file or folder",
                             hint="--model-path takes a config.json or a model folder")
        config = path / "config.json" if path.is_dir() else path
        origin, label = str(config), (path.name if path.is_dir() else path.resolve().parent.name)
    arch = architecture_from_path(config)
    entry_id = _slug(f"{entry.id}+{label}" if entry else label)
    if entry_id in catalog.models or entry_id in catalog.aliases:
        entry_id = _slug(f"external-{entry_id}")
    external = _external_entry(arch, entry_id, entry.name if entry else label, origin)
    return ResolvedModel(
        source=ModelSource(kind="mlflow" if model_uri else "path", id=entry.id if entry else entry_id,
                           name=entry.name if entry else label, in_catalog=entry is not None,
                           config_path=str(config), uri=model_uri, registered_model=registered,
                           version=version, params_total=external.params_total),
        estimate_model=external, catalog_entry=entry)
