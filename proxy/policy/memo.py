"""A small LRU of evaluation results, one per compiled policy (a reload starts with an empty one).

Only for policies whose results depend on nothing but the projected input (see projection.py); the key is the
entrypoint and the projection's exact JSON, the value the engine's output text (parsed afresh on every hit, so no
caller can change what the next one gets).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

MAX_ENTRIES = 1024
MAX_KEY_BYTES = 64 * 1024  # a larger input is evaluated every time rather than held in memory


class ResultMemo:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, str] = OrderedDict()
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
            self._entries[key] = text
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
