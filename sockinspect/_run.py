"""Edge: run a lab scenario's programs on a topology while capturing their traffic.

Every program runs as a subprocess under ``python -m sockinspect._accounting``,
so what it sent is known and can be checked against the capture: a capture
that dropped packets, or misses bytes the programs sent, is reported loudly.

A run never leaves anything behind on the machine:

- every program runs in a process group of its own, with a parent-death
  signal, so none outlives the runner, even one killed with SIGKILL
  (:func:`spawn`, :func:`stop_group`);
- the signals that would end the runner (SIGTERM, SIGHUP, SIGINT, SIGQUIT...)
  raise :class:`Terminated` in the main thread instead, so every context
  manager on the way out cleans up (:func:`cleanup_on_signals`);
- what a run makes outside its process (network namespaces, work folders) is
  written down with its owner before it is made (:class:`Lease`), so what a
  SIGKILL leaves is removed by the next run or ``sockinspect cleanup`` once
  the owner is gone (:func:`clean_leftovers`).
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from ._analyze import analyze
from ._capture import LiveCapture
from ._linux import FAULT_SIGNALS, PR_SET_PDEATHSIG, PROC_STAT_START, PROC_STAT_STATE, SIGNALS_THAT_DO_NOT_END
from ._model import Capture
from ._syscalls import STRACE_ARGS
from ._topology import (
    NETNS_PREFIX,
    LabLoopback,
    Loopback,
    NetnsPair,
    delete_netns,
    netns_exists,
    netns_names,
    netns_pids,
)
from .errors import SockinspectError

READY_TIMEOUT_S = 10
CLIENT_TIMEOUT_S = 120


class ScenarioError(SockinspectError):
    """A scenario's program failed or did not do what the lab says."""


@dataclass
class Run:
    """One captured run: the capture, its analysis, and what the programs reported."""

    label: str
    capture: Path
    analysis: Capture | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)  # accounting records of every program
    dropped: int = 0
    problems: list[str] = field(default_factory=list)  # capture vs programs mismatches
    outputs: list[str] = field(default_factory=list)  # the clients' stdout, in order
    facts: dict[str, Any] = field(default_factory=dict)
    syscalls: Path | None = None  # the programs' socket calls (strace), beside the capture
    traces: list[Path] = field(default_factory=list)  # its programs' strace logs, while it runs


