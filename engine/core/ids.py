"""Row ids: 32 hex digits laid out as a UUID version 7 (RFC 9562), time-ordered.

A random id (``uuid4``) puts each new row at a random leaf of its primary-key index, so a
commit of an instance, its history rows and jobs dirties one index page per row, far apart
(and, on a large database, each one read from disk first). An id that begins with the time in
milliseconds puts rows made together on the same index pages, at the index's right edge.
74 random bits follow the time: ids stay unique across processes and nodes, and unguessable.
The text is the same shape as ``uuid4().hex`` (``UUID(id)`` parses it), so stored ids of either
kind live side by side.
"""

from __future__ import annotations

import os
import time

_VERSION = 0x7 << 76
_VARIANT = 0b10 << 62
_RAND_B = (1 << 62) - 1


def new_id() -> str:
    """A new time-ordered id (``uuid4().hex``'s shape, UUID version 7's layout)."""
    rand = int.from_bytes(os.urandom(10))
    value = (
        (time.time_ns() // 1_000_000) << 80
        | _VERSION
        | (rand >> 62 & 0xFFF) << 64  # 12 random bits after the version
        | _VARIANT
        | (rand & _RAND_B)  # the other 62 after the variant
    )
    return f"{value:032x}"


__all__ = ["new_id"]
