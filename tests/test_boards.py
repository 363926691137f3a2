import pytest
import yaml

from bitswarm.boards import list_boards, load_board
from bitswarm.cli import main
from bitswarm.errors import ConfigError


def test_shipped_boards_load():
    assert {"pynq-z2", "zcu104", "kv260", "host"} <= set(list_boards())
    b = load_board("pynq-z2")
    assert b.fpga.part == "xc7z020clg400-1" and b.fpga.resources["lut"] == 53200
    assert b.fpga.resources["bram18"] == 280 and b.fpga.resources["dsp"] == 220
    assert b.fpga.clock_mhz == 100 and b.cpu.clock_mhz == 650 and b.cpu.memory_mb == 512
    assert b.fpga.limit("lut") == pytest.approx(0.7 * 53200)
    assert load_board("host").fpga is None


def _write(tmp_path, mutate):
    data = yaml.safe_load(open(load_board("pynq-z2").source))
    mutate(data)
    p = tmp_path / "pynq-z2.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize("mutate, pattern", [
    (lambda d: d.update(colour="red"), r"field 'colour': unknown key; allowed: name, description"),
    (lambda d: d["fpga"].pop("part"), r"field 'fpga.part': missing \(required\)"),
    (lambda d: d["fpga"].update(clock="100 kg"), r"field 'fpga.clock': '100 kg' is not a frequency.*allowed: .*MHz"),
    (lambda d: d["cpu"].update(memory=512), r"field 'cpu.memory': 512 has the wrong type; allowed: str"),
    (lambda d: d["fpga"]["finn_limits"].update(lut=1.5), r"fpga.finn_limits.lut': 1.5 is not a fraction"),
    (lambda d: d["search"].update(bit_candidates=[3, 9]), r"search.bit_candidates': bad bit-widths \[9\]"),
    (lambda d: d["ssh"].update(password="x"), r"field 'ssh.password': unknown key"),
    (lambda d: d["fpga"]["resources"].update(lut=0), r"'fpga.resources.lut': 0 is not a valid count; allowed: .* >= 1"),
    (lambda d: d["fpga"].update(clock="0 MHz"), r"field 'fpga.clock': '0 MHz' is not positive"),
    (lambda d: d["cpu"].update(cores=-2), r"field 'cpu.cores': -2 is not a valid count"),
    (lambda d: d["cpu"]["tvm_target"].update(kind="opencl"), r"unknown TVM target kind 'opencl'; allowed: llvm, cuda"),
    (lambda d: d["ssh"].update(port=0), r"field 'ssh.port': 0 is not a TCP port; allowed: an integer 1..65535"),
    (lambda d: d["rpc"].update(start_local="yes"), r"field 'rpc.start_local': 'yes' has the wrong type; allowed: bool"),
    (lambda d: d["ssh"].update(host="-oProxyCommand=x"), r"field 'ssh.host': '-oProxyCommand=x' is not a plain host"),
])
def test_bad_board_gives_one_clear_error(tmp_path, mutate, pattern):
    p = _write(tmp_path, mutate)
    with pytest.raises(ConfigError, match=pattern) as ei:
        load_board(str(p))
    assert str(p) in str(ei.value) and "\n" not in str(ei.value)


def test_cli_boards_lists_capacities(capsys):
    assert main(["boards"]) == 0
    out = capsys.readouterr().out
    assert "pynq-z2" in out and "53,200" in out and "xc7z020clg400-1" in out


def test_cli_unknown_board_exits_nonzero(capsys):
    assert main(["train", "--board", "nope"]) == 2
    assert "unknown board 'nope'; allowed: host, kv260, pynq-z2, zcu104" in capsys.readouterr().err


def test_bad_bits_rejected_before_any_data_is_read(tmp_path, capsys):
    p = tmp_path / "bits.yaml"
    p.write_text("layers: {fc0: {w: 3, a: 9}}\n")
    assert main(["train", "--bits", str(p), "--data-dir", str(tmp_path / "no-data-here")]) == 2
    err = capsys.readouterr().err
    assert "bits.yaml: field 'layers.fc0.a': bit-width 9 not in candidate set" in err
