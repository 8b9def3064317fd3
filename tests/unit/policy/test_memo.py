"""ResultMemo: an LRU bounded by entries and bytes, counting hits and misses, skipping oversized keys."""

from __future__ import annotations

import threading

from proxy.policy.memo import MAX_KEY_BYTES, ResultMemo


def test_a_miss_then_a_hit() -> None:
    memo = ResultMemo()
    assert memo.get(b"k") is None
    memo.put(b"k", '{"allow":true}')
    assert memo.get(b"k") == '{"allow":true}'
    assert (memo.hits, memo.misses, len(memo)) == (1, 1, 1)


def test_the_least_recently_used_entry_goes_first() -> None:
    memo = ResultMemo(max_entries=2)
    memo.put(b"a", "1")
    memo.put(b"b", "2")
    assert memo.get(b"a") == "1"  # a is now the most recent
    memo.put(b"c", "3")
    assert memo.get(b"b") is None and memo.get(b"a") == "1" and memo.get(b"c") == "3"


def test_the_byte_budget_counts_keys_and_texts() -> None:
    memo = ResultMemo(max_bytes=10)
    memo.put(b"ab", "cde")  # 5 bytes
    memo.put(b"fg", "hij")  # 10
    assert len(memo) == 2
    memo.put(b"k", "l")  # 12: the oldest goes
    assert memo.get(b"ab") is None and len(memo) == 2


def test_replacing_an_entry_does_not_count_it_twice() -> None:
    memo = ResultMemo(max_bytes=10)
    for _ in range(5):
        memo.put(b"ab", "cdefgh")  # 8 bytes each time, one entry
    assert memo.get(b"ab") == "cdefgh"
    memo.put(b"x", "y")  # 10 in all: still fits
    assert len(memo) == 2


def test_an_entry_larger_than_the_budget_is_not_kept() -> None:
    memo = ResultMemo(max_bytes=10)
    memo.put(b"a", "b")
    memo.put(b"big", "x" * 20)
    assert memo.get(b"big") is None and len(memo) == 0


def test_oversized_keys_are_never_held() -> None:
    memo = ResultMemo()
    memo.put(b"x" * (MAX_KEY_BYTES + 1), "v")
    assert len(memo) == 0
    memo.put(b"x" * MAX_KEY_BYTES, "v")
    assert len(memo) == 1


def test_concurrent_puts_keep_the_bounds() -> None:
    memo = ResultMemo(max_entries=50, max_bytes=10_000)

    def fill(offset: int) -> None:
        for n in range(500):
            memo.put(f"{offset}-{n}".encode(), "v" * 10)
            memo.get(f"{offset}-{n // 2}".encode())

    threads = [threading.Thread(target=fill, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(memo) == 50 and memo._bytes == sum(len(k) + len(v) for k, v in memo._entries.items())
