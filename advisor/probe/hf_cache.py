"""transformers 5 renamed a forward's `past_key_values` to `cache` (output field too) and warns on the old
name; older releases only know the old one. These pick whichever the installed model takes."""

from __future__ import annotations

import inspect
from typing import Any


def cache_name(module: Any) -> str:
    """The keyword `module.forward` takes for its KV cache: "cache" (transformers >= 5.2x) or "past_key_values"."""
    try:
        params = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def cache_of(output: Any) -> Any:
    """The KV cache a forward returned, read under the name that output class defines."""
    fields = getattr(output, "__dataclass_fields__", None) or {}
    if "cache" in fields:
        return output.cache
    return output.past_key_values
