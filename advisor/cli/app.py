"""The `advisor` command. Subcommands load lazily so `advisor --help` stays fast."""

from __future__ import annotations

import importlib
import importlib.util  # `import importlib` alone does not bind importlib.util (an editable install hid that)
import os
import sys

import click

from advisor import __version__

# name -> (module, attribute, one-line help). Help text lives here so --help imports nothing.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "profile": ("advisor.cli.profile_cmd", "profile", "Show the local hardware, or a named target."),
    "catalog": ("advisor.cli.catalog_cmd", "catalog", "Browse and validate the model catalog."),
    "estimate": ("advisor.cli.estimate_cmd", "estimate", "Estimate memory and latency of one model."),
    "probe": ("advisor.cli.probe_cmd", "probe", "Measure latency on this machine with short torch probes."),
    "probe-engine": ("advisor.cli.engine_cmd", "probe_engine",
                     "Time the real llama.cpp engine on this CPU (synthetic GGUF)."),
    "recommend": ("advisor.cli.recommend_cmd", "recommend", "Recommend the small or large model for a task."),
    "check": ("advisor.cli.check_cmd", "check", "Pre-deployment gate for CI (exit 0 pass, 1 fail)."),
    "log": ("advisor.cli.log_cmd", "log", "Send saved reports to MLflow (after an outage)."),
    "compare": ("advisor.cli.compare_cmd", "compare", "Compare recommendations across machines in MLflow."),
}

EPILOG = """Exit codes: 0 success, 1 a check failed or no model qualifies, 2 usage or input error
(including an MLflow store this install cannot open), 3 infrastructure error (MLflow unreachable;
the report is kept on disk), 70 internal error (a bug; ADVISOR_DEBUG=1 shows the traceback),
130 interrupted."""


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return [name for name in COMMANDS if self._available(name)]

    @staticmethod
    def _available(name: str) -> bool:
        return importlib.util.find_spec(COMMANDS[name][0]) is not None

    def get_command(self, ctx, name):
        if name not in COMMANDS or not self._available(name):
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def resolve_command(self, ctx, args):
        name = args[0] if args else None
        if name and name not in COMMANDS and not name.startswith("-"):
            from advisor.errors import did_you_mean

            hint = did_you_mean(name, list(COMMANDS))
            raise click.UsageError(f"no such command '{name}'" + (f" ({hint})" if hint else ""))
        return super().resolve_command(ctx, args)


@click.group(cls=LazyGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="model-advisor")
def cli():
    """model-advisor: which language model to deploy on the hardware you have.

    \b
    Typical use:
      advisor profile                         what hardware is here
      advisor catalog list --task summarization
      advisor estimate llama-3.1-8b --target a10g-24gb
      advisor recommend --task summarization  the main job
      advisor check --policy policy.yaml      a CI gate
    """


def main(argv: list[str] | None = None) -> None:
    from advisor.cli.guard import run_cli

    sys.exit(run_cli(cli, argv, prog_name=os.environ.get("ADVISOR_PROG_NAME", "advisor")))


if __name__ == "__main__":
    main()
