"""Bring your own model: a float ``torch.nn.Module`` or a Brevitas model from a user callable.

``--model path/to/file.py:build`` or ``--model package.module:build`` names a callable that
returns an ``nn.Module``; ``--weights state_dict.pt`` optionally loads float weights.

* A **float** model becomes a Brevitas model with Brevitas' own graph utilities
  (``brevitas.graph.base.ModuleToModuleByName``): every ``Conv2d``/``Linear`` becomes a
  ``QuantConv2d``/``QuantLinear`` and every ``ReLU``/``ReLU6`` a ``QuantReLU``, each with the
  bits its name has in the bit configuration; an input quantizer ``input_quant`` is added.
* A **Brevitas** model is taken as it is: its quantizers' bit-widths become the variables, and a
  new configuration re-creates each quantized layer with ``bit_width`` overridden on its own
  quantizer injector (``injector.let(bit_width=b)``), keeping its weights.

Layer names are the module paths (``features.3``, ``layer1.0.conv1``): stable across runs and
what the bit configuration and the report show. Conv/Linear layers carry weight bits ``w``;
activation modules and ``input_quant`` carry activation bits ``a``.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.util
import types
from collections.abc import Callable
from pathlib import Path

import brevitas.config
import torch
from brevitas import nn as qnn
from brevitas.graph.base import ModuleToModuleByName
from torch import nn

from bitswarm.errors import ConfigError
from bitswarm.models.bitconfig import BitConfig, LayerSpec
from bitswarm.models.quant import FLOAT, _weight_kwargs, qinput, qrelu

DATASET_SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
FLOAT_ACTS = (nn.ReLU, nn.ReLU6)
QUANT_WEIGHT = (qnn.QuantConv2d, qnn.QuantLinear)
QUANT_ACTS = (qnn.QuantReLU, qnn.QuantIdentity, qnn.QuantHardTanh)


def load_callable(spec: str) -> Callable[[], nn.Module]:
    """``file.py:fn`` or ``package.module:fn`` -> the callable."""
    target, _, fn = spec.rpartition(":")
    if not target or not fn:
        raise ConfigError("--model", "model", f"{spec!r} is not MODULE:CALLABLE",
                          "path/to/file.py:build or pkg.mod:build")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise ConfigError("--model", "model", f"file {target} does not exist", "an existing .py file")
        # compiled from the file's current text: Python's bytecode cache is keyed by size and mtime in
        # whole seconds, so an edit that keeps the size within a second would run the old code
        module = types.ModuleType(f"bitswarm_user_{path.stem}")
        module.__file__ = str(path)
        try:
            exec(compile(path.read_bytes(), str(path), "exec"), module.__dict__)  # noqa: S102 - the user's model file
        except (Exception, SystemExit) as e:  # the user's code: any error (sys.exit too), on one line, file and line
            raise _user_code_error(spec, path, "importing it", e) from e
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise ConfigError("--model", "model", f"cannot import {target} ({e})", "an importable module") from e
        except (Exception, SystemExit) as e:
            raise _user_code_error(spec, None, f"importing {target}", e) from e
    if not callable(getattr(module, fn, None)):
        raise ConfigError("--model", "model", f"{target} has no callable {fn!r}",
                          ", ".join(n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_")))
    return getattr(module, fn)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}" if text else type(e).__name__


def _user_code_error(spec: str, path: Path | None, doing: str, e: Exception) -> ConfigError:
    """``--model FILE.py:FN``: the exception the user's code raised, where (its file and line) and doing what."""
    import traceback

    where = ""
    if isinstance(e, SyntaxError) and e.filename:
        where = f" at {e.filename}:{e.lineno}"
    else:
        frames = [f for f in traceback.extract_tb(e.__traceback__)
                  if path is None or Path(f.filename).resolve() == path.resolve()]
        if frames:
            where = f" at {frames[-1].filename}:{frames[-1].lineno}"
    return ConfigError("--model", "model", f"{spec} raised {_one_line(e)}{where} while {doing}",
                       "a callable returning a torch.nn.Module")


def load_user_model(spec: str, weights: str | None = None) -> nn.Module:
    build = load_callable(spec)
    try:
        with torch.random.fork_rng():  # the same initial weights in every process (content cache keys)
            torch.manual_seed(0)
            model = build()
    except (Exception, SystemExit) as e:
        target = spec.rpartition(":")[0]
        raise _user_code_error(spec, Path(target) if target.endswith(".py") else None, "building the model", e) from e
    if not isinstance(model, nn.Module):
        raise ConfigError("--model", "model", f"{spec} returned {type(model).__name__}", "a torch.nn.Module")
    if weights:
        _load_weights(model, spec, weights)
    return model.eval()


def _load_weights(model: nn.Module, spec: str, weights: str) -> None:
    """``--weights``: a float state_dict (optionally under ``state_dict``) of the model's architecture."""
    allowed = "a state_dict (torch.save(model.state_dict(), path)) of the same architecture"
    if not Path(weights).is_file():
        raise ConfigError(str(weights), "weights", "no such file", allowed)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:  # not a torch file, truncated, or pickled objects weights_only refuses
        raise ConfigError(str(weights), "weights", f"not a torch state_dict ({_one_line(e)})", allowed) from e
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(str(weights), "weights", f"holds a {type(state).__name__}, not a state_dict of tensors",
                          allowed)
    try:
        model.load_state_dict(state)
    except Exception as e:
        raise ConfigError(str(weights), "state_dict", f"cannot load into {spec} ({_one_line(e)})", allowed) from e


def is_brevitas(model: nn.Module) -> bool:
    return any(isinstance(m, QUANT_WEIGHT + QUANT_ACTS) for m in model.modules())