class Runner:
    """Starts servers and clients on ``topology`` and captures them into ``outdir``.

    Use as a context manager: on the way out, any program still running is killed
    with its whole process group and the work folder is removed. With a ``lease``,
    the work folder is recorded as this run's before it is made."""

    def __init__(self, topology: Loopback | NetnsPair, outdir: Path, progress: bool = False,
                 lease: Lease | None = None, syscalls: bool = False) -> None:
        """``syscalls``: trace every program's socket calls (see :attr:`Run.syscalls`)."""
        self.topology = topology
        self.syscalls = syscalls
        self.outdir = outdir.resolve()  # the programs run with the work folder as their cwd
        self.progress = progress
        self.outdir.mkdir(parents=True, exist_ok=True)
        # A folder of its own (never one the user had): logs and accounting records.
        self.workdir = (lease.make_folder(self.outdir, WORK_PREFIX) if lease is not None
                        else Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=self.outdir)))
        self._seq = 0
        self._children: list[subprocess.Popen] = []
        self.server_log = self.workdir / "server.log"

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill what still runs (each program's whole process group), remove the work folder."""
        for proc in self._children:
            stop_group(proc, first=None)
        self._children.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def say(self, message: str) -> None:
        if self.progress:
            print(f"sockinspect: {message}", file=sys.stderr, flush=True)

    def spawn(self, argv: list[str], **popen: Any) -> subprocess.Popen:
        """Start a program of this run (see :func:`spawn`), in the work folder, with :func:`child_env`."""
        proc = spawn(argv, env=child_env(), cwd=self.workdir, **popen)
        self._children.append(proc)
        return proc

    def _accounted(self, module: str, args: list[str]) -> tuple[list[str], Path]:
        self._seq += 1
        record = self.workdir / f"sent-{self._seq}.jsonl"
        record.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "sockinspect._accounting", str(record), "-m", module, *args]
        return argv, record

    @contextmanager
    def server(self, module: str, args: list[str], run: Run, trace: Path | None = None
               ) -> Iterator[tuple[int, subprocess.Popen]]:
        """Start a server with ``--host ADDR --port 0``; yield (its port, the process).
        ``trace``: record its socket system calls there with strace."""
        argv, record = self._accounted(module, [*args, "--host", self.topology.server_addr, "--port", "0"])
        argv, trace = self._traced(argv, trace, run)
        log = self.server_log = self.workdir / f"server-{self._seq}.log"
        with open(log, "w") as err:
            proc = self.spawn(self.topology.server_cmd(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=err, text=True)
        try:
            port = _read_port(proc, module, log)
            yield port, proc
        finally:
            if trace is not None:  # strace keeps SIGINT for itself: signal the traced program
                _signal_tracee(trace)
            _stop(proc)
            run.sent.extend(_records(record))

    def client(self, module: str, args: list[str], run: Run, stdin: str | None = None,
               check: bool = True, trace: Path | None = None) -> subprocess.CompletedProcess[str]:
        argv, record = self._accounted(module, args)
        argv, _trace = self._traced(argv, trace, run)
        proc = self.spawn(self.topology.client_cmd(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE)
        try:
            out, err = proc.communicate(stdin, timeout=CLIENT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            stop_group(proc, first=None)
            raise ScenarioError(f"{module} did not finish within {CLIENT_TIMEOUT_S} s") from None
        except BaseException:
            stop_group(proc, first=None)
            raise
        done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        run.sent.extend(_records(record))
        run.outputs.append(done.stdout)
        if check and done.returncode:
            raise ScenarioError(f"{module} {' '.join(args)} exited {done.returncode}: "
                                f"{done.stderr.strip().splitlines()[-1:] or ''}")
        return done

    @contextmanager
    def capture(self, run: Run, ports: list[int]) -> Iterator[None]:
        live = LiveCapture(run.capture, ports=ports, interface=self.topology.capture_interface,
                           in_netns=self.topology.in_server_netns)
        with live:
            yield
        run.dropped = live.stats.dropped if live.stats else 0

    def wait_for_log(self, text: str, timeout: float = READY_TIMEOUT_S) -> None:
        """Wait until the last server started has logged ``text`` (e.g. a client joined)."""
        deadline = time.monotonic() + timeout
        while text not in self.server_log.read_text():
            if time.monotonic() > deadline:
                raise ScenarioError(f"the server never logged {text!r} within {timeout} s")
            time.sleep(0.02)

    def _traced(self, argv: list[str], trace: Path | None, run: Run) -> tuple[list[str], Path | None]:
        """``argv`` under strace, and where it writes: ``trace`` for the scenario's own use
        (its setup calls), with every socket call timed when the runner traces them all."""
        if not self.syscalls:
            if trace is None:
                return argv, None
            return ["strace", "-f", "-qq", "-e", STRACE_CALLS, "-o", str(trace), *argv], trace
        trace = trace or self.workdir / f"strace-{self._seq}.txt"
        run.traces.append(trace)
        return ["strace", *STRACE_ARGS, "-o", str(trace), *argv], trace

    def new_run(self, label: str, name: str) -> Run:
        return Run(label=label, capture=self.outdir / name)

    def finish(self, run: Run) -> Run:
        """Analyze the capture and cross-check it with what the programs sent."""
        run.analysis = analyze(run.capture)
        run.problems = cross_check(run.analysis, run.sent, run.dropped)
        if run.traces:
            run.syscalls = run.capture.with_suffix(".strace")
            with open(run.syscalls, "w") as out:
                for trace in run.traces:
                    if trace.exists():
                        out.write(trace.read_text(errors="replace"))
        return run


def cross_check(cap: Capture, sent: list[dict[str, Any]], dropped: int) -> list[str]:
    """Compare the capture with the programs' own counts; one line per mismatch."""
    problems = [f"the kernel dropped {dropped} packets during the capture"] if dropped else []
    by_ends = {}
    for conn in cap.tcp:
        c, s = (conn.client.addr, conn.client.port), (conn.server.addr, conn.server.port)
        by_ends[(c, s)] = conn.c2s
        by_ends[(s, c)] = conn.s2c
    for rec in sent:
        if rec["proto"] != "tcp" or not rec.get("local") or not rec.get("peer"):
            continue
        key = (tuple(rec["local"]), tuple(rec["peer"]))
        direction = by_ends.get(key)
        if direction is None:
            if rec["sent"]:
                problems.append(f"connection {key[0][0]}:{key[0][1]} -> {key[1][0]}:{key[1][1]} "
                                f"sent {rec['sent']} bytes but is not in the capture")
            continue
        info = rec.get("tcp_info") or {}
        resent = info.get("bytes_retrans", 0)
        captured = direction.payload_bytes
        if captured < rec["sent"] or (not resent and not direction.retransmissions and captured != rec["sent"]):
            problems.append(f"{key[0][0]}:{key[0][1]} -> {key[1][0]}:{key[1][1]}: the program sent {rec['sent']} "
                            f"bytes, the capture holds {captured}")
    return problems


def child_env() -> dict[str, str]:
    """The programs import reference_servers and sockinspect from this checkout, and
    know the runner's pid (the accounting shim dies with it, see ``_accounting``)."""
    root = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else ""), "PYTHONUNBUFFERED": "1",
            RUNNER_PID_VAR: str(os.getpid())}


def _read_port(proc: subprocess.Popen, module: str, log: Path) -> int:
    """The server's first stdout line ends with the port it listens on."""
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(READY_TIMEOUT_S)
    text = line[0].strip() if line else ""
    if not text:
        _stop(proc)
        err = log.read_text().strip().splitlines()
        raise ScenarioError(f"{module} did not say which port it listens on within {READY_TIMEOUT_S} s"
                            + (f": {err[-1]}" if err else ""))
    try:
        return int(text.split()[-1])
    except ValueError:
        _stop(proc)
        raise ScenarioError(f"{module}: cannot read a port from its first line {text!r}") from None


STRACE_CALLS = "trace=socket,bind,listen,accept,accept4,connect"


def _signal_tracee(trace: Path) -> None:
    try:
        first = trace.read_text().split(maxsplit=1)[0]
        os.kill(int(first), signal.SIGINT)
    except (OSError, ValueError, IndexError):
        pass


def _stop(proc: subprocess.Popen) -> None:
    """A server's clean exit (SIGINT), with less patience when the runner is stopping."""
    stop_group(proc, signal.SIGINT, grace=1.0 if stopping() else 5.0)


def _records(path: Path) -> list[dict[str, Any]]:
    deadline = time.monotonic() + (0 if stopping() else 2)
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def make_topology(name: str, ipv6: bool = False, claim: Callable[[str], None] | None = None
                  ) -> Loopback | LabLoopback | NetnsPair:
    """``name``: netns, loopback, or lab-loopback (the lab's addresses on one loopback).
    ``claim``: called with each network namespace's name before it is made (:meth:`Lease.claim_netns`)."""
    if name == "lab-loopback":
        return LabLoopback(claim=claim)
    return NetnsPair(claim=claim) if name == "netns" else Loopback(ipv6=ipv6)


# --- Children: a process group each, and a parent-death signal ------------------------------

RUNNER_PID_VAR = "SOCKINSPECT_RUNNER_PID"
try:
    _prctl: Any = ctypes.CDLL(None, use_errno=True).prctl
    _prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    _prctl.restype = ctypes.c_int
except (AttributeError, OSError):  # not Linux
    _prctl = None


def die_with_parent(signo: int = signal.SIGKILL, parent: int | None = None) -> None:
    """Have the kernel send ``signo`` to this process when its parent ends (Linux only).
    ``parent``: the pid the parent had; if it is no longer our parent, it ended before
    the request was made, and this process ends now."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signo, 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os._exit(128 + signo)


def spawn(argv: list[str], die_signal: int = signal.SIGKILL, own_group: bool = True, **popen: Any
          ) -> subprocess.Popen:
    """``subprocess.Popen`` for a program that must not outlive this process: it gets
    ``die_signal`` when this thread ends (call from the main thread), and with
    ``own_group`` a process group of its own (its id is the child's pid), which
    :func:`stop_group` ends as a whole and a terminal's Ctrl-C does not reach."""
    return subprocess.Popen(argv, process_group=0 if own_group else None,
                            preexec_fn=functools.partial(die_with_parent, die_signal, os.getpid()), **popen)


def stop_group(proc: subprocess.Popen, first: int | None = signal.SIGINT, grace: float = 5.0) -> None:
    """End ``proc`` and what is left of its process group, then reap it.

    ``first`` (SIGINT: a clean exit) is sent to ``proc`` alone and given ``grace``
    seconds; then the group gets SIGKILL. The group is killed while its leader is
    not yet reaped (alive or a zombie), so its id cannot belong to anyone else yet."""
    if proc.returncode is not None:
        return
    if first is not None and not _ended(proc.pid, 0):
        with suppress(ProcessLookupError):
            os.kill(proc.pid, first)
        _ended(proc.pid, grace)
    with suppress(ProcessLookupError, PermissionError):
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _ended(pid: int, timeout: float) -> bool:
    """Whether child ``pid`` has ended, waiting up to ``timeout`` s; it is left unreaped."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


# --- Signals: clean up, then end with 128 + the signal's number -----------------------------

class Terminated(BaseException):
    """The process got a signal that would end it. Raised in the main thread (like
    KeyboardInterrupt, not caught by ``except Exception``) so that every context
    manager on the way out cleans up."""

    def __init__(self, signo: int) -> None:
        super().__init__(signo)
        self.signo = signo

    @property
    def name(self) -> str:
        return signal_name(self.signo)

    @property
    def exit_status(self) -> int:
        """What a shell reports for a process this signal ended: 128 + its number."""
        return 128 + self.signo


_stopping = threading.Event()


def stopping() -> bool:
    """Whether a signal is ending this process (clean-up is under way: be brief)."""
    return _stopping.is_set()


def signal_name(signo: int) -> str:
    try:
        return signal.Signals(signo).name
    except ValueError:
        return f"SIGRTMIN+{signo - signal.SIGRTMIN}"


def ending_signals() -> list[int]:
    """The signals that would end this process now and that a handler can catch.
    Not those already ignored (SIGHUP under nohup, Python's SIGPIPE and SIGXFSZ) and
    not the hardware faults (see ``_linux``)."""
    found = []
    for signo in sorted(signal.valid_signals()):
        name = signal_name(signo)
        if name in SIGNALS_THAT_DO_NOT_END or name in FAULT_SIGNALS:
            continue
        if signal.getsignal(signo) in (signal.SIG_DFL, signal.default_int_handler):
            found.append(int(signo))
    return found


@contextmanager
def cleanup_on_signals() -> Iterator[None]:
    """Within: a signal that would end the process raises :class:`Terminated` instead,
    once; later ones are ignored so that the clean-up it starts can finish (it is brief:
    :func:`stopping` shortens the waits). Outside the main thread this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signo: int, _frame: FrameType | None) -> None:
        if _stopping.is_set():
            return
        _stopping.set()
        raise Terminated(signo)

    _stopping.clear()
    old = {signo: signal.signal(signo, handler) for signo in ending_signals()}
    try:
        yield
    finally:
        for signo, previous in old.items():
            signal.signal(signo, previous)


# --- Ownership: what a run makes outside its process, recorded before it is made -------------

WORK_PREFIX, STAGE_PREFIX = ".work-", ".sockinspect-"  # the only folder names clean-up removes
OWNER_FILE = "owner.json"
STATE_DIR_VAR = "SOCKINSPECT_STATE_DIR"


@dataclass(frozen=True, slots=True)
class Owner:
    """A process, named so that a later one with the same pid is not taken for it."""

    pid: int
    start: int  # /proc/PID/stat start time, clock ticks after boot
    uid: int  # in the initial user namespace (a run inside 'unshare -rn' is uid 0 in there)
    boot_id: str
    pidns: str  # the PID namespace the pid is valid in

    @classmethod
    def me(cls) -> Owner:
        pid = os.getpid()
        return cls(pid, _proc_stat(pid)[1], host_uid(), _boot_id(), os.readlink("/proc/self/ns/pid"))

    def state(self) -> str:
        """``running``, ``gone``, or ``unknown`` (its pid is in another PID namespace)."""
        if self.boot_id != _boot_id():
            return "gone"  # it ran before the last reboot
        if self.pidns != os.readlink("/proc/self/ns/pid"):
            return "unknown"
        found = _proc_stat(self.pid)
        if found is None or found[0] in ("Z", "X") or found[1] != self.start:
            return "gone"
        return "running"


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time) of ``pid`` from /proc/PID/stat, None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # from field 3 on: the name may hold ") "
    return fields[PROC_STAT_STATE - 3], int(fields[PROC_STAT_START - 3])


def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def host_uid() -> int:
    """This process's uid as the initial user namespace sees it."""
    uid = os.getuid()
    with suppress(OSError, ValueError):
        for line in Path("/proc/self/uid_map").read_text().splitlines():
            inside, outside, count = map(int, line.split())
            if inside <= uid < inside + count:
                return outside + uid - inside
    return uid


def state_dir() -> Path:
    """Where runs record what they made: $SOCKINSPECT_STATE_DIR, else /run/sockinspect
    for root, else $XDG_RUNTIME_DIR/sockinspect or a folder of this user's in /tmp."""
    if os.environ.get(STATE_DIR_VAR):
        path = Path(os.environ[STATE_DIR_VAR])
    elif host_uid() == 0:
        path = Path("/run/sockinspect")
    elif os.environ.get("XDG_RUNTIME_DIR"):
        path = Path(os.environ["XDG_RUNTIME_DIR"]) / "sockinspect"
    else:
        path = Path(tempfile.gettempdir()) / f"sockinspect-{host_uid()}"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.lstat()
    except OSError as exc:
        raise SockinspectError(f"cannot use {path} to record runs: {exc.strerror} (set {STATE_DIR_VAR})") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise SockinspectError(f"{path} is not a folder of this user's: cannot record runs there "
                               f"(set {STATE_DIR_VAR})")
    return path


class Lease:
    """The record of what one run makes outside its process, kept in :func:`state_dir`.

    Each network namespace and folder is written down (atomically) before it is
    made; the record goes when the run ends and all of it is gone. If the run is
    killed outright, the record outlives it and :func:`clean_leftovers` removes
    what it lists once its owner is gone. Use as a context manager."""

    def __init__(self, command: str) -> None:
        self.owner = Owner.me()
        self.command = command
        self.netns: list[str] = []
        self.folders: list[str] = []
        self.path = state_dir() / f"run-{self.owner.pid}-{self.owner.start}.json"

    def __enter__(self) -> Lease:
        self._write()
        return self

    def __exit__(self, *exc: object) -> None:
        """Remove what is left of what this run made (a clean-up cut short, a caller's
        mistake), then the record, unless something could not be removed."""
        if not [item for item in _remove_listed(self._doc(), self.owner) if item.action == "failed"]:
            self.path.unlink(missing_ok=True)

    def claim_netns(self, name: str) -> None:
        self.netns.append(name)
        self._write()

    def make_folder(self, parent: Path, prefix: str) -> Path:
        """Make a new folder ``prefix`` + random in ``parent``, recorded as this run's
        (and marked inside with its owner, for a later run writing to ``parent``)."""
        path = Path(parent).resolve() / f"{prefix}{secrets.token_hex(4)}"
        self.folders.append(str(path))
        self._write()
        path.mkdir(mode=0o700)
        _write_json(path / OWNER_FILE, {"owner": asdict(self.owner), "command": self.command})
        return path

    def _doc(self) -> dict[str, Any]:
        return {"schema_version": 1, "owner": asdict(self.owner), "command": self.command,
                "netns": self.netns, "folders": self.folders}

    def _write(self) -> None:
        _write_json(self.path, self._doc())


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc) + "\n")
    os.replace(tmp, path)


