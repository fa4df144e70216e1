"""Zeek's view of a TCP connection, to line sockinspect up with conn.log: each side's
TCP endpoint state and the ``history`` letters (Zeek's TCP.cc UpdateStateMachine,
update_history and ScaledHistoryEntry).

The endpoint-state transitions are :func:`transition`, one screen. A connection's
row of ``C`` holds both sides' states, history masks and letters.
"""

from __future__ import annotations

from .jit import kernel

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
# Zeek's TCP endpoint states (TCP_Endpoint.h), per side; sockinspect._metrics.conn_state reads them.
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)
HISTORY_MAX = 100  # letters kept per connection (Zeek keeps all; s/h/f/r repeat on new sequence numbers)
# Zeek's history masks (src/analyzer/protocol/tcp/TCP_Endpoint.h), one set per side.
H_SYN, H_FIN, H_RST, H_FIN_RST, H_DATA, H_ACK, H_MULTI = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40

# The columns of a connection row that this module owns (``Z_BASE`` is where they
# start in the connection table): per side (+0, +1) the state, the masks seen, the
# last SYN, FIN and RST sequence numbers; the scaled counters (retransmissions and
# zero windows, each with its next threshold) per side; the letters kept.
Z_STATE, Z_SEEN, Z_LAST_SYN, Z_LAST_FIN, Z_LAST_RST = 0, 2, 4, 6, 8
Z_SCALED = 10  # 4 per side: retransmissions, threshold, zero windows, threshold
Z_LETTERS = 18
# The letters, a byte each, 7 to a column (56 bits: a number in int64 whatever the byte).
LETTERS_PER_WORD = 7
Z_HISTORY = 19
Z_WIDTH = Z_HISTORY + -(-HISTORY_MAX // LETTERS_PER_WORD)



@kernel
def letter(c, base, s, code):  # noqa: ANN001, ANN201
    """Append a history letter (``code``, ASCII) from side ``s``: a byte, the side in its top bit."""
    k = c[base + Z_LETTERS]
    if k < HISTORY_MAX:
        c[base + Z_LETTERS] = k + 1
        c[base + Z_HISTORY + k // LETTERS_PER_WORD] |= (code | s << 7) << (8 * (k % LETTERS_PER_WORD))


def history(c: list[int], base: int) -> list[tuple[int, str]]:
    """The letters kept in row ``c``, as (side, letter)."""
    out = []
    for k in range(c[base + Z_LETTERS]):
        b = c[base + Z_HISTORY + k // LETTERS_PER_WORD] >> (8 * (k % LETTERS_PER_WORD)) & 0xFF
        out.append((b >> 7, chr(b & 0x7F)))
    return out


@kernel
def once(c, base, s, mask, code):  # noqa: ANN001, ANN201
    """Record the letter the first time; 1 if it had been recorded before (Zeek's CheckHistory)."""
    if c[base + Z_SEEN + s] & mask:
        return 1
    c[base + Z_SEEN + s] |= mask
    letter(c, base, s, code)
    return 0


@kernel
def scaled(c, base, s, i, code):  # noqa: ANN001, ANN201
    """Zeek's logarithmic letters: at the 1st, 10th, 100th, ... occurrence."""
    k = base + Z_SCALED + 4 * s + i
    c[k] += 1
    if c[k] == c[k + 1]:
        c[k + 1] *= 10
        letter(c, base, s, code)


@kernel
def packet(c, base, s, orig, orig_side, flags, seq, n, win, resent):  # noqa: ANN001, ANN201
    """One packet from side ``s`` (``orig``: sent by the originator, ``orig_side``)."""
    transition(c, base, s, orig, orig_side, flags, n)
    bits = (1 if flags & SYN else 0) + (1 if flags & FIN else 0) + (1 if flags & RST else 0)
    if bits > 1:
        if flags & FIN and flags & RST:
            once(c, base, s, H_FIN_RST, 105)  # i
        else:
            once(c, base, s, H_MULTI, 113)  # q
    elif bits:
        if flags & SYN:
            code = 104 if flags & ACK else 115  # h, s
            if once(c, base, s, H_SYN, code) and seq != c[base + Z_LAST_SYN + s]:
                letter(c, base, s, code)
            c[base + Z_LAST_SYN + s] = seq
        elif flags & FIN:
            end = (seq + n) & 0xFFFFFFFF  # a FIN's number is after its data
            if once(c, base, s, H_FIN, 102) and end != c[base + Z_LAST_FIN + s]:  # f
                letter(c, base, s, 102)
            c[base + Z_LAST_FIN + s] = end
        else:
            if once(c, base, s, H_RST, 114) and seq != c[base + Z_LAST_RST + s]:  # r
                letter(c, base, s, 114)
            c[base + Z_LAST_RST + s] = seq
    elif n:
        once(c, base, s, H_DATA, 100)  # d
    elif flags & ACK:
        once(c, base, s, H_ACK, 97)  # a
    # A zero window counts unless on a SYN or RST, from a reset side, or after the peer's FIN.
    if (win == 0 and not flags & (SYN | RST) and c[base + Z_STATE + s] != RESET
            and c[base + Z_STATE + 1 - s] != CLOSED):
        scaled(c, base, s, 2, 119)  # w
    if resent:
        scaled(c, base, s, 0, 116)  # t


@kernel
def transition(c, base, s, orig, orig_side, flags, n):  # noqa: ANN001, ANN201
    """One endpoint's state after its packet: Zeek's table, for the states conn_state reads."""
    st = c[base + Z_STATE + s]
    peer = c[base + Z_STATE + 1 - s]
    if st == INACTIVE:
        if flags & SYN:
            if orig:
                st = SYN_ACK_SENT if flags & ACK else SYN_SENT
            else:  # the reply to a SYN: a SYN/ACK, or a bare SYN (split handshake, simultaneous open)
                if peer == SYN_SENT:
                    c[base + Z_STATE + 1 - s] = ESTABLISHED
                st = ESTABLISHED
        if flags & FIN:
            st = CLOSED
        if flags & RST:
            st = RESET
        if st == INACTIVE:  # no control flag moved it
            if not orig and not n and c[base + Z_STATE + orig_side] == SYN_SENT:
                pass  # an ACK of the SYN before the SYN/ACK: not yet a partial connection
            elif flags & ACK and c[base + Z_STATE + 1 - s] == ESTABLISHED:
                st = ESTABLISHED  # the SYN was missed, the SYN/ACK was not
            else:
                st = PARTIAL
    elif st in (SYN_SENT, SYN_ACK_SENT):
        if flags & FIN:
            st = CLOSED
        if flags & RST:
            st = RESET
    elif st in (ESTABLISHED, PARTIAL):
        if flags & SYN and st == PARTIAL and peer == INACTIVE and not flags & ACK:
            st = SYN_SENT
        if flags & FIN and not flags & RST:
            st = CLOSED
        if flags & RST:
            st = RESET
    elif st == CLOSED and flags & RST:
        st = RESET
    c[base + Z_STATE + s] = st
