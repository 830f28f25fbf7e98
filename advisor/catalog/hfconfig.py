"""Read a local Hugging Face config.json into an Architecture. Never touches the hub."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from advisor.catalog.schema import KEY_ALIASES, Architecture
from advisor.errors import CatalogError

_KEYS = (set(Architecture.model_fields) | set(KEY_ALIASES)) - {"vision_params"}


def read_config_json(path: Path) -> dict:
    path = Path(path)
    try:
        if path.is_dir():
            path = path / "config.json"
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: embedded NUL in the path
        raise CatalogError(f"{str(path)[:200]!r}: cannot read ({type(exc).__name__})") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, or an integer beyond 4300 digits
        raise CatalogError(f"{path}: not valid JSON ({getattr(exc, 'msg', None) or type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{path}: expected a JSON object")
    return data


def architecture_from_config(config: dict, *, origin: str = "config.json") -> Architecture:
    """Pick the keys the estimator needs; multimodal configs keep the language model in text_config."""
    if isinstance(config.get("text_config"), dict) and "hidden_size" not in config:
        merged = dict(config["text_config"])
        merged.setdefault("model_type", config.get("model_type"))
        config = merged
    picked = {k: v for k, v in config.items() if k in _KEYS and v is not None}
    # Qwen2 configs carry a sliding_window that is switched off by use_sliding_window.
    if config.get("use_sliding_window") is False:
        picked.pop("sliding_window", None)
    if "num_local_experts" not in picked and isinstance(config.get("num_experts"), int):
        picked["num_local_experts"] = config["num_experts"]
    try:
        return Architecture.model_validate(picked)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "config"
        raise CatalogError(f"{origin}: field '{field}': {err['msg']}") from None


def architecture_from_path(path: Path) -> Architecture:
    return architecture_from_config(read_config_json(path), origin=str(path))
