"""The ``bitswarm`` command line: one subcommand per job, each with real ``--help``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import warnings

from bitswarm import commands
from bitswarm.errors import BitswarmError

EPILOG = "Docs: README.md and docs/ARCHITECTURE.md. Data dir default: $BITSWARM_DATA_DIR (Makefile)."


class UsageError(BitswarmError):
    """A bad command line (unknown flag, a value its ``type=`` refuses); printed on one line."""


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (flag, value, what is allowed) instead of usage + exit;
    the subcommands' parsers are of this class too (``add_subparsers`` uses the parent's class)."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="bitswarm", description=(
        "Per-layer mixed-precision search for CNNs on FPGAs (FINN) and edge CPUs (TVM)."), epilog=EPILOG)
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        importlib.import_module(f"bitswarm.commands.{info.name}").register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    # Brevitas announces an optional kernel package at import, once per process: noise in every command's log
    warnings.filterwarnings("ignore", message="fast_hadamard_transform package not found")
    try:
        args = build_parser().parse_args(argv)
        return args.fn(args)
    except BitswarmError as e:
        print(f"bitswarm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bitswarm: interrupted", file=sys.stderr)
        return 130
