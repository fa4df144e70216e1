"""Facts about Linux that sockinspect relies on, in one place: the TCP stack's
(for the analysis) and process control's (for run-and-capture).

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
- include/uapi/linux/prctl.h: ``PR_SET_PDEATHSIG`` is 1; prctl(2): the signal
  comes when the *thread* that forked the child ends, it survives execve(2)
  unless the credentials change, and a fork(2) clears it.
- proc(5), /proc/PID/stat: field 3 is the state (``Z`` zombie, ``X`` dead),
  field 22 the start time in clock ticks after boot; the command name (field 2)
  is in parentheses and may itself hold spaces and parentheses.
- signal(7), "Standard signals": the default action of every signal ends the
  process except those listed in ``SIGNALS_THAT_DO_NOT_END``; of those that
  do, the hardware faults are raised by the faulting instruction itself and a
  handler that returns makes it fault again.
"""

DELAYED_ACK_MIN_NS = 40_000_000
DELAYED_ACK_MAX_NS = 200_000_000
QUICKACK_MAX_SEGMENTS = 16
# An ACK this late after the data it covers is taken for the delayed-ACK timer:
# 5 ms below its 40 ms minimum, for timer slack and the capture point's clock.
DELAYED_ACK_THRESHOLD_NS = DELAYED_ACK_MIN_NS - 5_000_000
# RFC 1122 4.2.3.2: "the delay MUST be less than 0.5 seconds" (every stack's timer is below it).
DELAYED_ACK_LIMIT_NS = 500_000_000
# TCP timestamps take 12 bytes of options (10 + 2 NOPs) in every segment.
TIMESTAMP_OPTION_BYTES = 12

LINUX_EPHEMERAL_PORTS = range(32768, 61000)
IANA_EPHEMERAL_PORTS = range(49152, 65536)
WELL_KNOWN_PORTS = range(0, 1024)

PR_SET_PDEATHSIG = 1
PROC_STAT_STATE, PROC_STAT_START = 3, 22  # 1-based field numbers of /proc/PID/stat
SIGNALS_THAT_DO_NOT_END = frozenset({"SIGCHLD", "SIGCONT", "SIGURG", "SIGWINCH",  # ignored
                                     "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU",  # stop
                                     "SIGKILL"})  # cannot be caught
FAULT_SIGNALS = frozenset({"SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGTRAP", "SIGSYS"})
