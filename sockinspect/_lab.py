"""The answers to Part 4 of the lab (LAB_SPEC.md), in plain sentences with the
figures measured in this run. Pure: takes the runs, returns text."""

from __future__ import annotations

from ._delays import held_decimals_ms
from ._metrics import stats_from_values
from ._model import TcpConnection
from ._run import Run

MISSING = "not measured in this run (run 'sockinspect run-and-capture lab')"


TITLE = "Part 4: the lab's questions, answered from this run's captures"


def lab_parts(results: dict[str, list[Run]]) -> list[tuple[str, str]]:
    """(question letter, answer) for Part 4 a-g."""
    answer = (_ports, _flow, _socket_call, _bind_call, _udp_vs_tcp, _nagle, _delayed_ack)
    return [(letter, part(results)) for letter, part in zip("abcdefg", answer, strict=True)]


def lab_answers(results: dict[str, list[Run]]) -> str:
    parts = [TITLE + "\n" + "=" * len(TITLE)] + [f"{letter}) {text}" for letter, text in lab_parts(results)]
    return "\n\n".join(parts)


def _conns(results: dict[str, list[Run]], name: str) -> list[TcpConnection]:
    return [c for run in results.get(name, []) for c in run.analysis.tcp]


def _ms(value: float | None) -> str:
    """An exact duration, to the µs."""
    return "-" if value is None else f"{value:.3f} ms"


def _sketched_ms(value: float | None) -> str:
    """A median or p95 from a bounded sketch: only the digits it holds (docs/json.md)."""
    return "-" if value is None else f"{value:.{max(held_decimals_ms(value), 0)}f} ms"


def _median(values: list[float]) -> float | None:
    return stats_from_values([v for v in values if v is not None]).median


def _ports(results: dict[str, list[Run]]) -> str:
    conns = _conns(results, "handshake") or _conns(results, "echo")
    if not conns:
        return MISSING
    ports = [c.client.port for c in conns]
    servers = sorted({c.server.port for c in conns})
    linux = sum(c.client_port_ephemeral_linux for c in conns)
    shown = ", ".join(map(str, ports[:8])) + (", ..." if len(ports) > 8 else "")
    return (
        f"The server listened on port {', '.join(map(str, servers))} and answered every one of the "
        f"{len(conns)} connections from that same port. The clients used {len(set(ports))} different ports "
        f"({shown}), chosen by the client's kernel: {linux} of {len(conns)} lie in Linux's ephemeral range "
        f"32768-60999 (net.ipv4.ip_local_port_range). The client never chose or bound its port; the kernel "
        f"picked one at connect()."
    )


