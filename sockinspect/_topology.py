"""Edge: where a scenario's server and client run.

- :class:`Loopback`: both on 127.0.0.1 (or ::1), captured on ``lo``.
- :class:`NetnsPair`: the lab's two hosts, R2 (10.10.10.2) and KALI (10.10.10.3),
  each in its own network namespace, joined by a veth pair. Nothing is routed
  anywhere else: the namespaces have no other interface and no default route.
  They are always removed on exit, also after an error or a signal. Their
  names hold the pid of the run that made them: ``sockinspect-R2-PID-TOKEN``.

Both give the command prefix that runs a program on a host, and a way to open
the capture socket on the server's interface.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from .errors import SockinspectError

CLONE_NEWNET = 0x40000000
NETNS_PREFIX = "sockinspect-"
NETNS_RUN_DIR = "/run/netns"  # where 'ip netns add' names namespaces (iproute2's NETNS_RUN_DIR)
R2_ADDR, KALI_ADDR, PREFIX = "10.10.10.2", "10.10.10.3", 24
T = TypeVar("T")


class TopologyError(SockinspectError):
    """The hosts cannot be set up here (no privilege, no ip command)."""


class Loopback:
    """Server and client on this host's loopback."""

    name = "loopback"

    def __init__(self, ipv6: bool = False) -> None:
        self.server_addr = "::1" if ipv6 else "127.0.0.1"
        self.client_addr = self.server_addr
        self.capture_interface = "lo"

    def __enter__(self) -> Loopback:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def server_cmd(self, argv: list[str]) -> list[str]:
        return argv

    def client_cmd(self, argv: list[str]) -> list[str]:
        return argv

    def in_server_netns(self, make: Callable[[], T]) -> T:
        return make()

    in_client_netns = in_server_netns


class LabLoopback:
    """The lab's two addresses, R2's 10.10.10.2 and KALI's 10.10.10.3, both on the
    loopback of one network namespace of their own, so that programs that hard-code
    them run unchanged. As root, a named namespace made here (and removed on exit);
    otherwise the one this process already runs in (``unshare -rn``: it is new and
    empty), whose loopback gets the two addresses."""

    name = "loopback"

    def __init__(self, claim: Callable[[str], None] | None = None) -> None:
        self.server_addr, self.client_addr = R2_ADDR, KALI_ADDR
        self.capture_interface = "lo"
        self.own = os.geteuid() == 0 and not in_user_namespace()
        self.ns = f"{NETNS_PREFIX}LAB-{os.getpid()}-{secrets.token_hex(3)}" if self.own else None
        self._claim = claim
        self.server_netns = f"{NETNS_RUN_DIR}/{self.ns}" if self.ns else "/proc/self/ns/net"  # R2's, as a file

    def __enter__(self) -> LabLoopback:
        if self.ns is None:
            prefix: tuple[str, ...] = ()
        else:
            if shutil.which("ip") is None:
                raise TopologyError("the loopback topology needs the 'ip' command (Debian package iproute2)")
            if self._claim is not None:
                self._claim(self.ns)
            _ip("netns", "add", self.ns)
            prefix = ("-n", self.ns)
        try:
            _ip(*prefix, "link", "set", "lo", "up")
            for addr in (R2_ADDR, KALI_ADDR):
                _ip(*prefix, "addr", "add", f"{addr}/32", "dev", "lo")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.ns is not None:
            delete_netns(self.ns)

    def server_cmd(self, argv: list[str]) -> list[str]:
        return argv if self.ns is None else ["ip", "netns", "exec", self.ns, *argv]

    client_cmd = server_cmd

    def in_server_netns(self, make: Callable[[], T]) -> T:
        if self.ns is None:
            return make()
        with _netns(self.ns):
            return make()

    in_client_netns = in_server_netns


def in_user_namespace() -> bool:
    """Whether this process runs in a user namespace other than the initial one."""
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


