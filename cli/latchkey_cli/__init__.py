"""``latchkey``: the command-line client of a Latchkey server (its public HTTP API only)."""

__version__ = "0.1.0"