@dataclass(frozen=True, slots=True)
class Leftover:
    """One thing a run left behind, and what clean-up did with it."""

    kind: str  # "netns" or "folder"
    name: str  # the namespace's name, the folder's path
    owner_pid: int | None
    action: str  # "removed", "would remove", "kept" or "failed"
    reason: str


def clean_leftovers(dirs: Iterable[Path] = (), dry_run: bool = False) -> list[Leftover]:
    """Remove the network namespaces and work folders of runs whose process is gone.

    Looks at every run recorded in :func:`state_dir`, every ``sockinspect-*``
    namespace, and the ``.work-*`` / ``.sockinspect-*`` folders in ``dirs`` (and
    their subfolders). Only what belongs to this user and to a run that no longer
    runs is removed; the rest is reported as kept, with the reason. A record that
    is not one (not a small regular file of this user's, not JSON of the expected
    shape) is not known as a run's: it and what it names are kept."""
    items: list[Leftover] = []
    recorded_netns: set[str] = set()
    recorded_folders: set[str] = set()
    me = Owner.me()
    for path in sorted(state_dir().glob("run-*.json")):
        doc: Any = None
        try:
            doc = _read_json(path, MAX_STATE_RECORD_BYTES)
            owner = _record_owner(doc)
            netns, folders = _record_names(doc, "netns"), _record_names(doc, "folders")
        except FileNotFoundError:
            continue  # its run ended meanwhile
        except _BadRecord as exc:
            netns, folders = _strings_in(doc, "netns"), _strings_in(doc, "folders")
            recorded_netns.update(netns)
            recorded_folders.update(folders)
            pid = _owner_pid_in(doc)
            why = f"the record {path} {exc}: not known as a run's"
            items += [Leftover("netns", n, pid, "kept", why) for n in netns if netns_exists(n)]
            items += [Leftover("folder", f, pid, "kept", why) for f in folders if os.path.lexists(f)]
            continue
        recorded_netns.update(netns)
        recorded_folders.update(folders)
        if owner == me:
            continue
        removable, reason = _verdict(owner)
        if not removable:
            items += [Leftover("netns", n, owner.pid, "kept", reason) for n in netns if netns_exists(n)]
            items += [Leftover("folder", f, owner.pid, "kept", reason) for f in folders if Path(f).exists()]
            continue
        done = _remove_listed(doc, owner, dry_run, reason)
        items += done
        if not dry_run and not any(item.action == "failed" for item in done):
            path.unlink(missing_ok=True)
    for name in netns_names():
        if name.startswith(NETNS_PREFIX) and name not in recorded_netns:
            items.append(Leftover("netns", name, None, "kept", "no run recorded it (an older sockinspect's, or "
                                  f"another user's): 'ip netns delete {name}' removes it"))
    for folder in _candidate_folders(dirs):
        if str(folder) in recorded_folders:
            continue
        kept = functools.partial(Leftover, "folder", str(folder), None, "kept")
        problem = _not_this_users(folder)
        if problem:
            items.append(kept(problem))
            continue
        try:
            owner = _folder_owner(folder)
        except _BadRecord as exc:
            items.append(kept(f"its {OWNER_FILE} {exc}: not known as a run's"))
            continue
        if owner is None:
            items.append(kept(f"no {OWNER_FILE} in it: not known as a run's"))
            continue
        removable, reason = _verdict(owner)
        if removable:
            items.append(_remove_folder(folder, owner, reason, dry_run))
        else:
            items.append(Leftover("folder", str(folder), owner.pid, "kept", reason))
    return items


