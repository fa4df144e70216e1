"""Connections retire once over: a connection that closed (both FINs acknowledged) and
then stayed quiet for 1 s of capture time, or ended otherwise (a RST, FINs not both
acknowledged) and stayed quiet for 5 s, is finished: its record made (streamed with
``analyze --jsonl``) and its rows reused, so memory follows the connections open at once."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
from helpers import CLIENT, SERVER, T0, full_connection, handshake, tcp, write_pcap

from sockinspect import analyze
from sockinspect._cli import main
from sockinspect._decode import Decoder, Packet
from sockinspect._read import CaptureReader
from sockinspect._schema import for_document, load
from sockinspect.analysis.engine import Engine
from sockinspect.analysis.tcp import CLOSED_QUIET_NS, ENDED_QUIET_NS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "captures" / "examples").glob("*.pcap"))
RETIRED = ROOT / "tests" / "data" / "engine" / "retired.pcap"
MS = 1_000_000


def timed(frames: list[bytes], start: int, gap: int = MS) -> list[tuple[int, bytes]]:
    return [(start + i * gap, f) for i, f in enumerate(frames)]


def after_close(tmp_path: Path, quiet_ns: int, last_ack: bool = True) -> list:
    """A whole connection, then one more packet on its ports ``quiet_ns`` after its last."""
    frames = timed(full_connection()[: None if last_ack else -1], T0)
    late = tcp(CLIENT, SERVER, 40000, 5000, "A", 1007, 5008)
    frames.append((frames[-1][0] + quiet_ns, late))
    return list(analyze(write_pcap(tmp_path / "late.pcap", frames)).tcp)


def test_a_packet_long_after_the_close_starts_another_connection(tmp_path):
    first, second = after_close(tmp_path, CLOSED_QUIET_NS + MS)
    assert (first.state, first.c2s.packets + first.s2c.packets) == ("SF", 8)
    assert second.inferred and second.c2s.packets + second.s2c.packets == 1


def test_a_packet_soon_after_the_close_belongs_to_it(tmp_path):
    only, = after_close(tmp_path, CLOSED_QUIET_NS - MS)
    assert only.c2s.packets + only.s2c.packets == 9


def test_a_close_not_seen_acknowledged_waits_longer(tmp_path):
    assert len(after_close(tmp_path, ENDED_QUIET_NS - MS, last_ack=False)) == 1
    assert len(after_close(tmp_path, ENDED_QUIET_NS + MS, last_ack=False)) == 2


@pytest.mark.parametrize(("quiet_ns", "connections"), [(ENDED_QUIET_NS - MS, 1), (ENDED_QUIET_NS + MS, 2)])
def test_after_a_reset_too(tmp_path, quiet_ns, connections):
    """Packets in flight, and RSTs injected by a middlebox, may follow a RST for a while
    (as in the corpus's zeek__rst-inject-rae.pcap, whose SYN/ACK comes 1 s after one)."""
    frames = timed([*handshake(), tcp(SERVER, CLIENT, 5000, 40000, "R", 5001)], T0)
    frames.append((frames[-1][0] + quiet_ns, tcp(CLIENT, SERVER, 40000, 5000, "A", 1001, 5001)))
    assert len(analyze(write_pcap(tmp_path / "rst.pcap", frames)).tcp) == connections


def test_an_open_connection_is_never_over_for_being_quiet(tmp_path):
    """A keep-alive idle for an hour is still the same connection (it never ended)."""
    frames = timed(handshake(), T0)
    frames.append((T0 + 3600 * 10**9, tcp(CLIENT, SERVER, 40000, 5000, "PA", 1001, 5001, b"still here")))
    only, = analyze(write_pcap(tmp_path / "idle.pcap", frames)).tcp
    assert only.c2s.payload_bytes == 10


def sequential(count: int, same_ports: bool) -> list[tuple[int, bytes]]:
    """``count`` whole connections, each starting 6 s after the previous one."""
    frames = []
    for k in range(count):
        port = 40000 if same_ports else 40000 + k
        frames += timed(full_connection(cport=port, cseq=1000 + 7919 * k, request=b"x" * (k + 1)),
                        T0 + k * (ENDED_QUIET_NS + 10**9))
    return frames


def decoded(frames: list[tuple[int, bytes]], tmp_path: Path) -> list[Packet]:
    path = write_pcap(tmp_path / "seq.pcap", frames)
    decoder = Decoder()
    return [p for n, f in enumerate(CaptureReader(path), 1) if type(p := decoder.decode(f, n)) is Packet]


@pytest.mark.parametrize("same_ports", [False, True])
def test_retired_rows_are_reused_and_records_are_as_if_alone(tmp_path, same_ports):
    pkts = decoded(sequential(60, same_ports), tmp_path)
    streamed = []
    engine = Engine(on_connection=streamed.append)
    for k in range(0, len(pkts), 8):  # a connection's worth at a time: each retires the one before
        engine.feed_chunk(pkts[k: k + 8])
        assert len(streamed) >= k // 8 - 1 - len(engine.C) // 4  # out before the capture ends (in batches)
    tcp_records, _ = engine.finish()
    assert not tcp_records  # all went to on_connection
    assert [c.index for c in streamed] == list(range(60))
    assert len(engine.C) <= 16  # rows reused, not one per connection
    for c in streamed[::7]:
        alone = Engine()
        alone.feed_chunk(pkts[8 * c.index: 8 * c.index + 8])
        (expected,), _ = alone.finish()
        assert replace(c, index=0) == expected


def test_the_stored_capture_of_reused_rows(tmp_path):
    """tests/data/engine/retired.pcap (in test_engine's compiled-vs-Python comparison):
    40 connections on the same ports, 6 s apart, and a connection open throughout."""
    caps = analyze(RETIRED)
    assert len(caps.tcp) == 41
    assert [c.c2s.payload_bytes for c in caps.tcp if c.client.port == 40000] == list(range(1, 41))
    longest = caps.tcp.by_port(41000).only()
    assert longest.c2s.segments == 40 and longest.state == "S1"


def make_retired(path: Path = RETIRED) -> None:
    frames = sequential(40, same_ports=True)
    for k in range(40):  # one data segment of a long connection every 6 s, ACKed
        at = T0 + k * (ENDED_QUIET_NS + 10**9) + 500 * MS
        frames += [(at, tcp(CLIENT, SERVER, 41000, 5000, "PA", 1001 + k, 5001, b"y")),
                   (at + MS, tcp(SERVER, CLIENT, 5000, 41000, "A", 5001, 1002 + k))]
    frames += timed(handshake(cport=41000), T0 - 10 * MS)
    write_pcap(path, sorted(frames, key=lambda f: f[0]))


def jsonl(argv: list[str], capsys) -> tuple[int, list[dict]]:
    code = main(["analyze", "--jsonl", *argv])
    return code, [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_jsonl_lines_are_the_json_documents_objects(capsys):
    code, lines = jsonl([str(p) for p in EXAMPLES] + [str(RETIRED)], capsys)
    assert code == 0
    main(["analyze", "--json", *map(str, EXAMPLES), str(RETIRED)])
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    item = load()["$defs"]["capture"]["properties"]
    for doc in documents:
        mine = [line for line in lines if line["file"] == doc["file"]]
        assert [line["record"] for line in mine] == ["tcp"] * len(doc["tcp"]) + ["udp"] * len(doc["udp"]) + ["capture"]
        body = [{k: v for k, v in line.items() if k not in ("schema_version", "record", "file")} for line in mine]
        assert sorted(body[: len(doc["tcp"])], key=lambda c: c["index"]) == doc["tcp"]
        assert body[len(doc["tcp"]): -1] == doc["udp"]
        rest = {k: v for k, v in doc.items() if k not in ("tcp", "udp", "schema_version", "file")}
        assert body[-1] == {**rest, "tcp_connections": len(doc["tcp"]), "udp_flows": len(doc["udp"])}
        for conn in body[: len(doc["tcp"])]:
            jsonschema.validate({"tcp": [conn]}, {**for_document(load(), "capture"), "required": [],
                                                  "properties": {"tcp": item["tcp"]}})
    assert any(doc["udp"] for doc in documents) and any(len(doc["tcp"]) > 1 for doc in documents)


def test_jsonl_selects_as_json_does(capsys):
    code, lines = jsonl([str(RETIRED), "--port", "41000"], capsys)
    assert code == 0 and [line["record"] for line in lines] == ["tcp", "capture"]
    assert lines[-1]["tcp_connections"] == 41
    code, lines = jsonl([str(RETIRED), "--connection", "3"], capsys)
    assert code == 0 and [line.get("index") for line in lines] == [3, None]


def test_jsonl_names_a_missing_connection(capsys):
    assert main(["analyze", "--jsonl", str(RETIRED), "--connection", "41"]) == 2
    assert "no TCP connection #41 (it has 41: 0..40)" in capsys.readouterr().err


if __name__ == "__main__":
    make_retired()


def test_taking_histogram_entries_out_keeps_the_rest_findable():
    """histograms.take removes entries in place; every other entry must stay on its probe
    path (a table crowded to half full, so that clusters wrap around its end)."""
    import random

    from sockinspect.analysis import histograms, jit
    from sockinspect.analysis.tables import (
        G_HIST_USED,
        G_WIDTH,
        H_DELAY,
        H_LATENCY,
        H_SIZE,
        HIST_WIDTH,
        new_flags,
        new_table,
    )

    rng = random.Random(7)
    compiled = jit.compiled()  # in the mode an earlier test may have left the kernels in
    for _ in range(30):
        HT, G = new_table(64, HIST_WIDTH, compiled), new_table(1, G_WIDTH, compiled)
        owners = new_flags(8, compiled)
        for k in range(8):
            owners[k] = rng.randrange(2)
        entries = {}
        while G[0][G_HIST_USED] < 32:
            kind = rng.choice((H_DELAY, H_SIZE, H_LATENCY))
            ident = rng.randrange(16) if kind != H_LATENCY else rng.randrange(8)
            code = rng.randrange(50)
            histograms.add(HT, G, kind, ident, code, 1)
            key = histograms.key_of(kind, ident, code)
            entries[key] = entries.get(key, 0) + 1
        out = new_table(32, HIST_WIDTH, compiled)
        taken = histograms.take(HT, G, owners, out)

        def owned(key: int, owners: list = owners) -> bool:
            kind, ident = key >> histograms.KIND_SHIFT, (key >> histograms.ID_SHIFT) & histograms.ID_MASK
            return owners[ident // 2 if kind != H_LATENCY else ident] == 1

        assert {int(k): int(n) for k, n in out[:taken]} == {k: n for k, n in entries.items() if owned(k)}
        kept = {k: n for k, n in entries.items() if not owned(k)}
        assert G[0][G_HIST_USED] == len(kept) == sum(1 for row in HT if row[1])
        for key, n in kept.items():
            assert list(HT[histograms.row_of(HT, key)]) == [key, n]


def test_json_made_as_connections_end_is_the_whole_document(capsys):
    """analyze --json turns each connection into JSON as it ends; the document is the same
    as from the records kept to the end (retired.pcap's first connection ends last)."""
    from sockinspect._documents import capture_document, dumps

    for path in [*EXAMPLES, RETIRED]:
        assert main(["analyze", "--json", str(path)]) == 0
        cap = analyze(path)
        assert capsys.readouterr().out == dumps(capture_document(cap, cap.tcp, cap.udp)) + "\n"
    assert analyze(RETIRED).tcp[0].client.port == 41000


@pytest.mark.parametrize("option", [["--jsonl"], ["--connection", "0"]])
def test_compare_refuses_what_it_cannot_show(capsys, option):
    assert main(["analyze", "--compare", str(EXAMPLES[0]), str(EXAMPLES[1]), *option]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"sockinspect analyze: error: --compare and {option[0]} do not go together"
