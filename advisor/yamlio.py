"""Safe YAML reading into pydantic models, with `file:line: field` errors. Only yaml.safe_load semantics.

One reader for every YAML file a user writes (catalog files, check policies, recommend --config):
the same alias-bomb limit, nesting guard and error rendering everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from advisor.errors import CatalogError, did_you_mean, one_line

M = TypeVar("M", bound=BaseModel)


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
            raise CatalogError(f"document expands to more than {MAX_VALUES:,} values (YAML aliases expanding?)")
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


class YamlSyntaxError(CatalogError):
    """Malformed YAML: `file:line: malformed YAML (reason)`; .line and .reason for callers that list problems."""

    def __init__(self, path: Path | str, line: int | None, reason: str):
        self.path, self.line, self.reason = str(path), line, reason
        super().__init__(f"{path}{f':{line}' if line else ''}: {reason}")


def _yaml_line(exc: yaml.YAMLError) -> int | None:
    """The 1-based line PyYAML (or libyaml) blames: the problem's mark, else the context's."""
    for attr in ("problem_mark", "context_mark"):
        mark = getattr(exc, attr, None)
        line = getattr(mark, "line", None)
        if isinstance(line, int) and line >= 0:
            return line + 1
    return None


def _yaml_reason(exc: yaml.YAMLError, text: str) -> str:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    line, column = getattr(mark, "line", None), getattr(mark, "column", None)
    rows = text.splitlines()
    blamed = rows[line][column:column + 1] if isinstance(line, int) and isinstance(column, int) \
        and 0 <= line < len(rows) else ""
    if blamed == "\t" or "tab" in problem.lower():
        problem += ": YAML indents with spaces, never tabs"
    return f"malformed YAML ({problem})"


def load_yaml(path: Path, *, with_lines: bool = False) -> Any:
    """yaml.safe_load a file; malformed YAML becomes a one-line `file:line: malformed YAML (reason)` error."""
    text = read_text(path)
    try:
        if with_lines:
            return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(path, _yaml_line(exc), _yaml_reason(exc, text)) from None
    except RecursionError:
        raise CatalogError(f"{path}: YAML nested too deeply") from None
    except (ValueError, TypeError, AttributeError, OverflowError, KeyError, IndexError) as exc:
        # PyYAML's constructors raise these on some bad scalars (e.g. `!!timestamp yesterday`)
        raise CatalogError(f"{path}: malformed YAML ({one_line(exc, 120)})") from None


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


@dataclass(frozen=True)
class FieldError:
    line: int | None
    field: str | None          # dotted location, e.g. "thresholds.max_latency_ms"
    message: str
    hint: str | None = None    # "did you mean: ...?" for an unknown key


def _field_names(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names valid at the place an unknown key was found (for 'did you mean')."""
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(str(part))
        ann = getattr(info, "annotation", None)
        inner = next((a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type)
                      and issubclass(a, BaseModel)), None)
        if inner is not None:
            model = inner
        elif isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
    return list(model.model_fields)


def field_errors(exc: ValidationError, raw: Any, model: type[BaseModel]) -> list[FieldError]:
    """Every validation error with the line the YAML had for it; rendering never recurses into the input."""
    out = []
    for err in exc.errors(include_input=False):
        loc = tuple(err["loc"])
        hint = None
        if err["type"] == "extra_forbidden" and loc:
            hint = did_you_mean(str(loc[-1]), _field_names(model, loc))
        out.append(FieldError(line_of(raw, loc), ".".join(str(p) for p in loc) or None,
                              err["msg"].removeprefix("Value error, "), hint))
    return out


def read_mapping(path: Path | str, *, what: str) -> dict:
    """A YAML file that must hold one mapping (empty file = {}), with key lines and the value limit checked."""
    path = Path(path)
    raw = load_yaml(path, with_lines=True)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise CatalogError(f"{path}: expected a mapping ({what})")
    return raw


def validate(raw: Any, model: type[M], path: Path | str, *, what: str) -> M:
    """raw (read with lines) -> model; the first error as 'file:line: field 'a.b': message (and N more)'."""
    try:
        plain = strip_lines(raw)
    except CatalogError as exc:
        raise CatalogError(f"{path}: {exc.message}: not {what}") from None
    except RecursionError:
        raise CatalogError(f"{path}: nested too deeply to be {what}") from None
    try:
        return model.model_validate(plain)
    except ValidationError as exc:
        try:  # rendering the errors walks the input, which can itself nest too deeply
            errors = field_errors(exc, raw, model)
        except RecursionError:
            raise CatalogError(f"{path}: nested too deeply to be {what}") from None
        first = errors[0]
        where = f"{path}:{first.line}" if first.line else str(path)
        text = f"{where}: field '{first.field}': {first.message}" if first.field else f"{where}: {first.message}"
        if len(errors) > 1:
            text += f" (and {len(errors) - 1} more)"
        raise CatalogError(text, hint=first.hint) from None
    except RecursionError:
        raise CatalogError(f"{path}: nested too deeply to be {what}") from None


def load_model(path: Path | str, model: type[M], *, what: str) -> M:
    """Read a YAML file into a pydantic model: the one entry point for policy and config files."""
    return validate(read_mapping(path, what=what), model, path, what=what)