def _verdict(owner: Owner) -> tuple[bool, str]:
    """Whether what ``owner`` made may be removed, and why (or why not)."""
    if owner.uid != host_uid():
        return False, f"it belongs to uid {owner.uid}"
    state = owner.state()
    if state == "running":
        return False, f"its run, pid {owner.pid}, is still going"
    if state == "unknown":
        return False, f"its run, pid {owner.pid}, is in another PID namespace: cannot tell whether it still runs"
    return True, f"its run, pid {owner.pid}, is gone"


def _remove_listed(doc: dict[str, Any], owner: Owner, dry_run: bool = False, reason: str = "") -> list[Leftover]:
    """Remove (or, ``dry_run``, list) the namespaces and folders of a record that still exist."""
    items = []
    for name in doc["netns"]:
        if not netns_exists(name):
            continue
        if dry_run:
            items.append(Leftover("netns", name, owner.pid, "would remove", reason))
            continue
        for pid in netns_pids(name):  # what still runs in there is that run's
            with suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        ok = delete_netns(name)
        items.append(Leftover("netns", name, owner.pid, "removed" if ok else "failed",
                              reason if ok else f"{reason}; 'ip netns delete {name}' failed"))
    for folder in map(Path, doc["folders"]):
        if os.path.lexists(folder):
            items.append(_remove_folder(folder, owner, reason, dry_run))
    return items


