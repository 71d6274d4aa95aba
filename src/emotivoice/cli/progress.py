"""Feedback while a file is worked on: a progress bar on a terminal, plain lines in a log.

The bar appears once the work has run :data:`SHOW_AFTER_S` (a short file that finishes sooner
shows nothing), and a clock thread keeps its elapsed time moving while one long segment is
decoded. When stderr is not a terminal (a redirected log, a CI job) there are no in-place
updates (carriage returns would litter the file): a plain line every :data:`LOG_EVERY_S`
seconds, one as a new stage begins, and one at the end.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["LOG_EVERY_S", "SHOW_AFTER_S", "FileProgress"]

SHOW_AFTER_S = 2.0  # work shorter than this shows no progress at all
LOG_EVERY_S = 10.0  # without a terminal, a progress line at most this often
_TICK_S = 0.25


class FileProgress:
    """Progress of one file: pass :meth:`update` as the analysis' progress callback and
    :meth:`stage` as its stage callback; use as a context manager.

    Args:
        name: what is being worked on (the file name).
        total: the recording's duration, s.
        stream: where feedback goes (default ``sys.stderr``).
        tty: whether ``stream`` is a terminal (default: ask it).
        enabled: ``False`` shows nothing (``--quiet``).
        show_after: seconds of work before any feedback (default :data:`SHOW_AFTER_S`).
        log_every: seconds between plain lines without a terminal (default :data:`LOG_EVERY_S`).
    """

    def __init__(
        self,
        name: str,
        total: float,
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        enabled: bool = True,
        show_after: float | None = None,
        log_every: float | None = None,
    ) -> None:
        self.name, self.total = name, total
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.enabled = enabled
        # read at each start (not bound at import), so that a caller or a test may change them
        self.show_after = SHOW_AFTER_S if show_after is None else show_after
        self.log_every = LOG_EVERY_S if log_every is None else log_every
        self.done, self.message = 0.0, "loading models, finding speech"
        self.started = time.monotonic()
        self._logged_at: float | None = None  # when the last plain line was written
        self._bar: tqdm[None] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._clock = threading.Thread(target=self._tick, name="progress-clock", daemon=True)

    def __enter__(self) -> FileProgress:
        if self.enabled:
            self._clock.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(finished=exc[0] is None)

    def update(self, done: float, total: float, message: str) -> None:
        """A progress callback: ``done`` of ``total`` (seconds analysed, or model evaluations
        while explaining), what is going on."""
        with self._lock:
            if self._bar is not None and total != self.total:  # a new stage counts anew
                self._bar.reset(total=round(total, 1))
            self.done, self.total, self.message = done, total, message
            if self._bar is not None:
                self._bar.set_postfix_str(message, refresh=False)
                self._bar.update(round(done, 1) - self._bar.n)

    def stage(self, message: str) -> None:
        """A new stage begins (explaining, writing): shown at once if feedback is showing."""
        with self._lock:
            self.message = message
            if self._bar is not None:
                self._bar.set_postfix_str(message)
            elif self._logged_at is not None:
                self._log()

    def close(self, finished: bool = True) -> None:
        """Stop the clock; remove the bar, or end the plain lines with how long it took."""
        self._stop.set()
        if self._clock.is_alive():
            self._clock.join()
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            elif self._logged_at is not None and finished:
                self._write("done")

    def _tick(self) -> None:
        while not self._stop.wait(_TICK_S):
            with self._lock:
                elapsed = time.monotonic() - self.started
                if elapsed < self.show_after:
                    continue
                if self.tty:
                    self._show_bar()
                elif self._logged_at is None or elapsed - self._logged_at >= self.log_every:
                    self._log()

    def _show_bar(self) -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(
                total=round(self.total, 1),
                initial=round(self.done, 1),
                desc=self.name,
                leave=False,
                file=self.stream,
                dynamic_ncols=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}",
            )
            self._bar.set_postfix_str(self.message, refresh=False)
        self._bar.refresh()  # the elapsed time moves while one long segment is worked on

    def _log(self) -> None:
        share = self.done / self.total if self.total > 0 else 0.0
        self._write(f"{share:.0%}, {self.message}")
        self._logged_at = time.monotonic() - self.started

    def _write(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        self.stream.write(f"emotivoice: {self.name}: {text} [{elapsed:.0f} s]\n")
        self.stream.flush()
