"""Cutting streamed tokens into sentences as they complete, so that each can be spoken while the
model still writes the next.

A sentence ends at ``.``, ``!``, ``?`` or ``…`` followed by white space (so ``3.5`` and ``.com``
are not ends), or at a line break; common abbreviations (``Mr.``, ``e.g.``) are not ends. A very
long sentence is cut at a comma or semicolon, so that the first audio does not wait for it.
"""

from __future__ import annotations

import re

__all__ = ["SentenceCutter", "split_sentences"]

_END = re.compile(r"[.!?…]+[\"')\]]*\s+|\n+")
_SOFT = re.compile(r"[,;:]\s+")
_ABBREVIATIONS = frozenset(
    {"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "vs.", "etc.", "e.g.", "i.e.", "no.", "approx."}
)
_MIN_CHARS = 2  # a "sentence" shorter than this (a stray "1." of a list) joins the next one
_MAX_CHARS = 160  # a longer one is cut at its last comma or semicolon


class SentenceCutter:
    """Feed text pieces with :meth:`push`; it returns each sentence once it is complete."""

    def __init__(self, max_chars: int = _MAX_CHARS) -> None:
        self.max_chars = max_chars
        self._buffer = ""

    def push(self, text: str) -> list[str]:
        """Add ``text``; returns the sentences it completed, in order."""
        self._buffer += text
        out: list[str] = []
        start = 0
        for match in _END.finditer(self._buffer):
            candidate = self._buffer[start : match.end()].strip()
            last_word = candidate.rsplit(maxsplit=1)[-1].lower() if candidate else ""
            if len(candidate) < _MIN_CHARS or last_word in _ABBREVIATIONS:
                continue
            out.append(candidate)
            start = match.end()
        self._buffer = self._buffer[start:]
        if len(self._buffer) > self.max_chars:
            soft = list(_SOFT.finditer(self._buffer))
            if soft:
                cut = soft[-1].end()
                out.append(self._buffer[:cut].strip())
                self._buffer = self._buffer[cut:]
        return out

    def flush(self) -> str | None:
        """The rest once the text has ended (``None`` if only white space is left)."""
        rest, self._buffer = self._buffer.strip(), ""
        return rest or None


def split_sentences(text: str) -> list[str]:
    """The sentences of a whole text, cut as :class:`SentenceCutter` cuts a stream of it."""
    cutter = SentenceCutter()
    sentences = cutter.push(text)
    rest = cutter.flush()
    return [*sentences, rest] if rest else sentences
