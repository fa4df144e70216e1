"""The delayed-ACK and stall rules at their edges (sockinspect.analysis.acks): the
receiver's round trip from the capture point, RFC 1122's 0.5 s bound, and a sender
that had more data in flight than the late ACK covers."""

from __future__ import annotations

from helpers import CLIENT, SERVER, tcp, write_pcap

from sockinspect import analyze

MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000
C, S = 40000, 5000


def _run(tmp_path, to_server_ms: float, events: list[tuple[float, str, int, int]]):
    """A handshake whose SYN -> SYN/ACK takes ``to_server_ms`` (the capture beside the
    client), then ``events``: (ms, who, bytes of data, bytes the other side acks)."""
    frames = [(T0, tcp(CLIENT, SERVER, C, S, "S", 1000, options=[("MSS", 1460)])),
              (T0 + int(to_server_ms * MS), tcp(SERVER, CLIENT, S, C, "SA", 5000, 1001, options=[("MSS", 1460)])),
              (T0 + int((to_server_ms + 0.1) * MS), tcp(CLIENT, SERVER, C, S, "A", 1001, 5001))]
    sent = {"c": 1001, "s": 5001}
    acked = {"c": 5001, "s": 1001}
    for ms, who, n, ack in events:
        acked[who] += ack
        src, dst, sport, dport = (CLIENT, SERVER, C, S) if who == "c" else (SERVER, CLIENT, S, C)
        frames.append((T0 + int(ms * MS), tcp(src, dst, sport, dport, "PA" if n else "A", sent[who], acked[who],
                                               b"x" * n)))
        sent[who] += n
    return analyze(write_pcap(tmp_path / "t.pcap", frames)).tcp.only()


def _write_write_read(hold_ms: float, leg_ms: float) -> list[tuple[float, str, int, int]]:
    """Three requests of two small writes; the server acks each first one after ``leg_ms``
    + ``hold_ms``, the second write follows that ACK at once, then the reply."""
    events, t = [], 1000.0
    for _ in range(3):
        ack_at = t + leg_ms + hold_ms
        events += [(t, "c", 10, 0), (ack_at, "s", 0, 10), (ack_at + 0.2, "c", 90, 0),
                   (ack_at + leg_ms + 1, "s", 100, 90), (ack_at + 2 * leg_ms + 1.5, "c", 0, 100)]
        t = ack_at + 2 * leg_ms + 10
    return events


def test_the_receivers_round_trip_is_not_taken_for_a_delayed_ack(tmp_path):
    conn = _run(tmp_path, 100, _write_write_read(hold_ms=5, leg_ms=100))  # ACKs 105 ms after: the path's
    assert conn.c2s.delayed_acks == 0 and conn.c2s.stalls == 0


def test_a_receiver_holding_its_ack_is_seen_through_the_round_trip(tmp_path):
    conn = _run(tmp_path, 100, _write_write_read(hold_ms=40, leg_ms=100))
    assert conn.c2s.delayed_acks == 3 and conn.c2s.stalls == 3
    assert all(139 <= s.ack_delay_ms <= 141 for s in conn.c2s.stall_list)  # the delay as captured


def test_an_ack_later_than_half_a_second_is_not_the_timer(tmp_path):
    assert _run(tmp_path, 0.02, _write_write_read(hold_ms=150, leg_ms=0.02)).c2s.delayed_acks == 3
    late = _run(tmp_path, 0.02, _write_write_read(hold_ms=600, leg_ms=0.02))
    assert late.c2s.delayed_acks == 0 and late.c2s.stalls == 0


def test_no_stall_while_the_sender_had_more_data_in_flight(tmp_path):
    events = []
    t = 1000.0
    for _ in range(3):  # a small segment, another 1 ms later, then a late ACK of the first only
        events += [(t, "c", 10, 0), (t + 1, "c", 10, 0), (t + 42, "s", 0, 10), (t + 42.2, "c", 10, 0),
                   (t + 43, "s", 0, 20)]
        t += 100
    conn = _run(tmp_path, 0.02, events)
    assert conn.c2s.delayed_acks == 6  # the receiver did hold them (the second ACKs cover data 42 ms old)
    assert conn.c2s.stalls == 0  # but the sender was not waiting: it had sent more since
