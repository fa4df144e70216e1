"""Edge: capture live traffic in Python with an AF_PACKET socket (no tcpdump needed)
and write it as a nanosecond pcap file.

Needs CAP_NET_RAW: root, or an unprivileged user + network namespace
(``unshare -rn``), where the namespace's own loopback can be captured.
Kernel timestamps (SO_TIMESTAMPNS) are used, and the kernel's drop count is
reported, so a capture that lost packets says so.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ._decode import Decoder, Packet
from ._read import Frame
from .errors import SockinspectError

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33
PACKET_OUTGOING = 4
LINKTYPE_ETHERNET = 1
PCAP_NS_HEADER = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262_144, LINKTYPE_ETHERNET)
RCVBUF = 64 << 20


class CaptureError(SockinspectError):
    """Live capture is impossible here (no privilege, no such interface)."""


@dataclass(frozen=True, slots=True)
class CaptureStats:
    packets: int  # written to the file
    seen: int  # received from the kernel, before the port filter
    dropped: int  # dropped by the kernel (socket buffer full)


class LiveCapture:
    """Capture the frames of ``interface`` that involve one of ``ports`` into ``path``.

    Use as a context manager: the socket is open when ``__enter__`` returns, so
    traffic started afterwards is captured; ``__exit__`` drains what the kernel
    still holds, closes the file and sets ``stats``.
    """

    def __init__(self, path: str | os.PathLike[str], ports: Iterable[int] | None = None,
                 interface: str = "lo", in_netns: Callable[[Callable[[], socket.socket]], socket.socket] | None = None
                 ) -> None:
        """``in_netns``: calls its argument inside the network namespace to capture in."""
        self.path = Path(path)
        self._in_netns = in_netns
        self.ports = frozenset(ports) if ports else None
        self.interface = interface
        self.stats: CaptureStats | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> LiveCapture:
        sock = self._in_netns(self._open) if self._in_netns else self._open()
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.settimeout(0.05)
        self._sock = sock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._out = open(self.path, "wb")  # noqa: SIM115 - closed in __exit__
        self._out.write(PCAP_NS_HEADER)
        self._thread = threading.Thread(target=self._run, name="sockinspect-capture", daemon=True)
        self._thread.start()
        return self

    def _open(self) -> socket.socket:
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except PermissionError:
            raise CaptureError(
                "live capture needs CAP_NET_RAW: run as root, or inside "
                "'unshare -rn' (an unprivileged user + network namespace)"
            ) from None
        except (AttributeError, OSError) as exc:
            raise CaptureError(f"cannot open a packet socket: {exc}") from None
        try:
            sock.bind((self.interface, ETH_P_ALL))
        except OSError as exc:
            sock.close()
            raise CaptureError(f"cannot capture on interface {self.interface!r}: {exc.strerror}") from None
        return sock

    def _run(self) -> None:
        sock, out, ports = self._sock, self._out, self.ports
        decoder = Decoder()
        loopback = self.interface == "lo"
        written = seen = 0
        idle_after_stop = False
        try:
            while True:
                try:
                    data, anc, _flags, addr = sock.recvmsg(262_144, 64)
                except TimeoutError:
                    if self._stop.is_set():
                        if idle_after_stop:
                            break
                        idle_after_stop = True  # one more quiet period to drain
                    continue
                idle_after_stop = False
                seen += 1
                # On loopback every frame is seen twice (outgoing, then incoming): keep one.
                if loopback and addr[2] == PACKET_OUTGOING:
                    continue
                ts_ns = _timestamp_ns(anc)
                if ports is not None:
                    pkt = decoder.decode(Frame(ts_ns, LINKTYPE_ETHERNET, len(data), data, 0, len(data)), 0)
                    if type(pkt) is not Packet or (pkt.sport not in ports and pkt.dport not in ports):
                        continue
                out.write(struct.pack("<IIII", ts_ns // 1_000_000_000, ts_ns % 1_000_000_000,
                                      len(data), len(data)))
                out.write(data)
                written += 1
        except BaseException as exc:  # reported by __exit__
            self._error = exc
        finally:
            self._written, self._seen = written, seen

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        _received, dropped = struct.unpack("II", raw)
        self._sock.close()
        self._out.close()
        self.stats = CaptureStats(self._written, self._seen, dropped)
        if self._error is not None and exc is None:
            raise CaptureError(f"capture failed: {self._error}") from self._error


def _timestamp_ns(ancillary: list[tuple[int, int, bytes]]) -> int:
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
            sec, nsec = struct.unpack("qq", payload[:16])
            return sec * 1_000_000_000 + nsec
    return time.time_ns()


def can_capture(interface: str = "lo") -> str | None:
    """None when live capture works here, else a one-line reason."""
    try:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as s:
            s.bind((interface, ETH_P_ALL))
    except PermissionError:
        return "live capture needs CAP_NET_RAW (root, or an unprivileged user namespace)"
    except (AttributeError, OSError) as exc:
        return f"cannot open a packet socket on {interface!r}: {exc}"
    return None
