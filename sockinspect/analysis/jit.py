"""Compile the engine's kernels with numba, once a capture is large enough to pay for it.

A kernel is a plain Python function over integers and indexable tables, written
in the subset numba compiles (no objects, no exceptions, no allocation). It is
compiled without numba's runtime (NRT), which would count references to every row
taken from a table, an atomic instruction each way: that was half the kernels'
time. So a kernel returns numbers, never a row of a table. It runs as written for
small captures, on Python lists and ints: no import of numba (0.6 s and 90 MiB),
no compile. For a large capture :func:`compile_kernels` replaces every
kernel, in every module that refers to it, by its numba dispatcher; the same source
then runs on numpy arrays. The two modes are one engine, and the tests run both.

Compiling takes a while, so it is done once, ahead of use: ``python -m
sockinspect.analysis`` (the project's set-up runs it) compiles the kernels into
numba's on-disk cache and marks the cache ready. Analysis compiles only when it is
ready: a student never waits for a compiler; without it, large captures run as Python.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

F = TypeVar("F", bound=Callable)

_KERNELS: list[tuple[Callable, Callable]] = []  # (the kernel, what numba compiles for it)
_compiled = False
COMPILE_MIN_BYTES = 16 << 20  # smaller captures run faster as Python than loading numba takes
READY_MARK = "ready"
DISABLE_VAR = "SOCKINSPECT_NO_JIT"  # set to 1: never compile (the kernels run as Python)


def kernel(fn: F, compiled_from: Callable | None = None) -> F:
    """Register ``fn`` as a kernel: compiled with the others by :func:`compile_kernels`
    (from ``compiled_from`` instead, where Python has a faster way to the same kind of answer)."""
    _KERNELS.append((fn, compiled_from or fn))
    return fn


def available() -> bool:
    """Whether numba can be used (installed, and not disabled by SOCKINSPECT_NO_JIT)."""
    if os.environ.get(DISABLE_VAR, "") not in ("", "0"):
        return False
    return importlib.util.find_spec("numba") is not None


def compiled() -> bool:
    return _compiled


def want_compiled(capture_bytes: int) -> bool:
    """Run compiled for a capture of this size? Only from a ready cache (once compiled, always)."""
    return _compiled or (capture_bytes >= COMPILE_MIN_BYTES and available() and cache_ready())


def cache_ready() -> bool:
    """Whether :func:`warm_up` compiled these kernels into the cache."""
    return (_cache_dir() / READY_MARK).exists()


def compile_kernels() -> None:
    """Replace every registered kernel by its numba dispatcher, wherever a module of
    this package holds it. Idempotent; the machine code is cached under
    ``$XDG_CACHE_HOME/sockinspect/numba-<hash of the kernels' sources>``."""
    global _compiled
    if _compiled:
        return
    import numba

    numba.config.CACHE_DIR = str(_cache_dir())
    swap = {id(fn): (fn, numba.njit(cache=True, nogil=True, _nrt=False)(source)) for fn, source in _KERNELS}
    for name, module in list(sys.modules.items()):
        if name == "sockinspect" or name.startswith("sockinspect."):
            for attr, value in list(vars(module).items()):
                fn, dispatcher = swap.get(id(value), (None, None))
                if fn is value:
                    setattr(module, attr, dispatcher)
    _compiled = True


def warm_up() -> Path:
    """Compile the kernels into the cache and mark it ready; returns the cache's folder.
    numba compiles a kernel for the types of its arguments, so this runs what a real
    run does: a small pcap file through the file kernels (and its packets through
    ``Engine.feed``), with data, ACK delays, a stall, a reply, a close and UDP."""
    import tempfile

    from .._analyze import _analyze
    from .._decode import Decoder, Packet
    from .._read import CaptureReader
    from . import histograms, keys
    from .engine import Engine
    from .sample import sample_pcap
    from .tables import HIST_WIDTH, new_table

    folder = _cache_dir()
    folder.mkdir(parents=True, exist_ok=True)  # before 30 s of compiling: fails at once when it cannot
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "sample.pcap"
        path.write_bytes(sample_pcap())
        _analyze(path, CaptureReader(path), None, compiled=True)
        decoder = Decoder()
        engine = Engine(compiled=True)
        engine.feed(p for n, f in enumerate(CaptureReader(path), 1) if type(p := decoder.decode(f, n)) is Packet)
        engine.finish()
        histograms.rehash(engine.HT, new_table(2 * len(engine.HT), HIST_WIDTH, True), engine.G)  # the tables doubling
        keys.grown(engine.tcp_keys, True)
    (folder / READY_MARK).write_text("compiled by python -m sockinspect.analysis\n")
    return folder


def cache_sources() -> list[Path]:
    """The files whose content the compiled kernels depend on: their own modules and
    every module whose constants they read (numba bakes those in)."""
    from .. import _delays, _linux
    from . import engine  # noqa: F401 - imports (registers) every kernel

    kernels = {Path(fn.__code__.co_filename) for fn, _ in _KERNELS}
    return sorted(kernels | set(Path(__file__).parent.glob("*.py")) | {Path(_linux.__file__), Path(_delays.__file__)})


def _cache_dir() -> Path:
    """One cache per numba version, per place the package is installed at (numba keys its
    cache by the source's path) and per content of the sources: numba's own cache does not
    notice that a kernel another one calls, or a constant it reads, has changed."""
    import hashlib  # with importlib.metadata (20 ms): not for the small captures that never ask
    import importlib.metadata

    digest = hashlib.sha256(importlib.metadata.version("numba").encode())
    for path in cache_sources():
        digest.update(str(path).encode() + b"\0" + path.read_bytes())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "sockinspect" / f"numba-{digest.hexdigest()[:16]}"

