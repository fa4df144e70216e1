"""sockinspect: make TCP behaviour visible and testable.

>>> cap = sockinspect.analyze("captures/examples/echo.pcap")
>>> conn = cap.tcp.only()
>>> conn.client.port, conn.handshake.rtt_ms, conn.state
"""

from ._analyze import analyze
from ._model import (
    Capture,
    Direction,
    Endpoint,
    Handshake,
    Selection,
    Stats,
    TcpConnection,
    UdpDirection,
    UdpFlow,
)
from .errors import CaptureFormatError, SockinspectError, UsageError

__version__ = "0.1.0"

__all__ = [
    "Capture",
    "CaptureFormatError",
    "Direction",
    "Endpoint",
    "Handshake",
    "Selection",
    "SockinspectError",
    "Stats",
    "TcpConnection",
    "UdpDirection",
    "UdpFlow",
    "UsageError",
    "analyze",
]
