import io
import logging
import sys

from vtn.utils.logging import setup_logging


def test_console_logging_follows_the_current_stdout(monkeypatch, tmp_path):
    """A tool run in-process keeps logging after its caller swaps (and closes) the stdout it started with."""
    first = io.StringIO()
    monkeypatch.setattr(sys, "stdout", first)
    setup_logging(str(tmp_path))
    logging.getLogger("vtn.test").info("one")
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stdout", second)
    logging.getLogger("vtn.test").info("two")
    assert "vtn.test: two" in second.getvalue()
    assert "one" in (tmp_path / "stdout.log").read_text() and "two" in (tmp_path / "stdout.log").read_text()
    setup_logging()  # leave no handler on the test's folder


def test_a_progress_line_is_due_every_period_at_the_last_item_and_after_its_seconds(monkeypatch):
    from vtn.utils import logging as vtn_logging

    clock = iter([0.0, 1.0, 2.0, 3.0, 4.0, 14.0, 15.0, 16.0] + [16.0] * 6)
    monkeypatch.setattr(vtn_logging.time, "perf_counter", lambda: next(clock))
    progress = vtn_logging.Progress(total=7, period=4, seconds=10)
    due = [progress.step() for _ in range(7)]
    assert due == [False, False, False, True, True, False, True]  # 4th (period), 5th (10 s late), 7th (last)
    assert progress.done == 7 and progress.per_item == 16.0 / 7 and progress.eta == "0:00:00"
    never_by_time = vtn_logging.Progress(total=5, period=100, seconds=0)
    assert [never_by_time.step() for _ in range(5)] == [False] * 4 + [True]
