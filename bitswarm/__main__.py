from bitswarm.cli import main

if __name__ == "__main__":  # guarded: spawned workers (FINN, process pools) re-import this module
    raise SystemExit(main())
