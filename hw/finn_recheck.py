"""FINN's estimate of a search winner *as exported* (its QONNX file, not the cache), verified.

The search's costs come from the cache or the surrogate; the re-check exports the winner, runs
FINN's estimate flow on that file with the search's folding policy, verifies FINN's graphs against
it (:mod:`bitswarm.hw.finn_verify`), and reports the constraints' violation on FINN's figures.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bitswarm.boards import Board
from bitswarm.hw.cost import Constraint, Cost, total_violation
from bitswarm.hw.cost_bitops import bit_metrics
from bitswarm.models import BitConfig, ZooEntry


def recheck_with_finn(model, bits: BitConfig, entry: ZooEntry, board: Board, constraints: tuple[Constraint, ...],
                      target_fps: int, cache_dir: Path, verify=None) -> dict:
    """``verify``: a :class:`~bitswarm.hw.finn_verify.VerifyInputs` (None: estimates only)."""
    from bitswarm.hw.finn_estimate import finn_estimate_onnx
    from bitswarm.hw.finn_verify import verify_build
    from bitswarm.models.export import export_qonnx

    with tempfile.TemporaryDirectory(prefix="bitswarm-recheck-") as tmp:
        onnx = export_qonnx(model.eval(), entry.input_shape, Path(tmp) / "winner.qonnx.onnx").path
        est = finn_estimate_onnx(onnx, board, cache_dir, target_fps=target_fps, entry=entry,
                                 out_dir=Path(tmp) / "build")
        checked = verify_build(onnx, Path(tmp) / "build", verify, cache_dir).to_dict() if verify is not None else None
    cost = Cost(est.source, {**est.values, **bit_metrics(entry, bits).values})
    return {"source": "finn-estimate of the exported QONNX winner", "target_fps": target_fps,
            "values": dict(cost.values), "violation": total_violation(constraints, cost), "verification": checked}
