"""The wake phrase: checked once, its spoken text variants, and the confusable phrases that
must not wake the detector (partial phrases, one sound changed, rhymes).

Confusables are built from the phrase's letters and kept only when espeak-ng's phoneme string
for them differs from the phrase's own, so that a respelling that sounds the same ("hay
jarvis") never becomes a negative.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass

from emotivoice.errors import InvalidPhraseError

__all__ = ["MAX_PHRASE_CHARS", "MAX_PHRASE_WORDS", "WakePhrase", "confusable_phrases"]

MAX_PHRASE_WORDS = 6
MAX_PHRASE_CHARS = 48
_ONSETS = ("b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "w", "sh", "ch", "st")
_VOWELS = "aeiou"
_CONSONANT_RUN = re.compile(r"^[^aeiouy]*")


@dataclass(frozen=True)
class WakePhrase:
    """A phrase the studio can train: letters (Latin script), spaces, hyphens and apostrophes.

    Attributes:
        text: the phrase in lower case, single-spaced ("hey jarvis").
    """

    text: str

    def __post_init__(self) -> None:
        if not any(c.isalpha() for c in self.text):
            raise InvalidPhraseError(
                f"The wake phrase {self.text!r} has no letters; type words, e.g. 'hey jarvis'."
            )
        foreign = sorted({c for c in self.text if c.isalpha() and not _latin(c)})
        if foreign:
            raise InvalidPhraseError(
                f"The wake phrase {self.text!r} uses letters the offline English voices cannot "
                f"say ({''.join(foreign)}); write it in Latin letters."
            )
        odd = sorted({c for c in self.text if not (c.isalpha() or c in " -'")})
        if odd:
            raise InvalidPhraseError(
                f"The wake phrase {self.text!r} contains {''.join(odd)!r}; use letters, spaces, "
                "hyphens and apostrophes (spell numbers out)."
            )
        if len(self.words) > MAX_PHRASE_WORDS or len(self.text) > MAX_PHRASE_CHARS:
            raise InvalidPhraseError(
                f"The wake phrase {self.text!r} is too long: at most {MAX_PHRASE_WORDS} words "
                f"and {MAX_PHRASE_CHARS} characters."
            )

    @classmethod
    def parse(cls, text: str) -> WakePhrase:
        """The phrase of what a user typed: lower-cased, spaces collapsed, outer punctuation
        (``"Hey Jarvis!"``) removed."""
        cleaned = " ".join(text.lower().replace("_", " ").split()).strip(' .,!?;:"')
        return cls(cleaned)

    @property
    def words(self) -> list[str]:
        """The phrase's words."""
        return self.text.split()

    @property
    def slug(self) -> str:
        """A file-name form: ``hey_jarvis``."""
        return re.sub(r"[^a-z0-9]+", "_", unicodedata.normalize("NFKD", self.text)).strip("_")

    def spoken_variants(self) -> list[str]:
        """Texts that say the phrase: casing and punctuation change how TTS voices intone it."""
        words = self.words
        variants = [self.text, self.text.title() + "!", self.text.capitalize() + "?"]
        variants.append(self.text.capitalize() + ".")
        if len(words) > 1:
            variants.append(f"{words[0].capitalize()}, {' '.join(words[1:])}.")
            variants.append(" ".join(w.capitalize() for w in words) + ",")
        return variants


def _latin(char: str) -> bool:
    return "LATIN" in unicodedata.name(char, "")


@functools.cache
def _phonemes(text: str) -> str:
    """espeak-ng's phoneme mnemonics of ``text`` (empty without espeak-ng)."""
    if not shutil.which("espeak-ng"):
        return ""
    done = subprocess.run(
        ["espeak-ng", "-q", "-x", "-v", "en-us", text], capture_output=True, text=True, check=False
    )
    return " ".join(done.stdout.replace("'", "").replace(",", "").split())


def _word_edits(word: str) -> list[str]:
    """Words one sound away from ``word``: a new onset (rhymes), a vowel changed, a letter
    dropped at the end."""
    onset = _CONSONANT_RUN.match(word)
    rest = word[onset.end() :] if onset else word
    edits = [o + rest for o in _ONSETS if rest and o + rest != word]
    for i, char in enumerate(word):
        if char in _VOWELS:
            edits += [word[:i] + v + word[i + 1 :] for v in _VOWELS if v != char]
    if len(word) > 3:
        edits.append(word[:-1])
    return edits


def confusable_phrases(phrase: WakePhrase, limit: int = 60) -> list[str]:
    """Phrases that sound like ``phrase`` but are not it, most confusable kinds first.

    Partial phrases (each word alone, the phrase without its last syllables), then the phrase
    with one word changed by one sound. (A phrase with words appended still contains the wake
    phrase, so it is no negative.) Each kept confusable has an
    espeak-ng phoneme string different from the phrase's.
    """
    words = phrase.words
    candidates: list[str] = []
    if len(words) > 1:
        candidates += [*words, " ".join(words[:-1]), " ".join(words[1:])]
    last = words[-1]
    if len(last) > 4:
        candidates.append(" ".join([*words[:-1], last[: len(last) // 2 + 1]]))
    edited = [
        " ".join([*words[:i], edit, *words[i + 1 :]])
        for i, word in enumerate(words)
        for edit in _word_edits(word)
    ]
    # interleave the words' edits so that every word gets changed before the limit cuts
    candidates += edited[::2] + edited[1::2]
    target = _phonemes(phrase.text)
    kept: list[str] = []
    for text in dict.fromkeys(candidates):
        if text == phrase.text or (target and _phonemes(text) == target):
            continue
        kept.append(text)
        if len(kept) >= limit:
            break
    return kept
