"""Pure X12 translation: read, validate, acknowledge and map to and from canonical JSON.

No I/O beyond the stream it is handed, and no imports from the server packages, so it can be
used as a library and tested in microseconds.
"""

from __future__ import annotations

from importlib.machinery import EXTENSION_SUFFIXES


def engine_build() -> str:
    """How this install's engine runs: "compiled" (``EDIGATE_COMPILE=1`` builds) or "pure Python"."""
    from translators.x12 import reader

    return "compiled" if str(reader.__file__).endswith(tuple(EXTENSION_SUFFIXES)) else "pure Python"
