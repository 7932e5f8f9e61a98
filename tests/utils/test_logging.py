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