def _remove_folder(folder: Path, owner: Owner, reason: str, dry_run: bool = False) -> Leftover:
    """Remove (or, ``dry_run``, say it would) a run's folder: only one named as ours, a
    folder of this user's and not a symlink, holding that owner's mark (or empty: the run
    ended between making it and marking it)."""
    kept = functools.partial(Leftover, "folder", str(folder), owner.pid, "kept")
    if not os.path.lexists(folder):  # inside a folder removed just before
        return Leftover("folder", str(folder), owner.pid, "removed", reason)
    if not folder.name.startswith((WORK_PREFIX, STAGE_PREFIX)):
        return kept(f"not a folder sockinspect makes ({WORK_PREFIX}*, {STAGE_PREFIX}*)")
    problem = _not_this_users(folder)
    if problem:
        return kept(problem)
    try:
        mark = _folder_owner(folder)
    except _BadRecord as exc:
        return kept(f"its {OWNER_FILE} {exc}: not known as a run's")
    if mark is None and any(folder.iterdir()):
        return kept(f"no {OWNER_FILE} in it: not known as a run's")
    if mark is not None and mark != owner:
        return kept(f"its {OWNER_FILE} names another run (pid {mark.pid})")
    if dry_run:
        return Leftover("folder", str(folder), owner.pid, "would remove", reason)
    errors: list[str] = []
    shutil.rmtree(folder, onerror=lambda _f, p, e: errors.append(f"{p}: {e[1]}"))
    if errors:
        return Leftover("folder", str(folder), owner.pid, "failed", f"{reason}; cannot remove {errors[0]}")
    return Leftover("folder", str(folder), owner.pid, "removed", reason)


