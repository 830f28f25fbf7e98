"""Safe YAML reading with line numbers for error messages. Only yaml.safe_load semantics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from advisor.errors import CatalogError


# libyaml's parser when PyYAML was built with it (several times faster); the constructors stay safe.
if hasattr(yaml, "CSafeLoader"):
    class _LineLoader(yaml.CSafeLoader):
        """A safe loader that remembers the line of every mapping key (for 'file:line field' errors)."""
else:  # pragma: no cover - PyYAML without libyaml
    class _LineLoader(yaml.SafeLoader):
        """A safe loader that remembers the line of every mapping key (for 'file:line field' errors)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    mapping = yaml.constructor.SafeConstructor.construct_mapping(loader, node, deep=deep)
    lines = {}
    for key_node, _ in node.value:
        try:
            lines[loader.construct_object(key_node, deep=True)] = key_node.start_mark.line + 1
        except Exception:  # unhashable keys are reported by validation later
            pass
    try:
        mapping["__lines__"] = lines
    except TypeError:
        pass
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# YAML aliases share one object; copying them (as stripping does) can blow a small file up
# ("billion laughs"). No legitimate catalog or policy comes near this many values.
MAX_VALUES = 200_000


def strip_lines(obj: Any) -> Any:
    """Remove the '__lines__' bookkeeping keys recursively (refusing alias bombs)."""
    budget = [MAX_VALUES]

    def walk(o: Any) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise CatalogError(f"document expands to more than {MAX_VALUES:,} values (YAML alias bomb?)")
        if isinstance(o, dict):
            return {k: walk(v) for k, v in o.items() if k != "__lines__"}
        if isinstance(o, list):
            return [walk(v) for v in o]
        return o

    return walk(obj)


def read_text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise CatalogError(f"{path}: is a directory, expected a YAML file") from None
    except UnicodeDecodeError:
        raise CatalogError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read ({exc.strerror or exc})") from None


def load_yaml(path: Path, *, with_lines: bool = False) -> Any:
    """yaml.safe_load a file; malformed YAML becomes a one-line CatalogError with the line."""
    text = read_text(path)
    try:
        if with_lines:
            return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CatalogError(f"{path}{where}: malformed YAML ({problem})") from None
    except RecursionError:
        raise CatalogError(f"{path}: YAML nested too deeply") from None
    except (ValueError, TypeError, AttributeError, OverflowError, KeyError, IndexError) as exc:
        # PyYAML's constructors raise these on some bad scalars (e.g. `!!timestamp yesterday`)
        raise CatalogError(f"{path}: malformed YAML ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})") from None


def line_of(raw: Any, loc: tuple) -> int | None:
    """The line of the deepest key of `loc` that the YAML had (for 'file:line: field' errors).

    `raw` is a document read with load_yaml(with_lines=True); `loc` a pydantic error location.
    """
    node, line = raw, None
    for part in loc:
        if isinstance(node, dict):
            line = node.get("__lines__", {}).get(part, line)
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            if isinstance(node, dict) and node.get("__lines__"):
                line = min(node["__lines__"].values())
        else:
            break
    return line
