"""`python -m bitswarm`: the CLI (bitswarm.cli.main)."""

from bitswarm.cli import main

if __name__ == "__main__":  # guarded: spawned workers (FINN, process pools) re-import this module
    raise SystemExit(main())
