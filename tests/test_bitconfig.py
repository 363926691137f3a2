import pytest

from bitswarm.errors import ConfigError
from bitswarm.models import BitConfig, get_model


def test_config_is_a_hashable_value_roundtrip(tmp_path):
    e = get_model("tfc")
    a, b = e.default_bits(), e.default_bits()
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    for suffix in (".yaml", ".json"):
        p = tmp_path / f"bits{suffix}"
        a.save(p)
        assert BitConfig.load(p) == a
    assert a.key() != e.uniform_bits(2, 2).key()


def test_unknown_layer_is_named(tmp_path):
    e = get_model("tfc")
    p = tmp_path / "bad.yaml"
    d = e.default_bits().to_dict()
    d["layers"]["fc9"] = {"w": 4, "a": 4}
    p.write_text(__import__("yaml").safe_dump(d))
    with pytest.raises(ConfigError, match=r"bad.yaml: field 'layers.fc9': unknown layer; allowed: input_quant"):
        BitConfig.load(p).validate(e.specs, source=str(p))


def test_bits_outside_candidates_rejected():
    e = get_model("tfc")
    bits = e.uniform_bits(16, 4)
    with pytest.raises(ConfigError, match=r"layers.fc0.w': bit-width 16 not in candidate set; allowed: 1, 2, 3"):
        bits.validate(e.specs, candidates=range(1, 9))


def test_missing_layer_and_bad_file(tmp_path):
    e = get_model("tfc")
    d = e.default_bits().to_dict()
    del d["layers"]["fc1"]
    with pytest.raises(ConfigError, match="missing layers fc1"):
        BitConfig.from_dict(d).validate(e.specs)
    p = tmp_path / "broken.json"
    p.write_text("{not json")
    with pytest.raises(ConfigError, match="broken.json"):
        BitConfig.load(p)
