"""Row ids: UUIDv7 layout, time-ordered, unique, in the 32-hex format of the ids before them."""

from __future__ import annotations

import os
import time
import uuid

from engine.core.ids import id_at, new_id


def test_an_id_is_a_version_7_uuid_in_32_hex_digits() -> None:
    value = new_id()
    assert len(value) == 32
    parsed = uuid.UUID(hex=value)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert parsed.hex == value


def test_the_id_carries_its_creation_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    value = new_id()
    after = time.time_ns() // 1_000_000
    assert before <= int(value[:12], 16) <= after


def test_ids_of_later_milliseconds_sort_after_earlier_ones() -> None:
    rand = int.from_bytes(os.urandom(10))
    earlier = [id_at(1_700_000_000_000 + ms, rand) for ms in range(50)]
    assert earlier == sorted(earlier)
    # Whatever the random bits, a later millisecond sorts after.
    assert id_at(1_700_000_000_001, 0) > id_at(1_700_000_000_000, (1 << 74) - 1)


def test_ids_made_in_one_burst_are_unique() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)


def test_the_random_bits_are_kept_whole() -> None:
    # 74 random bits: 12 after the version nibble, 62 after the variant bits.
    top = id_at(0, (1 << 74) - 1)
    assert uuid.UUID(hex=top).version == 7
    assert len({id_at(0, 0), id_at(0, 1), id_at(0, 1 << 62)}) == 3
