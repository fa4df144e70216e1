"""``python -m sockinspect.analysis``: compile the engine's kernels into numba's cache."""

import sys

from .jit import DISABLE_VAR, available, warm_up

if not available():
    sys.exit(f"numba is not installed (or {DISABLE_VAR} is set): the engine runs as Python")
try:
    print(f"sockinspect: engine compiled into {warm_up()}")
except OSError as exc:
    print(f"sockinspect: cannot write the engine's cache: {exc.filename}: {exc.strerror}", file=sys.stderr)
    sys.exit(2)
