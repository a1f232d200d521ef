"""Progress of a long build (items done, rate, time left) on stderr: the one helper every slow first run uses.

A first run that embeds a passage corpus, renders a data set or fits surrogate GPs can take minutes; silence for
that long looks like a hang. :class:`Progress` says what is being built, how far it is, how fast it goes and when
it will end::

    [metazoo] embedding wordnet-passages passages: 12,288/35,880 (34%), 212 passages/s, about 1:51 left

It stays quiet for builds that end within ``delay`` seconds (tests, warm caches), so callers can wrap every build
in it without thinking about their size. On a terminal the line is rewritten in place; elsewhere (logs, CI, a
notebook's captured stderr) a new line is written every ``interval`` seconds. ``METAZOO_PROGRESS=0`` silences it;
``METAZOO_PROGRESS=1`` makes it speak from the first item (no delay).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

PREFIX = "[metazoo]"


def format_clock(seconds: float) -> str:
    """``1:02:03`` / ``2:03`` (h:mm:ss / m:ss) for a duration: the one time format of every progress line
    (``callbacks.progress.EpochProgress`` uses it too)."""
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _rate(per_second: float) -> str:
    """``1,234`` / ``43`` / ``0.21``: whole numbers from 10 up, two significant digits below."""
    return f"{per_second:,.0f}" if per_second >= 10 else f"{per_second:.2g}"


class Progress:
    """Report ``done / total`` items with rate and estimated time left while a build runs.

    Args:
        what: what is being built, as the start of a sentence (``"embedding wordnet-passages passages"``).
        total: how many items the build has (0 or less: unknown, no percentage or time left).
        unit: the items' name in the rate (``"passages"`` -> ``"212 passages/s"``).
        delay: seconds before the first line; a build that ends sooner prints nothing.
        interval: seconds between lines (None: 0.5 on a terminal, 10 elsewhere).
        stream: where to write (default ``sys.stderr``, looked up at each write so pytest's capture sees it).
        enabled: None follows ``METAZOO_PROGRESS`` (on unless ``0``); True/False force it.
        clock: the time source (tests pass a fake one).

    Use as a context manager and call :meth:`update` with the number of items just finished; leaving the block
    writes the final line (total time and mean rate) if any line was written.
    """

    def __init__(self, what: str, total: int, unit: str = "items", delay: float = 2.0,
                 interval: float | None = None, stream: TextIO | None = None, enabled: bool | None = None,
                 clock: Callable[[], float] = time.monotonic):
        env = os.environ.get("METAZOO_PROGRESS", "")
        self.what, self.total, self.unit = what, int(total), unit
        self.enabled = (env != "0") if enabled is None else enabled
        self.delay = 0.0 if env == "1" else float(delay)
        self._stream, self.clock = stream, clock
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.5 if self.tty else 10.0)
        self.done = 0
        self.start = clock()
        self._last: float | None = None  # when the last line was written (None: none yet)

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close(failed=exc[0] is not None)

    def rate(self) -> float:
        """Items per second so far (0 before the first item)."""
        elapsed = self.clock() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        """The current progress line (without the prefix)."""
        rate = self.rate()
        if self.total > 0:
            text = f"{self.what}: {self.done:,}/{self.total:,} ({100 * self.done / self.total:.0f}%)"
        else:
            text = f"{self.what}: {self.done:,}"
        text += f", {_rate(rate)} {self.unit}/s"
        if self.total > 0 and rate > 0 and self.done < self.total:
            text += f", about {format_clock((self.total - self.done) / rate)} left"
        return text

    def update(self, n: int = 1) -> None:
        """``n`` more items are finished; write a line if one is due."""
        self.done += int(n)
        if not self.enabled:
            return
        now = self.clock()
        due = now - self.start >= self.delay if self._last is None else now - self._last >= self.interval
        if due:
            self._write(self.line())
            self._last = now

    def close(self, failed: bool = False) -> None:
        """Write the closing line (time taken, mean rate) if the build was long enough to have said anything."""
        if not self.enabled or self._last is None:
            return
        elapsed = self.clock() - self.start
        if failed:
            end = f"{self.what}: stopped after {self.done:,}/{self.total:,} {self.unit} ({format_clock(elapsed)})"
        else:
            end = f"{self.what}: {self.done:,} {self.unit} in {format_clock(elapsed)} ({_rate(self.rate())}/s)"
        self._write(end, final=True)
        self._last = None

    def _write(self, text: str, final: bool = False) -> None:
        out = self.stream
        if self.tty:
            out.write(f"\r\x1b[K{PREFIX} {text}" + ("\n" if final else ""))
        else:
            out.write(f"{PREFIX} {text}\n")
        out.flush()

