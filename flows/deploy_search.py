"""The small search of the default deploy: bits for the model under the board's constraint.

Kept apart from ``deploy.py`` so the search engine (``bitswarm.search``) is one seam.
"""

from __future__ import annotations

from pathlib import Path


def search_bits(cfg, pkg: Path):
    """Return ``(BitConfig, search summary dict | None)``."""
    from bitswarm.workflow import resolve_model_and_data

    entry, _, _ = resolve_model_and_data(cfg.model, cfg.dataset, cfg.data_dir, cfg.env, cfg.weights)
    try:
        from bitswarm.search.api import run_small_search
    except ImportError:  # the search engine is not part of this build yet: deploy the documented default
        return entry.default_bits(), None
    return run_small_search(cfg, entry, pkg)
