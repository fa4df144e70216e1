"""The pipeline: read -> decode -> flows -> records. One function, ``analyze``."""

from __future__ import annotations

import gc
import os
import queue
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ._decode import LINKTYPE_NAMES, Decoder, Defect
from ._model import Capture, Selection, TcpConnection
from ._read import MAX_INFLATION, CaptureReader
from .analysis import jit
from .analysis.engine import CHUNK_PACKETS, Engine
from .analysis.records import RecordMaker, Retired
from .errors import CaptureFormatError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from .analysis import pcapfile

PROGRESS_EVERY = 1 << 16  # packets between two progress callbacks

Progress = Callable[[int, int], None]  # (bytes consumed, file size); the last call has both equal


def analyze(path: str | os.PathLike[str], *, progress: Progress | None = None,
            workers: int | None = None, max_inflation: int = MAX_INFLATION,
            on_connection: Callable[[Any], None] | None = None,
            render: Callable[[TcpConnection], Any] | None = None) -> Capture:
    """Read a pcap/pcapng file (optionally gzip-compressed; ``"-"`` for standard
    input) and rebuild its TCP connections and UDP flows.

    ``workers``: processes to use. By default two (on two cores or more) for a capture
    file of PIPED_MIN_BYTES or more: the engine reads, decodes and follows the connections
    in a process of its own while this one makes their records (see :func:`_analyze_piped`);
    otherwise one. 2 or more: two, whatever the capture (but standard input, read here);
    1: this process alone. The result does not depend on it.
    ``max_inflation``: how far a gzip file may inflate (see
    :data:`~sockinspect._read.MAX_INFLATION`; 0 for no limit).
    ``on_connection``: called with each TCP connection instead of keeping it in the
    returned Capture, as soon as the connection is over (it ended and went quiet, see
    :mod:`sockinspect.analysis.tcp`; or the capture ended), so memory follows the
    connections open at once rather than the file.
    ``render``: with ``on_connection``, which then gets ``render(connection)`` instead
    (a line of JSON, say): at the capture's end, when the connections that remain all
    retire at once, the engine's process renders half of them. So it must depend on the
    connection alone (it may run in another process, on a copy of everything), and what
    it returns must pickle (text, numbers, tuples: it crosses a pipe).

    Raises :class:`~sockinspect.errors.CaptureFormatError` only when the file
    cannot be read at all; anything odd inside it becomes a warning or a defect
    count on the returned :class:`Capture`.
    """
    reader = CaptureReader(path, max_inflation)
    if workers is None:
        workers = 2 if (os.cpu_count() or 1) > 1 and reader.size >= PIPED_MIN_BYTES else 1
    try:
        with gc_paused():
            if workers > 1 and reader.forkable:
                return _analyze_piped(path, reader, progress, on_connection,
                                      render if on_connection is not None else None)
            return _analyze(path, reader, progress, on_connection=_rendered(on_connection, render))
    finally:
        reader.close()  # the engine's process has its own copy


def _rendered(on_connection: Callable[[Any], None] | None, render: Callable[[TcpConnection], Any] | None
              ) -> Callable[[TcpConnection], None] | None:
    """``on_connection`` of each connection as ``render`` renders it (without render: as it is)."""
    if on_connection is None or render is None:
        return on_connection
    return lambda conn: on_connection(render(conn))


PIPED_MIN_BYTES = 16 << 20  # below, starting a second process costs more than it saves


@contextmanager
def gc_paused() -> Iterator[None]:
    """The pipeline (and a report of its result) makes millions of short-lived
    tuples and keeps many long-lived ones, but no reference cycles: the cyclic
    collector would only rescan the live ones again and again (about 8% of the
    run, a third of building a large JSON report). Paused here, restored after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _analyze_piped(path: str | os.PathLike[str], reader: CaptureReader, progress: Progress | None,
                   on_connection: Callable[[Any], None] | None,
                   render: Callable[[TcpConnection], Any] | None = None) -> Capture:
    """The engine in a process of its own, forked (it reads the file this one opened), which
    hands over the rows of the connections as they retire; this process makes their
    records (about half of the work, in Python) meanwhile, in the same order as in one
    process. Only the engine's process loads numba. Stopped on any error or Ctrl-C here.
    With ``render`` (see analyze), the engine's process renders every other batch handed
    over at the capture's end, while this one makes the records of the others."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    _widen(receive.fileno())
    engine = context.Process(target=_engine_process, daemon=True,
                             args=(path, reader, receive, send, os.getpid(), progress is not None, render))
    engine.start()
    send.close()
    kept: list[TcpConnection] = []
    maker = RecordMaker(_rendered(on_connection, render) or kept.append)
    pump = _Pump(receive)
    try:
        while True:
            kind, value = pump.get()
            if kind == "ended":
                engine.join()
                raise CaptureFormatError(f"{os.fspath(path)}: the engine's process ended without an answer "
                                         f"(exit code {engine.exitcode})")
            if kind == "retired":
                maker.add(value)
            elif kind == "rendered":
                rendered, names = value
                maker.names += names
                for item in rendered:
                    on_connection(item)
            elif kind == "progress":
                if progress is not None:
                    progress(*value)
            elif kind == "error":
                raise value
            else:
                cap = value
                break
    finally:
        try:
            if engine.is_alive():
                engine.terminate()
            engine.join()
        finally:  # even on a second Ctrl-C
            pump.stop()  # the pipe's other end is closed now (or stopping says so): it ends
            receive.close()
    return replace(cap, tcp=Selection(sorted(kept, key=lambda c: c.index)))


