"""sockinspect plot: a direction's series (sockinspect._series) and their pictures
(sockinspect._plot), checked against the record, against dpkt, and as files."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import dpkt
import pytest

from sockinspect._packets import connection_packets
from sockinspect._plot import KINDS, figure, svg
from sockinspect._series import Series, sender_with_more_data, series, sliding_rates

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "captures" / "examples"
CORPUS = ROOT / "tests" / "data" / "corpus"
NAGLE_ON = EXAMPLES / "nagle-on.pcap"  # 25 write-write-read requests: a delayed ACK and a stall each
SACKED = CORPUS / "zeek__206_example_b.pcap"  # a real download with losses, SACK blocks and retransmissions
MAGIC = {"png": b"\x89PNG", "svg": b"<?xml", "pdf": b"%PDF"}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sockinspect", *args], capture_output=True, text=True, timeout=120)


def test_the_series_count_what_the_record_counts():
    cp = connection_packets(NAGLE_ON, 0)
    c2s = cp.connection.c2s
    s = series(cp, 0)
    assert len(s.segments) + len(s.resent) == c2s.segments
    assert len(s.resent) == 0 == c2s.retransmissions
    assert s.payload_bytes == c2s.payload_bytes
    assert len(s.delayed_acks) == c2s.delayed_acks >= 20
    assert len(s.stalls) == c2s.stalls
    assert all(40 <= to - frm <= 250 for frm, to, _ in s.delayed_acks)  # Linux's timer, in a wide band
    assert [name for _, _, name in s.marks] == ["SYN", "FIN"]
    acks = [a for _, a in s.acks]
    assert acks == sorted(acks) and acks[-1] == c2s.payload_bytes + 2  # the SYN and the FIN take one each
    assert all(edge == a + w for (_, edge), (_, a), (_, w) in zip(s.window_edge, s.acks, s.window, strict=True))
    assert min(f for _, f in s.in_flight) >= 0 and s.in_flight[-1][1] == 0  # all acknowledged at the end


def test_each_delayed_ack_is_on_the_ack_delay_plot_at_its_delay():
    cp = connection_packets(NAGLE_ON, 0)
    s = series(cp, 0)
    delayed = sorted(round(d, 6) for _, d, is_delayed in s.ack_delays if is_delayed)
    assert delayed == sorted(round(to - frm, 6) for frm, to, _ in s.delayed_acks)
    assert all(d < 35 for _, d, is_delayed in s.ack_delays if not is_delayed)  # the others come at once


def test_the_direction_with_more_data_is_the_default():
    assert sender_with_more_data(connection_packets(NAGLE_ON, 0)) == 0
    assert sender_with_more_data(connection_packets(SACKED, 0)) == 1  # a download


def _dpkt_sacks(path: Path) -> dict[int, list[tuple[int, int]]]:
    """Packet number -> SACK blocks relative to the receiver's peer's ISN, read by dpkt."""
    isn: dict[tuple, int] = {}
    out: dict[int, list[tuple[int, int]]] = {}
    with path.open("rb") as f:
        for number, (_ts, buf) in enumerate(dpkt.pcap.Reader(f), 1):
            ip = dpkt.ethernet.Ethernet(buf).data
            if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.tcp.TCP):
                continue
            tcp = ip.data
            me, peer = (ip.src, tcp.sport), (ip.dst, tcp.dport)
            if tcp.flags & dpkt.tcp.TH_SYN:
                isn[me] = tcp.seq
            for kind, data in dpkt.tcp.parse_opts(tcp.opts):
                if kind == dpkt.tcp.TCP_OPT_SACK and peer in isn:
                    edges = [int.from_bytes(data[i:i + 4], "big") for i in range(0, len(data) - 3, 4)]
                    out[number] = [((edges[i] - isn[peer]) & 0xFFFFFFFF, (edges[i + 1] - isn[peer]) & 0xFFFFFFFF)
                                   for i in range(0, len(edges) - 1, 2)]
    return out


def test_sack_blocks_are_those_dpkt_reads():
    expected = _dpkt_sacks(SACKED)
    assert len(expected) == 64
    seen = {}
    for index in (0, 1):
        cp = connection_packets(SACKED, index)
        seen.update({n: list(blocks) for n, blocks in zip(cp.number, cp.sack, strict=True) if blocks})
    assert seen == expected
    s = series(connection_packets(SACKED, 0), 1)
    assert len(s.sacks) == sum(len(b) for b in expected.values()) and len(s.resent) > 0


def test_throughput_of_a_steady_sender_is_its_rate():
    s = Series(0, duration_ms=100.0)
    s.segments = [(float(t), 1 + 1000 * t, 1 + 1000 * (t + 1)) for t in range(100)]  # 1000 B per ms: 8 Mbit/s
    s.acks = [(t + 0.5, 1 + 1000 * (t + 1)) for t in range(100)]
    window, rates = sliding_rates(s, 10.0)
    assert window == 10.0
    middle = [(r, g) for ms, r, g in rates if 20 <= ms <= 90]
    assert middle and all(r == pytest.approx(8e6) and g == pytest.approx(8e6) for r, g in middle)
    assert sliding_rates(Series(0))[1] == []


def test_retransmissions_count_in_throughput_not_in_goodput():
    s = Series(0, duration_ms=100.0)
    s.segments = [(float(t), 1 + 1000 * t, 1 + 1000 * (t + 1)) for t in range(100)]
    s.resent = [(t + 0.2, 1 + 1000 * t, 1 + 1000 * (t + 1)) for t in range(100)]  # each sent twice
    s.acks = [(t + 0.5, 1 + 1000 * (t + 1)) for t in range(100)]
    middle = [(r, g) for ms, r, g in sliding_rates(s, 10.0)[1] if 20 <= ms <= 90]
    assert all(r == pytest.approx(2 * g) for r, g in middle)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_draws_its_labels(kind):
    cp = connection_packets(NAGLE_ON, 0)
    text = svg(figure(cp, kind, 0, "nagle-on.pcap"))
    assert text.startswith("<svg") and "<metadata>" not in text
    assert not any(outside in text for outside in ('href="http', "url(http", "@import", "<script"))
    assert "TCP connection 0 of nagle-on.pcap" in text and "127.0.0.1" in text
    expected = {"tsg": ["delayed ACK (24, median 4", "stall: the sender waits (24", "data segment (50)"],
                "ack-delay": ["delayed ACK (24)", "40 to 200 ms"],
                "window": ["bytes in flight", "receive window"],
                "throughput": ["goodput", "bit/s"]}[kind]
    for label in expected:
        assert label in text


def test_a_direction_without_data_says_so():
    cp = connection_packets(EXAMPLES / "handshake.pcap", 0)
    cp = replace(cp, length=[0] * len(cp.number), ack_delays={})  # the handshakes and the FINs alone
    for kind, says in (("tsg", "no data segments this way"), ("ack-delay", "no ACK of data this way"),
                       ("throughput", "no data segments this way")):
        assert says in svg(figure(cp, kind, 0))


@pytest.mark.parametrize("fmt", sorted(MAGIC))
def test_the_command_writes_the_format_the_name_asks_for(tmp_path, fmt):
    out = tmp_path / f"plot.{fmt}"
    run = cli("plot", str(SACKED), "--connection", "1", "--kind", "ack-delay", "-o", str(out))
    assert run.returncode == 0, run.stderr
    assert out.read_bytes().startswith(MAGIC[fmt])
    assert f"{out}: ack-delay of connection 1, server to client" in run.stdout


@pytest.mark.parametrize("args, message", [
    (["-o", "x.jpg"], "a plot is written as .png, .svg, .pdf, not .jpg"),
    (["-o", "x"], "not a file without an extension"),
    (["-o", "x.png", "--connection", "5"], "no TCP connection #5 (it has 1: 0..0)"),
    (["-o", "x.png", "--kind", "pie"], "invalid choice: 'pie'"),
    (["-o", "/no/such/dir/x.png"], "No such file or directory"),
])
def test_bad_arguments_are_one_line_and_exit_2(args, message):
    run = cli("plot", str(NAGLE_ON), *args)
    assert run.returncode == 2
    assert message in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_matplotlib_is_loaded_by_the_plots_only():
    run = subprocess.run([sys.executable, "-c", "import sys, sockinspect._cli; "
                          "sys.exit('matplotlib' in sys.modules)"], capture_output=True, timeout=120)
    assert run.returncode == 0


def test_the_readmes_plot_commands_run_and_its_pictures_are_there(tmp_path):
    text = (ROOT / "README.md").read_text()
    commands = re.findall(r"^\$ sockinspect (plot .*)$", text, flags=re.M)
    assert len(commands) >= 2
    for command in commands:
        args = shlex.split(command)
        out = args.index("-o") + 1
        args[out] = str(tmp_path / args[out])
        run = subprocess.run([sys.executable, "-m", "sockinspect", *args], capture_output=True, text=True,
                             timeout=120, cwd=ROOT)
        assert run.returncode == 0, run.stderr
        assert Path(args[out]).read_bytes().startswith(MAGIC["png"])
    for picture in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text):
        assert (ROOT / picture).read_bytes().startswith(MAGIC["png"])


def test_a_file_name_is_text_not_mathematics(tmp_path):
    odd = tmp_path / "cost $5 and a$\\foo$.pcap"
    odd.write_bytes(NAGLE_ON.read_bytes())
    run = cli("plot", str(odd), "-o", str(tmp_path / "x.svg"))
    assert run.returncode == 0, run.stderr
    assert "cost $5 and a$\\foo$.pcap" in (tmp_path / "x.svg").read_text()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
@pytest.mark.parametrize("fmt", sorted(MAGIC))
def test_a_full_disk_is_one_line(tmp_path, fmt):
    full = tmp_path / f"full.{fmt}"
    full.symlink_to("/dev/full")
    run = cli("plot", str(NAGLE_ON), "-o", str(full))
    assert run.returncode == 2 and run.stderr.strip() == f"sockinspect: {full}: No space left on device"


def test_packets_without_timestamps_are_said_to_be_so():
    cp = connection_packets(NAGLE_ON, 0)
    cp = replace(cp, ts_ns=[None] * len(cp.number))
    for kind in KINDS:
        assert "no packet of this connection has a timestamp" in svg(figure(cp, kind, 0))


def test_sequence_numbers_go_on_past_4_gib(tmp_path):
    from helpers import CLIENT, SERVER, tcp, write_pcap

    t0, step = 1_700_000_000 * 10**9, 3 << 29  # 1.5 GiB further each time (less than 2 GiB: TCP's own limit)
    frames = [tcp(CLIENT, SERVER, 40000, 80, "S", 1000), tcp(SERVER, CLIENT, 80, 40000, "SA", 9, 1001),
              tcp(CLIENT, SERVER, 40000, 80, "A", 1001, 10)]
    for i in range(6):  # to 7.5 GiB: past 2**32 once
        seq = (1001 + i * step) & 0xFFFFFFFF
        frames += [tcp(CLIENT, SERVER, 40000, 80, "PA", seq, 10, b"x" * 100),
                   tcp(SERVER, CLIENT, 80, 40000, "A", 10, (seq + 100) & 0xFFFFFFFF)]
    path = write_pcap(tmp_path / "far.pcap", [(t0 + k * 10**6, f) for k, f in enumerate(frames)])
    cp = connection_packets(path, 0)
    data = [cp.seq[k] for k in range(len(cp.number)) if cp.length[k]]
    assert data == [1 + i * step for i in range(6)]
    assert [a for a, s in zip(cp.ack, cp.side, strict=True) if s == 1][-1] == 1 + 5 * step + 100


def test_a_long_connection_is_drawn_with_a_bounded_number_of_points():
    from sockinspect._plot import MAX_DRAWN, _thin

    s = Series(0)
    items = list(range(3 * MAX_DRAWN + 7))
    drawn = _thin(s, items)
    assert len(drawn) <= MAX_DRAWN + 1 and drawn[0] == 0 and drawn[-1] == items[-1] and s.thinned == 4
    assert _thin(s, items[:MAX_DRAWN]) == items[:MAX_DRAWN]
