"""Errors that the CLI turns into one clear line and a documented exit code.

Exit codes (shared by every command):
  0  success / every check passed
  1  a check failed, or no model meets the constraints
  2  usage or input error (bad file, unknown id, impossible request)
  3  infrastructure error (MLflow unreachable or failing); the report is kept on disk
  70 internal error: a bug in model-advisor, not in the input (70 is EX_SOFTWARE in sysexits.h);
     one line on stderr, ADVISOR_DEBUG=1 shows the traceback
  130 interrupted (Ctrl-C)
"""

from __future__ import annotations

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INFRA = 3
EXIT_INTERNAL = 70   # a bug: never 1, which a pipeline reads as "a check failed"
EXIT_INTERRUPTED = 130

# How to get torch and the probes: the one wording for every message that asks for it.
INSTALL_HINT = "pip install 'model-advisor[probe]'"


class AdvisorError(Exception):
    """Base class: carries the exit code the CLI should use."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = " ".join(str(self.message).split())
        if self.hint:
            text += f" ({' '.join(self.hint.split())})"
        return text


class UsageError(AdvisorError):
    """Bad argument, bad file, unknown id: the user can fix it."""

    exit_code = EXIT_USAGE


class CatalogError(UsageError):
    """A catalog, hardware, task or policy file does not validate."""


class UnknownIdError(UsageError):
    """An id that is not in the catalog; the message carries suggestions."""


class InfraError(AdvisorError):
    """Something outside the user's input failed (MLflow down, disk full)."""

    exit_code = EXIT_INFRA


class TorchMissingError(UsageError):
    """torch is needed for the asked-for work but is not installed."""


def one_line(exc: BaseException, limit: int | None = None) -> str:
    """`Type: message` on one line (whitespace folded), the message cut at `limit` characters."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:limit] if limit else text}"


def did_you_mean(word: str, choices: list[str] | tuple[str, ...], n: int = 3) -> str | None:
    """A short 'did you mean' hint, or None when nothing is close."""
    import difflib

    close = difflib.get_close_matches(word.lower(), [c.lower() for c in choices], n=n, cutoff=0.5)
    if not close:
        # substring matches help for ids like "llama" -> "llama-3.1-8b"
        close = [c for c in choices if word.lower() in c.lower()][:n]
    if not close:
        return None
    return "did you mean: " + ", ".join(close) + "?"


def unknown_id(kind: str, value: str, choices: list[str]) -> UnknownIdError:
    return UnknownIdError(f"unknown {kind} '{value}'", hint=did_you_mean(value, choices)
                          or f"known {kind}s: {', '.join(sorted(choices)[:8])}{', ...' if len(choices) > 8 else ''}")