def float_specs(model: nn.Module) -> list[LayerSpec]:
    specs = [LayerSpec("input_quant", "input", False, True)]
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            kind = "linear" if isinstance(m, nn.Linear) else ("dwconv" if m.groups > 1 else "conv")
            specs.append(LayerSpec(name, kind, True, False))
        elif isinstance(m, FLOAT_ACTS):
            specs.append(LayerSpec(name, "act", False, True))
    return specs


def brevitas_specs(model: nn.Module) -> list[LayerSpec]:
    specs = []
    for name, m in model.named_modules():
        if isinstance(m, QUANT_WEIGHT) and m.weight_quant.is_quant_enabled:
            specs.append(LayerSpec(name, "linear" if isinstance(m, qnn.QuantLinear) else "conv", True, False))
        elif isinstance(m, QUANT_ACTS) and m.act_quant.is_quant_enabled:
            specs.append(LayerSpec(name, "act", False, True))
    return specs


def _with_input_quant(model: nn.Module, quant: nn.Module) -> nn.Module:
    """Add ``input_quant`` as a submodule applied before the model's own forward."""
    model.add_module("input_quant", quant)
    inner = type(model).forward
    model.forward = types.MethodType(lambda self, x, *a, **k: inner(self, self.input_quant(x), *a, **k), model)
    return model


@contextlib.contextmanager
def _quantizer_params_start_fresh():
    """Float layers have no quantizer parameters: let Brevitas initialise them (its own switch)."""
    old, brevitas.config.IGNORE_MISSING_KEYS = brevitas.config.IGNORE_MISSING_KEYS, True
    try:
        yield
    finally:
        brevitas.config.IGNORE_MISSING_KEYS = old


def quantize_float(model: nn.Module, bits: BitConfig) -> nn.Module:
    """A Brevitas copy of a float ``model`` with each layer's bits from ``bits``."""
    q = copy.deepcopy(model)
    with _quantizer_params_start_fresh():
        _replace_layers(q, bits)
    return _with_input_quant(q, qinput(bits["input_quant"].a))


def replace_module_by_name(model: nn.Module, name: str, new: nn.Module) -> None:
    """Brevitas' own instance replacement at a module path."""
    from brevitas.graph.base import ModuleInstanceToModuleInstance

    ModuleInstanceToModuleInstance(model.get_submodule(name), new).apply(model)


def _replace_layers(q: nn.Module, bits: BitConfig) -> None:
    for name, b in bits.layers:
        if name == "input_quant":
            continue
        m = q.get_submodule(name)
        if isinstance(m, nn.Conv2d):
            ModuleToModuleByName(name, qnn.QuantConv2d, **_weight_kwargs(b.w)).apply(q)
        elif isinstance(m, nn.Linear):
            ModuleToModuleByName(name, qnn.QuantLinear, **_weight_kwargs(b.w)).apply(q)
        elif isinstance(m, FLOAT_ACTS) and b.a not in (None, FLOAT):
            replace_module_by_name(q, name, qrelu(b.a))


def requantize_brevitas(model: nn.Module, bits: BitConfig) -> nn.Module:
    """A copy of a Brevitas ``model`` whose quantizers take the bit-widths in ``bits``."""
    q = copy.deepcopy(model)
    with _quantizer_params_start_fresh():
        _requantize_layers(q, bits)
    return q


def _requantize_layers(q: nn.Module, bits: BitConfig) -> None:
    for name, b in bits.layers:
        m = q.get_submodule(name)
        if isinstance(m, QUANT_WEIGHT):
            inj = None if b.w == FLOAT else m.weight_quant.quant_injector.let(bit_width=b.w)
            ModuleToModuleByName(name, type(m), weight_quant=inj, return_quant_tensor=m.return_quant_tensor).apply(q)
        else:
            inj = None if b.a == FLOAT else m.act_quant.quant_injector.let(bit_width=b.a)
            ModuleToModuleByName(name, type(m), act_quant=inj, return_quant_tensor=m.return_quant_tensor).apply(q)


def current_bits(model: nn.Module, specs: list[LayerSpec]) -> BitConfig:
    """The bit-widths a Brevitas model was built with."""
    out = {}
    for s in specs:
        m = model.get_submodule(s.name)
        bw = m.weight_quant.bit_width() if s.has_weight else m.act_quant.bit_width()
        out[s.name] = {"w": int(bw) if s.has_weight else None, "a": None if s.has_weight else int(bw)}
    return BitConfig.from_dict({"layers": out})


def custom_entry(spec: str, weights: str | None = None, dataset: str = "cifar10",
                 input_shape: tuple[int, ...] | None = None):
    """A :class:`ZooEntry` for the user's model (same interface as the zoo)."""
    from bitswarm.models.zoo import ZooEntry

    base = load_user_model(spec, weights)
    shape = tuple(input_shape or DATASET_SHAPES.get(dataset, (3, 32, 32)))
    if is_brevitas(base):
        specs = brevitas_specs(base)
        orig = current_bits(base, specs)  # its own bits are the default configuration
        build = lambda bits: requantize_brevitas(base, bits)
        desc = f"user Brevitas model {spec} ({orig.short()})"
    else:
        specs = float_specs(base)
        build = lambda bits: quantize_float(base, bits)
        desc = f"user float model {spec}"
    if len(specs) <= 1:
        raise ConfigError("--model", "model", f"{spec} has no quantizable layers",
                          "models with Conv2d/Linear (float) or Brevitas quant layers")
    defaults = orig if is_brevitas(base) else None
    return ZooEntry(spec, desc, dataset, shape, build, lambda: list(specs), (8, 8, 8), defaults)
