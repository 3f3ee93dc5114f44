"""Row ids are unique, shaped as before (32 hex digits, a UUID), and ordered by time."""

from __future__ import annotations

import time
import uuid

from engine.core.ids import new_id


def test_ids_are_uuid_version_7_in_the_shape_of_uuid4_hex() -> None:
    found = new_id()
    assert len(found) == 32 and int(found, 16) >= 0
    parsed = uuid.UUID(found)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert parsed.hex == found


def test_ids_are_unique_and_begin_with_their_millisecond() -> None:
    # Ids of rows made together share their index pages: they sort by creation time.
    before = time.time_ns() // 1_000_000
    made = [new_id() for _ in range(20_000)]
    after = time.time_ns() // 1_000_000
    assert len(set(made)) == len(made)
    stamps = [int(i[:12], 16) for i in made]
    assert before <= stamps[0] and stamps == sorted(stamps) and stamps[-1] <= after
