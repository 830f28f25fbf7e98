"""Runs the click app so that every failure is one line on stderr with a documented exit code."""

from __future__ import annotations

import os
import sys
import warnings

import click

from advisor.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, AdvisorError, one_line

# click >= 8.2 raises this for a group called without a command; older versions print the help.
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _warning_line(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {' '.join(str(message).split())}", file=sys.stderr)


def run_cli(cli: click.Group, argv: list[str] | None, prog_name: str) -> int:
    warnings.showwarning = _warning_line
    from advisor.cli.quiet import quiet_libraries

    quiet_libraries()
    try:
        rv = cli.main(args=argv, prog_name=prog_name, standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except AdvisorError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except click.exceptions.Abort:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        if isinstance(exc, _NO_ARGS_IS_HELP):  # `advisor` alone: one line, not the whole help as an error
            path = exc.ctx.command_path if getattr(exc, "ctx", None) else prog_name
            print(f"error: no command given (see '{path} --help')", file=sys.stderr)
            return EXIT_USAGE
        cmd = (f" (see '{prog_name} {exc.ctx.command_path.split(' ', 1)[1]} --help')"
               if getattr(exc, "ctx", None) and " " in exc.ctx.command_path else f" (see '{prog_name} --help')")
        print(f"error: {' '.join(exc.format_message().split())}{cmd}", file=sys.stderr)
        return exc.exit_code if exc.exit_code else EXIT_USAGE
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the last line of defence: never a traceback for users
        if os.environ.get("ADVISOR_DEBUG"):
            raise
        print(f"error: internal error: {one_line(exc, 300)} "
              "(set ADVISOR_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL
