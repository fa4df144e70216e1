"""The analysis engine: columns of packets in, per-connection records out.

``kernels`` hold the per-packet rules; they are plain Python over indexable
tables, compiled with numba for large inputs (see :mod:`.jit`)."""