class NetnsPair:
    """R2 and KALI in their own network namespaces; see the module docstring."""

    name = "netns"

    def __init__(self, claim: Callable[[str], None] | None = None) -> None:
        """``claim``: called with each namespace's name before it is made (to record it)."""
        token, pid = secrets.token_hex(3), os.getpid()
        self.r2 = f"{NETNS_PREFIX}R2-{pid}-{token}"
        self.kali = f"{NETNS_PREFIX}KALI-{pid}-{token}"
        self.r2_if, self.kali_if = f"si-r2-{token}", f"si-ka-{token}"  # at most 15 characters (IFNAMSIZ)
        self.server_addr, self.client_addr = R2_ADDR, KALI_ADDR
        self.capture_interface = self.r2_if
        self.server_netns = f"{NETNS_RUN_DIR}/{self.r2}"  # R2's namespace, as a file
        self._claim = claim
        self._made: list[str] = []

    def __enter__(self) -> NetnsPair:
        if shutil.which("ip") is None:
            raise TopologyError("the netns topology needs the 'ip' command (Debian package iproute2)")
        if os.geteuid() != 0:
            raise TopologyError("the netns topology needs root (or run sockinspect inside 'unshare -rnm')")
        try:
            for ns in (self.r2, self.kali):
                if self._claim is not None:
                    self._claim(ns)
                self._made.append(ns)  # before: 'ip' may be stopped after making it
                _ip("netns", "add", ns)
            _ip("link", "add", self.r2_if, "netns", self.r2, "type", "veth",
                "peer", "name", self.kali_if, "netns", self.kali)
            for ns, dev, addr in ((self.r2, self.r2_if, R2_ADDR), (self.kali, self.kali_if, KALI_ADDR)):
                _ip("-n", ns, "addr", "add", f"{addr}/{PREFIX}", "dev", dev)
                _ip("-n", ns, "link", "set", dev, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        # Deleting a namespace deletes its end of the veth pair, and with it the peer.
        while self._made:
            delete_netns(self._made.pop())

    def server_cmd(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.r2, *argv]

    def client_cmd(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.kali, *argv]

    def in_server_netns(self, make: Callable[[], T]) -> T:
        """Call ``make`` (e.g. open a capture socket) inside R2's namespace."""
        with _netns(self.r2):
            return make()

    def in_client_netns(self, make: Callable[[], T]) -> T:
        """Call ``make`` (e.g. open a socket) inside KALI's namespace."""
        with _netns(self.kali):
            return make()


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode:
        raise TopologyError(f"ip {' '.join(args)}: {result.stderr.strip() or 'failed'}")


@contextmanager
def _netns(name: str) -> Iterator[None]:
    """Switch the calling thread into network namespace ``name`` and back.
    Sockets created meanwhile stay in that namespace (Python 3.11 has no os.setns)."""
    libc = ctypes.CDLL(None, use_errno=True)
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    there = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(there, CLONE_NEWNET) != 0:
            raise TopologyError(f"cannot enter network namespace {name}: {os.strerror(ctypes.get_errno())}")
        try:
            yield
        finally:
            libc.setns(here, CLONE_NEWNET)
    finally:
        os.close(here)
        os.close(there)


def netns_names() -> list[str]:
    """The named network namespaces (``ip netns list``)."""
    try:
        return sorted(os.listdir(NETNS_RUN_DIR))
    except OSError:
        return []


def netns_exists(name: str) -> bool:
    return os.path.lexists(os.path.join(NETNS_RUN_DIR, name))


def netns_pids(name: str) -> list[int]:
    """The processes in network namespace ``name``."""
    found = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False).stdout
    return [int(word) for word in found.split() if word.isdigit()]


def delete_netns(name: str) -> bool:
    """Delete network namespace ``name`` (and so the veth end in it); whether it is gone."""
    subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
    return not netns_exists(name)


def leftovers(owner_pid: int | None = None) -> list[str]:
    """Namespaces and links sockinspect made that still exist (should be none); with
    ``owner_pid``, only the namespaces the run of that pid made."""
    mine = f"-{owner_pid}-"
    names = [n for n in netns_names() if n.startswith(NETNS_PREFIX) and (owner_pid is None or mine in n)]
    if owner_pid is not None:
        return names
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=False).stdout
    return names + [part for part in links.split() if part.startswith("si-r2-") or part.startswith("si-ka-")]
