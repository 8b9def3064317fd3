"""A small LRU of evaluation results, one per compiled policy (a reload starts with an empty one).

Only for policies whose results depend on nothing but the projected input (see projection.py); the key is the
entrypoint and the projection's exact JSON, the value the engine's output text (parsed afresh on every hit, so no
caller can change what the next one gets). Bounded by entries and by bytes held.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

MAX_ENTRIES = 1024
MAX_BYTES = 4 * 1024 * 1024
MAX_KEY_BYTES = 64 * 1024  # a larger input is evaluated every time rather than held


class ResultMemo:
    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[bytes, str] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: bytes) -> str | None:
        with self._lock:
            text = self._entries.get(key)
            if text is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return text

    def put(self, key: bytes, text: str) -> None:
        if len(key) > MAX_KEY_BYTES:
            return
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._bytes -= len(key) + len(previous)
            self._entries[key] = text
            self._bytes += len(key) + len(text)
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                old_key, old_text = self._entries.popitem(last=False)
                self._bytes -= len(old_key) + len(old_text)

    def __len__(self) -> int:
        return len(self._entries)
