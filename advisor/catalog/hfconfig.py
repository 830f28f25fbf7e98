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


def text_config(config: dict) -> dict:
    """The language model's keys: a multimodal config keeps them in text_config (flattened here, with
    the text model's model_type); the wrapper's tie_word_embeddings applies when text_config has none."""
    if isinstance(config.get("text_config"), dict) and "hidden_size" not in config:
        merged = dict(config["text_config"])
        merged.setdefault("model_type", config.get("model_type"))
        if "tie_word_embeddings" not in merged and isinstance(config.get("tie_word_embeddings"), bool):
            merged["tie_word_embeddings"] = config["tie_word_embeddings"]
        return merged
    return config


# quantization_config.quant_method -> the catalog format id of a checkpoint published that way
_QUANT_FORMATS = {"mxfp4": "mxfp4", "fp8": "fp8", "awq": "awq", "gptq": "gptq", "modelopt": "nvfp4",
                  "compressed-tensors": None, "bitsandbytes": None}


def checkpoint_format(config: dict) -> str | None:
    """The weight format a local checkpoint is stored in, from its quantization_config (None: 16-bit
    or a method without a catalog format id)."""
    q = config.get("quantization_config")
    if not isinstance(q, dict):
        return None
    method = q.get("quant_method")
    if not isinstance(method, str):
        return None
    if method == "modelopt":
        algo = str(q.get("quant_algo", "")).lower()
        return "nvfp4" if "fp4" in algo else "fp8" if "fp8" in algo else None
    return _QUANT_FORMATS.get(method.lower())


def has_vision_tower(config: dict) -> bool:
    return isinstance(config.get("vision_config"), dict)


def architecture_from_config(config: dict, *, origin: str = "config.json") -> Architecture:
    """Pick the keys the estimator needs; multimodal configs keep the language model in text_config."""
    config = text_config(config)
    picked = {k: v for k, v in config.items() if k in _KEYS and v is not None}
    # Qwen2 configs carry a sliding_window that is switched off by use_sliding_window.
    if config.get("use_sliding_window") is False:
        picked.pop("sliding_window", None)
    try:
        return Architecture.model_validate(picked)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "config"
        raise CatalogError(f"{origin}: field '{field}': {err['msg']}") from None


def architecture_from_path(path: Path) -> Architecture:
    return architecture_from_config(read_config_json(path), origin=str(path))
