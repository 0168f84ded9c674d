"""One exception root for everything streamer raises on purpose."""

__all__ = ["StreamerError", "ConfigError", "CheckpointError"]


class StreamerError(Exception):
    """Root of every error streamer raises deliberately."""


class ConfigError(StreamerError):
    """A setting is missing, malformed or contradictory."""


class CheckpointError(StreamerError):
    """A checkpoint file is corrupt, truncated, foreign or of an unknown format version."""
