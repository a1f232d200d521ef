"""datamodules.progress, the progress helper of long builds (embedding, indexing, data sets, GP fits): what it says, when it speaks, and when it stays quiet (issue 24)."""

from __future__ import annotations

import io

import pytest

from datamodules.progress import Progress, format_clock


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_clock_format_by_hand():
    assert [format_clock(s) for s in (0, 7.4, 59.6, 65, 3599, 3600, 7380)] == [
        "0:00", "0:07", "1:00", "1:05", "59:59", "1:00:00", "2:03:00"]


def test_line_has_items_rate_and_time_left_by_hand(monkeypatch):
    monkeypatch.delenv("METAZOO_PROGRESS", raising=False)
    clock, out = Clock(), io.StringIO()
    with Progress("embedding passages", 1000, "passages", delay=2, interval=10, stream=out, clock=clock) as bar:
        clock.t += 1
        bar.update(100)  # 1 s in: within the delay, nothing yet
        assert out.getvalue() == ""
        clock.t += 3
        bar.update(300)  # 400 done in 4 s: 100/s, 600 left -> 6 s
        assert out.getvalue() == "[metazoo] embedding passages: 400/1,000 (40%), 100 passages/s, about 0:06 left\n"
        clock.t += 5
        bar.update(100)  # 5 s after the last line: not due (interval 10)
        clock.t += 5
        bar.update(100)  # 600 in 14 s
        clock.t += 1
        bar.update(400)
    lines = out.getvalue().splitlines()
    assert lines[1] == "[metazoo] embedding passages: 600/1,000 (60%), 43 passages/s, about 0:09 left"
    assert lines[2] == "[metazoo] embedding passages: 1,000 passages in 0:15 (67/s)"
    assert len(lines) == 3


def test_quick_builds_stay_silent_and_the_switch_silences_all(monkeypatch):
    monkeypatch.delenv("METAZOO_PROGRESS", raising=False)
    clock, out = Clock(), io.StringIO()
    with Progress("x", 10, delay=2, stream=out, clock=clock) as bar:
        clock.t += 1.9
        bar.update(10)
    assert out.getvalue() == ""  # ended within the delay: no line, no closing line
    monkeypatch.setenv("METAZOO_PROGRESS", "0")
    with Progress("x", 10, delay=0, stream=out, clock=clock) as bar:
        clock.t += 100
        bar.update(5)
    assert out.getvalue() == ""
    monkeypatch.setenv("METAZOO_PROGRESS", "1")  # no delay: from the first item
    with Progress("x", 10, stream=out, clock=clock) as bar:
        bar.update(1)
    assert out.getvalue().startswith("[metazoo] x: 1/10 (10%)")


def test_terminal_rewrites_one_line_and_a_failure_says_where_it_stopped(monkeypatch):
    monkeypatch.delenv("METAZOO_PROGRESS", raising=False)
    clock, out = Clock(), Tty()
    with pytest.raises(RuntimeError):
        with Progress("rendering", 4, "classes", delay=0, interval=0.5, stream=out, clock=clock) as bar:
            clock.t += 1
            bar.update(1)
            clock.t += 1
            bar.update(1)
            raise RuntimeError("boom")
    text = out.getvalue()
    assert text.count("\r\x1b[K") == 3 and text.count("\n") == 1  # rewritten in place, one final newline
    assert text.endswith("rendering: stopped after 2/4 classes (0:02)\n")


def test_unknown_total_gives_count_and_rate_only(monkeypatch):
    monkeypatch.delenv("METAZOO_PROGRESS", raising=False)
    clock, out = Clock(), io.StringIO()
    bar = Progress("fitting", 0, "GPs", delay=0, stream=out, clock=clock)
    clock.t += 4
    bar.update(2)
    assert out.getvalue() == "[metazoo] fitting: 2, 0.5 GPs/s\n"
