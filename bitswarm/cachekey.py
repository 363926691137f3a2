"""Cache keys computed from content: what determines a result, never a model's name or path.

``model_digest`` hashes a network's structure (the module tree with every hyper-parameter and
quantizer, as ``repr`` shows it), the shapes and values of its parameters and buffers, and the
source code of every module class that is not torch's or Brevitas' own (so an edit to a model's
``forward`` changes the key even when its layers stay the same). ``entry_digest`` is that of a
zoo entry built at its default bits under a fixed seed: its structure, its initial weights (a
user's ``--weights`` included) and its code. Every cache (float and QAT checkpoints, FINN and
TVM estimates, the fitness memo, the search journal's run signature) keys by these.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

LIBRARY_PREFIXES = ("torch.", "brevitas.", "builtins")


def digest(*parts, n: int = 20) -> str:
    """Short sha256 of JSON-serialisable ``parts`` (anything else by ``str``)."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:n]


def state_digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        v = state[k]
        h.update(k.encode())
        if isinstance(v, torch.Tensor):
            v = v.detach().cpu().contiguous()
            h.update(str((tuple(v.shape), v.dtype)).encode())
            h.update(v.numpy().tobytes() if v.dtype != torch.bfloat16 else v.float().numpy().tobytes())
        else:
            h.update(repr(v).encode())
    return h.hexdigest()[:20]


@lru_cache(maxsize=256)
def _class_source(cls: type) -> str:
    """The text of the file that defines ``cls``'s methods (TVM replaces ``inspect.getsource`` with
    a version that fails for modules outside ``sys.modules``, such as a user's model file)."""
    for fn in (cls.__dict__.get("forward"), cls.__dict__.get("__init__")):
        code = getattr(fn, "__code__", None)
        if code is not None and Path(code.co_filename).is_file():
            return f"{cls.__qualname__}:" + Path(code.co_filename).read_text(errors="replace")
    try:
        return inspect.getsource(cls)
    except Exception:  # defined interactively: its name and module stand for it
        return f"{cls.__module__}.{cls.__qualname__}"


def code_digest(model: nn.Module) -> str:
    """The source of every module class in ``model`` that is not a library's own."""
    classes = sorted({type(m) for m in model.modules() if not type(m).__module__.startswith(LIBRARY_PREFIXES)},
                     key=lambda c: f"{c.__module__}.{c.__qualname__}")
    return digest([_class_source(c) for c in classes])


def model_digest(model: nn.Module, weights: bool = True) -> str:
    """Structure + code (+ parameter and buffer values with ``weights``)."""
    parts = [repr(model), code_digest(model)]
    if weights:
        parts.append(state_digest(model.state_dict()))
    return digest(parts)


_ENTRY_DIGESTS: dict[int, tuple[object, str]] = {}


def entry_digest(entry) -> str:
    """A zoo entry (or a user model) by content: built at its default bits under seed 0."""
    hit = _ENTRY_DIGESTS.get(id(entry))
    if hit is not None and hit[0] is entry:
        return hit[1]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = entry.build(entry.default_bits())
        parts = [entry.dataset, list(entry.input_shape), model_digest(model)]
        if ":" in entry.name:  # a user model: also what it computes, so an edit in a helper it calls counts
            parts.append(probe_digest(model, entry.input_shape))
    value = digest(parts)
    _ENTRY_DIGESTS[id(entry)] = (entry, value)
    return value


def probe_digest(model: nn.Module, input_shape) -> str:
    """The model's outputs (rounded to 1e-4) on a fixed seeded input: a fingerprint of the function it computes,
    wherever its code lives (the file of its classes, a helper module it calls, a library it patches)."""
    x = torch.rand(2, *input_shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        out = model.eval()(x)
    return digest(repr(torch.round(out.float() * 1e4).to(torch.int64).flatten().tolist()))


def tool_versions(*dists: str) -> dict[str, str]:
    """Installed versions of the tools whose output a cache holds."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for d in dists:
        try:
            out[d] = version(d)
        except PackageNotFoundError:
            out[d] = "absent"
    return out


def path_digest(path: Path) -> str:
    """A file by its bytes; a folder by the names, sizes and modification times of every file under it."""
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            st = f.stat()
            h.update(f"{f.relative_to(path)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    else:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:20]
