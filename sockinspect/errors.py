"""Exceptions sockinspect raises. Input problems inside a readable file are
counted as defects on the report instead; these are for what cannot go on."""


class SockinspectError(Exception):
    """Base class of every error sockinspect raises on purpose."""


class CaptureFormatError(SockinspectError):
    """The file cannot be read as a capture at all (missing, empty, not pcap/pcapng)."""


class UsageError(SockinspectError):
    """A bad argument or rule given by the user."""