def _not_this_users(folder: Path) -> str | None:
    """Why ``folder`` is not one clean-up may remove (a symlink, not a folder, another
    user's: whatever its owner.json claims), or None."""
    try:
        info = folder.lstat()
    except OSError as exc:
        return f"cannot look at it: {exc.strerror}"
    if stat.S_ISLNK(info.st_mode):
        return "a symlink, not a folder sockinspect makes"
    if not stat.S_ISDIR(info.st_mode):
        return "not a folder"
    if info.st_uid != os.geteuid():
        return f"the folder belongs to uid {info.st_uid}, not to this user"
    return None


# Records are read bounded and without blocking: a FIFO, a device or a symlink to one
# in their place would otherwise hang clean-up, or read /dev/zero until memory runs out.
MAX_OWNER_FILE_BYTES = 4 << 10  # an owner.json is some 250 bytes
MAX_STATE_RECORD_BYTES = 256 << 10  # a run's record: its owner, and the paths of what it made


class _BadRecord(Exception):
    """A record that cannot be taken as a run's; its message says why ("is a FIFO")."""


def _read_json(path: Path, limit: int) -> Any:
    """The JSON in ``path``, a regular file of this user's of at most ``limit`` bytes,
    read without following a symlink or blocking; FileNotFoundError when there is
    none, _BadRecord otherwise."""
    try:
        before = path.lstat()
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise _BadRecord(f"cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    if not stat.S_ISREG(before.st_mode):
        raise _BadRecord(f"is {_file_kind(before.st_mode)}, not a regular file")
    if before.st_uid != os.geteuid():
        raise _BadRecord(f"belongs to uid {before.st_uid}, not to this user")
    if before.st_size > limit:
        raise _BadRecord(f"is larger than {limit} bytes")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _BadRecord(f"cannot be read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != (before.st_dev, before.st_ino) or not stat.S_ISREG(info.st_mode):
            raise _BadRecord("was replaced while being read")
        data = b""
        while len(data) <= limit:
            chunk = os.read(fd, limit + 1 - len(data))
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        raise _BadRecord(f"cannot be read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise _BadRecord(f"is larger than {limit} bytes")
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise _BadRecord("is not JSON") from None


def _file_kind(mode: int) -> str:
    kinds = [(stat.S_ISLNK, "a symlink"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device")]
    return next((name for test, name in kinds if test(mode)), "not a file")


_OWNER_FIELDS = {"pid": int, "start": int, "uid": int, "boot_id": str, "pidns": str}


def _record_owner(doc: Any) -> Owner:
    """The owner a record (a state record, an owner.json) names; _BadRecord if malformed."""
    raw = doc.get("owner") if isinstance(doc, dict) else None
    if not isinstance(raw, dict):
        raise _BadRecord("names no owner")
    if set(raw) != set(_OWNER_FIELDS) or any(type(raw[k]) is not t for k, t in _OWNER_FIELDS.items()):
        raise _BadRecord("has a malformed owner")
    return Owner(**raw)


def _record_names(doc: dict[str, Any], key: str) -> list[str]:
    """A state record's list of namespaces (``netns``) or folders; _BadRecord unless each
    is what a run records: a sockinspect-* namespace name, an absolute path."""
    names = doc.get(key)
    if not isinstance(names, list):
        raise _BadRecord(f"has no list {key!r}")
    for i, name in enumerate(names):
        if key == "netns":
            ok = isinstance(name, str) and name.startswith(NETNS_PREFIX) and "/" not in name and "\0" not in name
        else:
            ok = isinstance(name, str) and name.startswith("/") and "\0" not in name
        if not ok:
            what = "a sockinspect network namespace" if key == "netns" else "an absolute path"
            raise _BadRecord(f"is malformed: {key}[{i}] is not {what}")
    return names


def _strings_in(doc: Any, key: str) -> list[str]:
    """What a malformed record's list ``key`` names that could be a path or a name."""
    names = doc.get(key) if isinstance(doc, dict) else None
    return [n for n in names if isinstance(n, str) and n and "\0" not in n] if isinstance(names, list) else []


def _owner_pid_in(doc: Any) -> int | None:
    raw = doc.get("owner") if isinstance(doc, dict) else None
    pid = raw.get("pid") if isinstance(raw, dict) else None
    return pid if type(pid) is int else None


def _folder_owner(folder: Path) -> Owner | None:
    """The owner ``folder``'s owner.json names; None when it has none, _BadRecord when
    that is not a run's owner record."""
    try:
        return _record_owner(_read_json(folder / OWNER_FILE, MAX_OWNER_FILE_BYTES))
    except FileNotFoundError:
        return None


def _candidate_folders(dirs: Iterable[Path]) -> list[Path]:
    """The folders named as sockinspect's in each of ``dirs`` and in their subfolders."""
    found: list[Path] = []
    for top in dirs:
        top = Path(top).resolve()
        for where in [top, *_subfolders(top)]:
            found += [p for p in _subfolders(where) if p.name.startswith((WORK_PREFIX, STAGE_PREFIX))]
    return sorted(set(found))


def _subfolders(path: Path) -> list[Path]:
    try:
        return [p for p in path.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []
