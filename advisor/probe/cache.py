"""Probe results cache: one JSON file per key in cache_dir()/probes/, validated with pydantic.

A file is trusted only when it parses, validates and carries exactly the key asked for; anything
else (bad JSON, another schema, a foreign key) is ignored with a warning. An unwritable cache
directory only costs the caching (a warning), never the measurement.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import os
import platform
import warnings
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from advisor.catalog.schema import Architecture

CACHE_SCHEMA_VERSION = 1
# Bump when the probe method changes so that older figures are not reused.
METHOD_VERSION = "arch-probe-6"   # 6: hybrids keep a layer of each kind; recurrent decay params get the library init

T = TypeVar("T", bound=BaseModel)


class ProbeCacheWarning(UserWarning):
    """A cache file was ignored or could not be written."""


class CacheKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str                        # "calibration", "microprobes", "real-model"
    fingerprint: str
    device: str
    torch: str | None = None
    transformers: str | None = None
    method: str = METHOD_VERSION
    model: str | None = None
    architecture: str | None = None  # hash of the Architecture's fields
    format: str | None = None
    batch: int | None = None
    prompt_tokens: int | None = None
    new_tokens: int | None = None

    def digest(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:24]


class CacheFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int
    key: CacheKey
    created_utc: str
    payload: dict
    # Taken while other processes competed for the machine: still reused on a busy machine (probing again
    # there would measure the same load), replaced by the next measurement taken on a quiet one.
    under_load: bool = False


def architecture_hash(arch: Architecture) -> str:
    return hashlib.sha256(arch.model_dump_json().encode()).hexdigest()[:16]


def machine_fingerprint() -> str:
    """detect_profile().fingerprint when the hardware module provides it; else a local hash."""
    try:
        from advisor.hardware.profile import detect_profile

        fp = detect_profile(include_torch=False).fingerprint
        if fp:
            return fp
    except Exception:
        pass
    parts = [platform.machine(), platform.processor(), str(os.cpu_count())]
    try:
        import psutil

        parts.append(str(psutil.virtual_memory().total))
    except Exception:
        pass
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            parts += sorted({line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")})
    except OSError:
        pass
    return "local-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def software_versions() -> tuple[str | None, str | None]:
    """torch and transformers versions from package metadata: reading a cache must not import them
    (seconds of start-up for a warm `advisor recommend`)."""
    from importlib import metadata

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except Exception:
            return None

    return version("torch"), version("transformers")


class ProbeCache:
    def __init__(self, directory: Path | None = None):
        if directory is None:
            from advisor.paths import cache_dir

            directory = cache_dir() / "probes"
        self.directory = Path(directory)

    def path_for(self, key: CacheKey) -> Path:
        return self.directory / f"{key.kind}-{key.digest()}.json"

    def load(self, key: CacheKey, model: type[T]) -> T | None:
        hit = self.load_entry(key, model)
        return hit[0] if hit is not None else None

    def load_entry(self, key: CacheKey, model: type[T]) -> tuple[T, bool] | None:
        """(value, taken under load) or None."""
        path = self.path_for(key)
        try:
            text = path.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, UnicodeDecodeError) as exc:
            warnings.warn(f"probe cache {path}: unreadable ({exc}); ignored", ProbeCacheWarning, stacklevel=2)
            return None
        try:
            doc = CacheFile.model_validate_json(text)
            if doc.schema_version != CACHE_SCHEMA_VERSION:
                raise ValueError(f"schema_version {doc.schema_version}, expected {CACHE_SCHEMA_VERSION}")
            if doc.key != key:
                warnings.warn(f"probe cache {path}: written for another machine, software or request; "
                              "ignored", ProbeCacheWarning, stacklevel=2)
                return None
            return model.model_validate(doc.payload), doc.under_load
        except (ValidationError, ValueError, json.JSONDecodeError, RecursionError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            warnings.warn(f"probe cache {path}: corrupt or not a probe cache file ({first}); ignored",
                          ProbeCacheWarning, stacklevel=2)
            return None

    def save(self, key: CacheKey, value: BaseModel, *, under_load: bool = False) -> Path | None:
        path = self.path_for(key)
        doc = CacheFile(schema_version=CACHE_SCHEMA_VERSION, key=key,
                        created_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                        payload=value.model_dump(mode="json"), under_load=under_load)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp.write_text(doc.model_dump_json(indent=1), encoding="utf-8")
            os.replace(tmp, path)
            return path
        except OSError as exc:
            warnings.warn(f"probe cache {self.directory}: cannot write ({exc.strerror or exc}); "
                          "results are not cached", ProbeCacheWarning, stacklevel=2)
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            return None