def _flow(results: dict[str, list[Run]]) -> str:
    sentences = []
    echo = _conns(results, "echo")
    if echo:
        # The parts of one connection's handshake (the median one by RTT), so that they add up.
        timed = sorted((c for c in echo if c.handshake.rtt_ms is not None), key=lambda c: c.handshake.rtt_ms)
        hs = timed[(len(timed) - 1) // 2].handshake if timed else echo[0].handshake
        sentences.append(
            f"Part 2 (echo): each of the {len(echo)} requests is its own TCP connection. It opens with the "
            f"three-way handshake: SYN, then SYN/ACK after {_ms(hs.syn_synack_ms)}, then the client's ACK "
            f"{_ms(hs.synack_ack_ms)} later (handshake RTT {_ms(hs.rtt_ms)}, the median of the {len(echo)} "
            f"connections). The client then sends its "
            f"request ({', '.join(str(c.c2s.payload_bytes) for c in echo)} bytes) and the server its reply "
            f"({', '.join(str(c.s2c.payload_bytes) for c in echo)} bytes); each side acknowledges what it "
            f"received. Teardown: the {_closer(echo)} sends the first FIN, the other side answers with its own "
            f"FIN, and each FIN is acknowledged; states: {_states(echo)} (SF = closed by FIN both ways)."
        )
    files = [(run, c) for run in results.get("file", []) for c in run.analysis.tcp]
    if files:
        run, c = files[0]
        size = run.facts.get("size")
        sentences.append(
            f"Part 3 (file): one connection; handshake RTT {_ms(c.handshake.rtt_ms)}; the client sends the "
            f"{size} bytes of the file (the capture holds {c.c2s.payload_bytes} payload bytes client to server, "
            f"in {c.c2s.segments} segments of up to {c.c2s.sizes.max} bytes, MSS {c.c2s.sizes.mss}), the server "
            f"sends {c.s2c.packets} packets back ({c.s2c.payload_bytes} payload bytes: ACKs and its "
            f"confirmation). The {c.closed_by or 'nobody'} closes first; state {c.state}. The received copy's "
            f"sha256 matched the original: {run.facts.get('verified', False)}."
        )
    return " ".join(sentences) if sentences else MISSING


def _closer(conns: list[TcpConnection]) -> str:
    who = {c.closed_by for c in conns}
    return who.pop() if len(who) == 1 else "/".join(sorted(w or "nobody" for w in who))


def _states(conns: list[TcpConnection]) -> str:
    return ", ".join(c.state for c in conns)


def _syscalls(results: dict[str, list[Run]]) -> dict[str, list[str]]:
    for run in results.get("echo", []):
        if "syscalls" in run.facts:
            return run.facts["syscalls"]
    return {}


def _socket_call(results: dict[str, list[Run]]) -> str:
    calls = _syscalls(results)
    if not calls:
        return ("socket() returns a file descriptor, a small integer naming the new socket in the process "
                "(Python wraps it in a socket object); -1 on error. (No system-call trace in this run: "
                "strace is not installed.)")
    server = next((c for c in calls.get("server", []) if c.startswith("socket(")), None)
    client = next((c for c in calls.get("client", []) if c.startswith("socket(")), None)
    return (
        "socket() returns a file descriptor: a small integer that names the new socket in the calling process "
        "(Python wraps it in a socket object); -1 on error. Traced in this run: server `"
        f"{server}`, client `{client}`."
    )


def _bind_call(results: dict[str, list[Run]]) -> str:
    calls = _syscalls(results)
    if not calls:
        return ("bind() returns 0 on success and -1 on error (with errno); the server calls it to take its "
                "listening address and port. (No system-call trace in this run: strace is not installed.)")
    server_bind = [c for c in calls.get("server", []) if c.startswith("bind(")]
    client_bind = [c for c in calls.get("client", []) if c.startswith("bind(")]
    listen = next((c for c in calls.get("server", []) if c.startswith("listen(")), None)
    connect = next((c for c in calls.get("client", []) if c.startswith("connect(")), None)
    chosen = " (port 0: the kernel chose the listening port)" if server_bind and "htons(0)" in server_bind[0] else ""
    return (
        "bind() returns 0 on success, -1 on error (with errno). The server calls it: `"
        f"{server_bind[0] if server_bind else '(not seen)'}`{chosen}, then `{listen}`. The client "
        + ("never calls bind(): it calls `" + f"{connect}`, and its kernel binds an ephemeral port then."
           if not client_bind else f"calls `{client_bind[0]}` too.")
    )


def _udp_vs_tcp(results: dict[str, list[Run]]) -> str:
    runs = results.get("udp-vs-tcp", [])
    udp = [f for run in runs if run.facts.get("transport") == "udp" for f in run.analysis.udp]
    tcp = [c for run in runs if run.facts.get("transport") == "tcp" for c in run.analysis.tcp]
    if not udp or not tcp:
        return MISSING
    udp_rtt = _median([f.rtt_ms.median for f in udp])
    first_reply = [_syn_to_reply_ms(c) for c in tcp]
    hs = _median([c.handshake.rtt_ms for c in tcp])
    return (
        f"UDP: a message and its echo took a median {_sketched_ms(udp_rtt)} ({sum(f.rtt_ms.count for f in udp)} "
        f"round trips, no connection set-up). TCP with a new connection per message: {_ms(_median(first_reply))} "
        f"median from the SYN to the reply, of which the handshake alone took {_ms(hs)} before the first data "
        f"byte could be sent, and each connection also needs its teardown ({len(tcp)} connections). For one "
        f"urgent message UDP is faster: no handshake, the first datagram carries the data. TCP brings "
        f"delivery guarantees UDP does not."
    )


def _syn_to_reply_ms(c: TcpConnection) -> float | None:
    syn, reply = c.handshake.syn_ts_ns, c.s2c.first_data_ts_ns
    return None if syn is None or reply is None else (reply - syn) / 1e6


def _nagle(results: dict[str, list[Run]]) -> str:
    on, off = _nagle_pair(results)
    if on is None or off is None:
        return MISSING
    e_on, e_off = on.c2s.nagle_evidence, off.c2s.nagle_evidence
    return (
        "Nagle's algorithm stops a sender from flooding the network with tiny segments: while a small "
        "(sub-MSS) segment is unacknowledged, further small data is held back and coalesced, then sent when "
        "the ACK arrives. Measured: each request is two writes (10 and 90 bytes). With Nagle on, "
        f"{e_on.held_until_ack} of the client's {on.c2s.segments} small segments waited for the ACK of the "
        f"previous one and left right after it (verdict: {on.c2s.nagle}). With TCP_NODELAY, "
        f"{e_off.small_while_small_unacked} small segments left while the previous one was still "
        f"unacknowledged (verdict: {off.c2s.nagle}): TCP_NODELAY turns the algorithm off."
    )


def _delayed_ack(results: dict[str, list[Run]]) -> str:
    on, off = _nagle_pair(results)
    if on is None or off is None:
        return MISSING
    delays = [s.ack_delay_ms for s in on.c2s.stall_list]
    return (
        "Write-write-read with Nagle on: the second write waits for the ACK of the first, but the receiver "
        "delays that ACK (Linux: at least 40 ms) hoping to piggyback it on data, which it cannot send before "
        f"it has the whole request. Measured: the server delayed {on.c2s.delayed_acks} ACKs (median "
        f"{_ms(_median(delays))}), and {on.c2s.stalls} requests stalled, losing {on.c2s.stall_ms_total:.1f} ms "
        f"in all; the median request took {_sketched_ms(on.request_latency_ms.median)} with Nagle on against "
        f"{_sketched_ms(off.request_latency_ms.median)} with TCP_NODELAY ({off.c2s.stalls} stalls). Linux's "
        "quick-ACK mode at connection start acknowledges the first segments at once, which is why the first request "
        "or two do not stall."
    )


def nagle_runs(results: dict[str, list[Run]]) -> tuple[Run | None, Run | None]:
    """The write-write-read runs with Nagle on, and with TCP_NODELAY (None: not run)."""
    pair: dict[bool, Run] = {}
    for run in results.get("nagle", []):
        if run.analysis.tcp:
            pair[bool(run.facts.get("nodelay"))] = run
    return pair.get(False), pair.get(True)


def _nagle_pair(results: dict[str, list[Run]]) -> tuple[TcpConnection | None, TcpConnection | None]:
    on, off = nagle_runs(results)
    return (on.analysis.tcp[0] if on else None), (off.analysis.tcp[0] if off else None)
