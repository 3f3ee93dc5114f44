"""``BoundedCache``: the bound holds and the least recently used entry goes first."""

from __future__ import annotations

import threading

import pytest

from engine.core.bounded import BoundedCache


def test_the_least_recently_used_entry_is_dropped_at_the_bound() -> None:
    cache: BoundedCache[str, int] = BoundedCache(2, "t")
    cache["a"] = 1
    cache["b"] = 2
    assert cache.get("a") == 1  # "a" is now the most recently used
    cache["c"] = 3
    assert len(cache) == 2 and cache.evictions == 1
    assert "b" not in cache and cache.get("b") is None
    assert cache["a"] == 1 and cache["c"] == 3
    cache["a"] = 10  # a write refreshes too
    cache["d"] = 4
    assert sorted(cache) == ["a", "d"]
    assert cache.get("c", -1) == -1
    with pytest.raises(KeyError):
        cache["c"]


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, None])
def test_a_bound_is_a_positive_int(bad: object) -> None:
    with pytest.raises(ValueError, match="models: maxsize"):
        BoundedCache(bad, "models")  # type: ignore[arg-type]


def test_threads_writing_at_once_never_pass_the_bound() -> None:
    cache: BoundedCache[tuple[int, int], int] = BoundedCache(50, "t")
    sizes: list[int] = []

    def write(n: int) -> None:
        for i in range(2000):
            cache[(n, i)] = i
            cache.get((n, i - 1))
            sizes.append(len(cache))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert max(sizes) <= 50 and len(cache) == 50
    assert cache.evictions == 4 * 2000 - 50
