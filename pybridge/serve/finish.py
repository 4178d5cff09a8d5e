"""How an OpenAI answer ends, as OpenAI's API says and ``transformers serve`` does not:

- ``stop`` sequences are left out of the text (transformers' ``stop_strings`` stop generation
  after the token that completes one, and keep it). Streamed, text that may begin a stop
  sequence is held back until the next chunk tells;
- a generation the server's timeout ended (transformers' ``max_time``) has finish_reason
  ``"length"``, like one that ``max_tokens`` ended, rather than the ``"stop"`` of a natural end.
"""

from __future__ import annotations

import time
from typing import Optional


class Finish:
    def __init__(self, stop, timeout: Optional[float]):
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        self.stops = [s for s in stops if s]
        self.timeout = timeout
        self.started = time.monotonic()
        self.held = ""  # streamed text that may be the start of a stop sequence
        self.stopped = False  # a stop sequence was met

    def whole(self, text: Optional[str]) -> Optional[str]:
        """A whole answer's text, up to its first stop sequence."""
        if not text:
            return text
        cut = self._first_stop(text)
        if cut is None:
            return text
        self.stopped = True
        return text[:cut]

    def feed(self, delta: str) -> str:
        """The part of the text so far (held back, then ``delta``) that can go out now."""
        if self.stopped:
            return ""
        text = self.held + delta
        cut = self._first_stop(text)
        if cut is not None:
            self.stopped, self.held = True, ""
            return text[:cut]
        keep = self._stop_prefix(text)
        self.held = text[len(text) - keep :]
        return text[: len(text) - keep]

    def flush(self) -> str:
        """What was held back, at the end: no stop sequence followed."""
        held, self.held = self.held, ""
        return held

    def reason(self, reason: Optional[str]) -> Optional[str]:
        timed_out = self.timeout is not None and time.monotonic() - self.started >= self.timeout
        if reason == "stop" and not self.stopped and timed_out:
            return "length"
        return reason

    def _first_stop(self, text: str) -> Optional[int]:
        found = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        return min(found) if found else None

    def _stop_prefix(self, text: str) -> int:
        """The length of the longest end of ``text`` that begins a stop sequence."""
        longest = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:n]):
                    longest = n
                    break
        return longest