class _Pump:
    """The engine's messages, received as they come by a thread of their own, one waiting
    at most: the engine does not wait, the pipe full, while this process makes the records
    of the batch before (a quarter of its time, on the 10M-packet benchmark)."""

    def __init__(self, receive: Connection) -> None:
        self._receive = receive
        self._messages: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=1)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sockinspect-pump", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        kind = None
        while kind not in ("done", "error", "ended"):
            try:
                kind, value = self._receive.recv()
            except EOFError:
                kind, value = "ended", None
            except BaseException as exc:  # noqa: BLE001 - a message that cannot be read: said there
                kind, value = "error", exc
            while not self._stopping.is_set():
                try:
                    self._messages.put((kind, value), timeout=0.1)
                    break
                except queue.Full:
                    pass
            if self._stopping.is_set():
                return

    def get(self) -> tuple[str, object]:
        return self._messages.get()

    def stop(self) -> None:
        """Once the engine's process is gone (its end of the pipe closed)."""
        self._stopping.set()
        self._thread.join()


PIPE_BYTES = 1 << 20  # /proc/sys/fs/pipe-max-size's default: what any user may ask for


def _widen(pipe: int) -> None:
    """Give the pipe PIPE_BYTES of buffer, not 64 KiB, through which a batch of rows (MiBs)
    takes hundreds of turns of writer and reader. Where Linux refuses, it stays as it is."""
    import fcntl

    with suppress(OSError, AttributeError):  # AttributeError: not Linux
        fcntl.fcntl(pipe, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _engine_process(path: str | os.PathLike[str], reader: CaptureReader, receive: Connection, send: Connection,
                    parent: int, progress: bool, render: Callable[[TcpConnection], Any] | None) -> None:
    """The engine's side of :func:`_analyze_piped`: ("retired", batch) as connections
    retire, or ("rendered", (what render made of them, the batch's address names)),
    ("progress", (position, size)), then ("done", the Capture without its TCP
    connections) or ("error", the exception). It ends with the other process, however
    that ends (a SIGKILL too), and leaves Ctrl-C to it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # first: the import below takes a while
    # numpy (which numba loads) starts a BLAS thread per core beyond the first, which nothing
    # here uses; perf found it spinning (3% of the samples) beside the kernels.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from ._run import die_with_parent

    receive.close()  # only the other process reads: the pipe breaks when it is gone
    die_with_parent(signal.SIGKILL, parent)

    def report(position: int, size: int) -> None:
        send.send(("progress", (position, size)))

    rendered: list = []
    here = RecordMaker(lambda conn: rendered.append(render(conn)))  # names: all of them, as the other's maker
    turn = 0

    def hand_over(batch: Retired) -> None:
        nonlocal turn, rendered
        turn += batch.at_end
        if render is not None:
            if batch.at_end and turn % 2 == 0:
                here.add(batch)
                send.send(("rendered", (rendered, batch.names)))
                rendered = []
                return
            here.names += batch.names
        send.send(("retired", batch))

    try:
        with gc_paused():
            cap = _analyze(path, reader, report if progress else None, on_retired=hand_over)
        send.send(("done", cap))
    except BaseException as exc:  # noqa: BLE001 - every failure goes to the other process
        send.send(("error", _portable(exc)))
    finally:
        send.close()


def _portable(exc: BaseException) -> BaseException:
    """``exc`` as it can cross the pipe, with this process's traceback as a note: itself
    when it pickles and comes back as it was, else a RuntimeError that says what it was."""
    import pickle
    import traceback

    where = "in the engine's process:\n" + "".join(traceback.format_exception(exc)).rstrip()
    try:
        exc.add_note(where)
        if type(pickle.loads(pickle.dumps(exc))) is type(exc):
            return exc
    except Exception:  # noqa: BLE001, S110 - any failure to pickle it: said below instead
        pass
    plain = RuntimeError(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")
    plain.add_note(where)
    return plain


def _analyze(path: str | os.PathLike[str], reader: CaptureReader, progress: Progress | None,
             compiled: bool | None = None,
             on_connection: Callable[[TcpConnection], None] | None = None,
             on_retired: Callable[[Retired], None] | None = None, threads: bool | None = None) -> Capture:
    """``compiled``: run the engine compiled (default: when the capture is large, see .analysis.jit).
    ``on_retired``: see Engine. ``threads``: a compiled pcap file's connections shared out
    between two engines in two threads (see .analysis.threads; default: on two cores or more)."""
    decoder = Decoder()
    compiled = jit.want_compiled(reader.size) if compiled is None else compiled
    if threads is None:
        threads = (os.cpu_count() or 1) > 1
    if compiled and reader.is_pcap and threads:
        from .analysis.threads import ThreadedEngine  # numpy: imported only for large captures

        engine = ThreadedEngine(on_connection=on_connection, on_retired=on_retired)
    else:
        engine = Engine(compiled=compiled, on_connection=on_connection, on_retired=on_retired)
    tally = _Tally()
    with _Interrupt() as interrupt:
        if engine.compiled and reader.is_pcap:  # whole blocks of records, by the kernels
            from .analysis.pcapfile import pcap_blocks  # numpy: imported only for large captures

            for block in pcap_blocks(reader, decoder, engine.decoding):
                engine.feed_columns(block.columns)
                tally.block(block)
                interrupt.check()
                if progress is not None:
                    progress(reader.position(), reader.size)
        else:
            _frames(reader, decoder, engine, tally, progress, interrupt)
    if progress is not None:
        progress(reader.size, reader.size)  # reading done; the connections are put together next
    tcp, udp = engine.finish()
    defects, first_malformed = tally.defects, tally.first_malformed
    warnings = list(reader.warnings)
    for kind, (first, detail) in first_malformed.items():
        more = defects[kind] - 1
        warnings.append(f"packet {first}: {detail}" + (f" (and {more} more such packets)" if more else ""))
    if decoder.fragments.pending:
        warnings.append(f"{decoder.fragments.pending} IP datagrams were never completely reassembled")
    return Capture(
        file=os.fspath(path),
        format=reader.format,
        linktypes=tuple(dict.fromkeys(LINKTYPE_NAMES.get(t, str(t)) for t in reader.linktypes)),
        packets=tally.packets,
        first_ts_ns=tally.first_ts,
        last_ts_ns=tally.last_ts,
        warnings=tuple(warnings),
        defects=dict(sorted(defects.items())),
        tcp=tcp,
        udp=udp,
    )


class _Tally:
    """What the capture holds besides connections: frames, their time span, defects."""

    def __init__(self) -> None:
        self.packets = 0
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self.defects: Counter[str] = Counter()
        self.first_malformed: dict[str, tuple[int, str]] = {}

    def time(self, first: int | None, last: int | None) -> None:
        if first is not None and (self.first_ts is None or first < self.first_ts):
            self.first_ts = first
        if last is not None and (self.last_ts is None or last > self.last_ts):
            self.last_ts = last

    def defect(self, number: int, defect: Defect) -> None:
        self.defects[defect.kind] += 1
        if defect.malformed and defect.kind not in self.first_malformed:
            self.first_malformed[defect.kind] = (number, defect.detail)

    def block(self, block: pcapfile.Block) -> None:
        self.packets += block.frames
        self.time(block.first_ts, block.last_ts)
        for number, defect in block.defects:
            self.defect(number, defect)


class _Interrupt:
    """Ctrl-C during the reading, raised at the next block or progress point even when C
    code it arrived in cleared the KeyboardInterrupt (numba typing a kernel's arguments
    does): the handler also leaves a flag. Only in the main thread, over Python's own handler."""

    def __init__(self) -> None:
        self.pending = False
        self._previous = None

    def __enter__(self) -> _Interrupt:
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.pending = True
        raise KeyboardInterrupt

    def check(self) -> None:
        if self.pending:
            raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _frames(reader: CaptureReader, decoder: Decoder, engine: Engine, tally: _Tally,
            progress: Progress | None, interrupt: _Interrupt) -> None:
    """Frame by frame, through the general decoder (pcapng, compressed input, small captures)."""
    decode = decoder.decode
    chunk: list = []
    feed = chunk.append
    first_ts = last_ts = None
    number = 0
    for number, frame in enumerate(reader, 1):  # noqa: B007 - number is used after the loop
        ts = frame[0]
        if ts is not None:
            if first_ts is None or ts < first_ts:
                first_ts = ts
            if last_ts is None or ts > last_ts:
                last_ts = ts
        pkt = decode(frame, number)
        if type(pkt) is Defect:
            tally.defect(number, pkt)
        else:
            feed(pkt)
            if len(chunk) == CHUNK_PACKETS:
                engine.feed_chunk(chunk)
                chunk.clear()
        if not number % PROGRESS_EVERY:
            interrupt.check()
            if progress is not None:
                progress(reader.position(), reader.size)
    engine.feed_chunk(chunk)
    tally.packets = number
    tally.time(first_ts, last_ts)
