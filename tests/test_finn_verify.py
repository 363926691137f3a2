"""FINN builds are verified: FINN's intermediate graphs run in FINN's Python mode against the QONNX model."""

from pathlib import Path

import numpy as np
import pytest
import torch

from bitswarm.hw.finn_verify import LEVELS, FinnVerificationError, VerifyInputs, compare

SHIPPED_TFC = next(Path(__file__).resolve().parent.parent.glob("models/pretrained/tfc-fp-*/final.pt"))


def _outputs(ref, **changed):
    out = {"reference": ref}
    out.update({step: ref.copy() for _, step in LEVELS})
    out.update(changed)
    return out


def test_matching_levels_pass_and_report_accuracy():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(50, 10)).astype(np.float32)
    labels = ref.argmax(1)
    v = compare(_outputs(ref), labels, labels)
    assert [lc.step for lc in v.levels] == [s for _, s in LEVELS]
    assert v.accuracy == {"qonnx": 1.0, "finn_hw": 1.0, "pytorch": 1.0}
    assert v.reference_spread > 0


def test_first_differing_step_is_named_with_its_difference():
    ref = np.random.default_rng(1).normal(size=(20, 10)).astype(np.float32)
    bad = ref.copy()
    bad[3, ref[3].argmin()] += 50.0  # another class wins on one input
    with pytest.raises(FinnVerificationError, match=r"after step_streamline \(streamline\).*top-1 agreement 95\.0%"):
        compare(_outputs(ref, step_streamline=bad, step_convert_to_hw=bad))


def test_float_logits_may_move_where_every_class_stays():
    ref = np.random.default_rng(3).normal(size=(20, 10)).astype(np.float32)
    moved = ref + np.float32(0.01) * np.sign(ref)  # FINN's ties round the other way: small, same classes
    v = compare(_outputs(ref, step_minimize_bit_width=moved))
    assert v.levels[-1].max_abs_diff > 0.009 and v.levels[-1].ok


def test_integer_outputs_must_be_exact():
    ref = np.random.default_rng(2).integers(-500_000, 500_000, size=(20, 10)).astype(np.float64)
    off = ref.copy()
    off[0, 0] += 1.0  # within a float tolerance of the range, but integers must match exactly
    with pytest.raises(FinnVerificationError, match="integer outputs, must be exact"):
        compare(_outputs(ref, step_minimize_bit_width=off))


def test_constant_reference_proves_nothing_and_is_refused():
    ref = np.zeros((30, 10), np.float32)  # an untrained model whose activations all die
    with pytest.raises(FinnVerificationError, match="constant over the 30 verification inputs"):
        compare(_outputs(ref))


@pytest.fixture(scope="module")
def tfc_build(tmp_path_factory):
    """A FINN build (estimate steps) of TFC w2a2 from the shipped trained float weights."""
    from bitswarm.boards import load_board
    from bitswarm.flows.finn import build_finn
    from bitswarm.models import get_model
    from bitswarm.models.export import export_qonnx
    from bitswarm.train import load_float_weights

    tmp = tmp_path_factory.mktemp("verify")
    entry = get_model("tfc")
    model = entry.build(entry.uniform_bits(2, 2, keep_first_last=True))
    load_float_weights(model, torch.load(SHIPPED_TFC, weights_only=True))
    model.eval()
    onnx = export_qonnx(model, entry.input_shape, tmp / "tfc.onnx").path
    x = torch.rand(64, *entry.input_shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    inputs = VerifyInputs(x.numpy(), pred, pred)

    class Env:  # what build_finn reads of the environment
        cache_dir = tmp / "cache"
        vivado = vitis_hls = None

    r = build_finn(onnx, load_board("pynq-z2"), tmp / "finn", stop_after="estimates", env=Env(), verify=inputs)
    return r, onnx, inputs, Env


@pytest.mark.finn
def test_finn_build_is_verified_at_every_level(tfc_build):
    r, _, _, _ = tfc_build
    v = r.verification
    assert [lc["step"] for lc in v["levels"]] == [s for _, s in LEVELS]
    assert all(lc["ok"] and lc["top1_agree"] == 1.0 for lc in v["levels"])
    assert v["accuracy"]["pytorch"] == 1.0 and v["accuracy"]["finn_hw"] == v["accuracy"]["qonnx"]


@pytest.mark.finn
def test_altered_finn_graph_is_caught_and_names_its_step(tfc_build, tmp_path):
    """A deliberately altered streamlined graph (one weight matrix negated) is caught at that step."""
    import shutil

    from qonnx.core.modelwrapper import ModelWrapper

    from bitswarm.hw.finn_verify import verify_build

    r, onnx, inputs, env = tfc_build
    build = tmp_path / "build"
    shutil.copytree(r.out_dir / "build" / "intermediate_models", build / "intermediate_models")
    path = build / "intermediate_models" / "step_streamline.onnx"
    m = ModelWrapper(str(path))
    mm = next(n for n in m.graph.node if n.op_type == "MatMul")
    m.set_initializer(mm.input[1], -m.get_initializer(mm.input[1]))
    m.save(str(path))
    with pytest.raises(FinnVerificationError, match=r"after step_streamline \(streamline\)"):
        verify_build(onnx, build, inputs, env.cache_dir)
