"""pytest plugin (entry point ``pytest11``): the ``tcp_capture`` fixture.

    def test_echo_closes_cleanly(tcp_capture, echo_server):
        with tcp_capture(port=echo_server.port) as cap:
            run_client(echo_server.port, "hello SECRET 42")
        conn = cap.analysis.tcp.only()
        assert_closed_cleanly(conn)

Traffic on the loopback interface to or from the given port(s) is captured
while the ``with`` body runs; ``cap.analysis`` is then what
:func:`sockinspect.analyze` returns for it. When the test fails, the capture
file is kept and its path shown in the report, to open it in Wireshark.
Where live capture is impossible (no CAP_NET_RAW, no user namespaces) the
fixture skips the test with a one-line reason; with ``--sockinspect-require-capture``
(or ``sockinspect_require_capture = true`` in the ini file) it errors instead,
so a CI job that must capture cannot turn green by skipping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ._analyze import analyze
from ._capture import LiveCapture, can_capture
from ._model import Capture


class CaptureResult:
    """What the fixture hands back: the file, the kernel's counts, the analysis."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.analysis: Capture | None = None
        self.dropped = 0

    def __repr__(self) -> str:
        return f"<tcp capture {self.path}>"


REQUIRE_HELP = "fail, not skip, tests using tcp_capture where live capture is impossible (for CI)"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sockinspect")
    group.addoption("--sockinspect-require-capture", action="store_true", default=None, help=REQUIRE_HELP)
    parser.addini("sockinspect_require_capture", REQUIRE_HELP, type="bool", default=False)


def _capture_required(config: pytest.Config) -> bool:
    flag = config.getoption("sockinspect_require_capture")
    return bool(config.getini("sockinspect_require_capture")) if flag is None else flag


@pytest.fixture
def tcp_capture(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., object]:
    """Factory: ``with tcp_capture(port=PORT) as cap: ...``; then ``cap.analysis``."""
    reason = can_capture()
    if reason is not None:
        if _capture_required(request.config):
            pytest.fail(f"sockinspect: {reason} (and capture is required: --sockinspect-require-capture)",
                        pytrace=False)
        pytest.skip(f"sockinspect: {reason}")
    paths: list[Path] = []
    request.node.sockinspect_captures = paths

    @contextmanager
    def capture(port: int | None = None, ports: list[int] | None = None,
                interface: str = "lo") -> Iterator[CaptureResult]:
        wanted = [*(ports or []), *([port] if port is not None else [])]
        path = tmp_path / f"capture-{len(paths)}.pcap"
        paths.append(path)
        result = CaptureResult(path)
        live = LiveCapture(path, ports=wanted or None, interface=interface)
        with live:
            yield result
        result.dropped = live.stats.dropped if live.stats else 0
        if result.dropped:
            pytest.fail(f"sockinspect: the kernel dropped {result.dropped} packets; {path} is incomplete")
        result.analysis = analyze(path)

    return capture


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    paths = getattr(item, "sockinspect_captures", None)
    if paths and report.when == "call" and report.failed:
        report.sections.append(("sockinspect captures (kept for Wireshark)", "\n".join(map(str, paths))))
