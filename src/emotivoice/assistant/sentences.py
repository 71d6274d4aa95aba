"""Cutting streamed tokens into sentences as they complete, so that each can be spoken while the
model still writes the next.

A sentence ends at ``.``, ``!``, ``?`` or ``…`` followed by white space (so ``3.5`` and ``.com``
are not ends), or at a line break; common abbreviations (``Mr.``, ``e.g.``) are not ends. A very
long sentence is cut at a comma or semicolon, so that the first audio does not wait for it; with
``first_fragment_chars``, so is the reply's first sentence once it is that long ("Sure, | the
page is open."), as RealtimeTTS's fast sentence fragment does: the first audio starts sooner.

What comes out is meant to be spoken: a fenced code block (```) is left out whole, and markdown
marks (inline backticks, ``*``/``__`` emphasis, ``#`` headings, ``>`` quotes, list bullets) and
braces are removed; a sentence left with no words is dropped. The model's own text, markup and
all, stays in the turn's record.
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
_FENCE = "```"
_MARKUP = re.compile(r"[`*{}]+|^\s*(?:#+|>|[-+])\s+|\b_+|_+\b")
_WORD = re.compile(r"\w")


class SentenceCutter:
    """Feed text pieces with :meth:`push`; it returns each sentence once it is complete."""

    def __init__(
        self, max_chars: int = _MAX_CHARS, first_fragment_chars: int | None = None
    ) -> None:
        self.max_chars = max_chars
        self.first_fragment_chars = first_fragment_chars
        self._buffer = ""
        self._given = False  # a piece has been given out
        self._in_code = False  # inside a fenced code block

    def _speakable(self, sentences: list[str]) -> list[str]:
        """``sentences`` without code blocks and markdown marks; those left with no word go."""
        out = []
        for sentence in sentences:
            kept = []
            for i, part in enumerate(sentence.split(_FENCE)):
                if i:
                    self._in_code = not self._in_code
                if not self._in_code:
                    kept.append(part)
            text = " ".join(_MARKUP.sub("", " ".join(kept)).split())
            if _WORD.search(text):
                out.append(text)
        return out

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
        soft = None
        if len(self._buffer) > self.max_chars:  # at the last soft break
            breaks = list(_SOFT.finditer(self._buffer))
            soft = breaks[-1] if breaks else None
        elif not out and not self._given and self.first_fragment_chars is not None:
            # at the first soft break from first_fragment_chars on
            soft = None if self._in_code else _SOFT.search(self._buffer, self.first_fragment_chars)
        if soft is not None:
            out.append(self._buffer[: soft.end()].strip())
            self._buffer = self._buffer[soft.end() :]
        spoken = self._speakable(out)
        self._given = self._given or bool(spoken)
        return spoken

    def flush(self) -> str | None:
        """The rest once the text has ended (``None`` if only white space is left)."""
        rest, self._buffer = self._speakable([self._buffer.strip()]), ""
        self._in_code = False
        return rest[0] if rest else None


def split_sentences(text: str) -> list[str]:
    """The sentences of a whole text, cut as :class:`SentenceCutter` cuts a stream of it."""
    cutter = SentenceCutter()
    sentences = cutter.push(text)
    rest = cutter.flush()
    return [*sentences, rest] if rest else sentences
