"""Facts about the Linux TCP stack that the analysis relies on, in one place.

Sources (Linux 6.x):
- include/net/tcp.h: ``TCP_DELACK_MIN = HZ/25`` (40 ms), ``TCP_DELACK_MAX = HZ/5``
  (200 ms), ``TCP_ATO_MIN = HZ/25``.
- net/ipv4/tcp_input.c, ``__tcp_ack_snd_check``: an ACK is sent at once when more
  than one full-sized segment (rcv_mss) is unacknowledged, or in quick-ACK mode
  (``tcp_in_quickack_mode``), which a new connection starts in
  (``tcp_enter_quickack_mode`` via ``tcp_incr_quickack``, up to 16 quick ACKs).
- Documentation/networking/ip-sysctl.rst: ``ip_local_port_range`` defaults to
  32768 60999.
- RFC 6335 section 6: the IANA dynamic/private (ephemeral) range 49152-65535.
"""

DELAYED_ACK_MIN_NS = 40_000_000
DELAYED_ACK_MAX_NS = 200_000_000
QUICKACK_MAX_SEGMENTS = 16
# An ACK this late after the data it covers is taken for the delayed-ACK timer:
# 5 ms below its 40 ms minimum, for timer slack and the capture point's clock.
DELAYED_ACK_THRESHOLD_NS = DELAYED_ACK_MIN_NS - 5_000_000
# TCP timestamps take 12 bytes of options (10 + 2 NOPs) in every segment.
TIMESTAMP_OPTION_BYTES = 12

LINUX_EPHEMERAL_PORTS = range(32768, 61000)
IANA_EPHEMERAL_PORTS = range(49152, 65536)
WELL_KNOWN_PORTS = range(0, 1024)
