"""bitswarm: per-layer mixed-precision search for CNNs on FPGAs (FINN) and edge CPUs (TVM).

Subpackages live in the repository's top-level folders:
``bitswarm.models`` (models/), ``bitswarm.search`` (search/), ``bitswarm.hw`` (hw/),
``bitswarm.flows`` (flows/) and ``bitswarm.board_configs`` (board_configs/).
"""

__version__ = "0.1.0"
