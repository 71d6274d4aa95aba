"""Sentences cut from streamed text as they complete."""

from __future__ import annotations

import pytest

from emotivoice.assistant.sentences import SentenceCutter, split_sentences

TEXT = (
    "Dr. Smith paid 3.5 dollars at example.com today! Was it worth it? "
    "I think so, e.g. for the view… Yes.\nA new line starts here"
)
EXPECTED = [
    "Dr. Smith paid 3.5 dollars at example.com today!",
    "Was it worth it?",
    "I think so, e.g. for the view…",
    "Yes.",
    "A new line starts here",
]


def test_whole_text() -> None:
    assert split_sentences(TEXT) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_sentences_do_not_depend_on_how_the_text_streams(size: int) -> None:
    cutter = SentenceCutter()
    out: list[str] = []
    for i in range(0, len(TEXT), size):
        out += cutter.push(TEXT[i : i + size])
    rest = cutter.flush()
    assert [*out, rest] == EXPECTED


def test_a_sentence_is_given_out_as_soon_as_it_is_complete() -> None:
    cutter = SentenceCutter()
    assert cutter.push("Hello there.") == []  # the end needs the space after it
    assert cutter.push(" How") == ["Hello there."]
    assert cutter.flush() == "How"
    assert cutter.flush() is None


def test_a_long_sentence_is_cut_at_a_comma() -> None:
    cutter = SentenceCutter(max_chars=40)
    out = cutter.push("This sentence goes on and on, and it does not stop, because")
    assert out == ["This sentence goes on and on, and it does not stop,"]
    assert cutter.flush() == "because"


MARKDOWN = (
    "## Fix\nThe host is **not allowed**, so use `127.0.0.1` instead:\n```bash\n"
    "curl http://localhost:8080/ {x}\n```\n- Then try again.\nsnake_case stays __one__ word."
)


@pytest.mark.parametrize("size", [1, 5, len(MARKDOWN)])
def test_what_is_spoken_has_no_code_blocks_or_markup(size: int) -> None:
    """A fenced block is left out whole, however the text streams; marks go, words stay."""
    cutter = SentenceCutter()
    out: list[str] = []
    for i in range(0, len(MARKDOWN), size):
        out += cutter.push(MARKDOWN[i : i + size])
    rest = cutter.flush()
    assert [*out, *([rest] if rest else [])] == [
        "Fix",
        "The host is not allowed, so use 127.0.0.1 instead:",
        "Then try again.",
        "snake_case stays one word.",
    ]


def test_an_unclosed_code_block_is_not_spoken_and_does_not_outlive_the_reply() -> None:
    cutter = SentenceCutter()
    assert cutter.push("Try this.\n```\nrm -rf /tmp/x\n") == ["Try this."]
    assert cutter.flush() is None
    assert split_sentences("Fresh reply.") == ["Fresh reply."]
    assert cutter.push("Fresh reply. ") == ["Fresh reply."]


def test_the_first_sentence_may_be_spoken_from_its_first_comma() -> None:
    """With ``first_fragment_chars`` only the reply's first sentence is cut at a comma (once it
    is that long); later ones wait for their end."""
    cutter = SentenceCutter(first_fragment_chars=12)
    assert cutter.push("Sure, the capital is") == []  # "Sure," is too short to be a fragment
    assert cutter.push(" Paris, a") == ["Sure, the capital is Paris,"]
    assert cutter.push(" lovely city. It has, of") == ["a lovely city."]
    assert cutter.push(" course, a river. ") == ["It has, of course, a river."]
    assert SentenceCutter().push("Sure, the capital is Paris, a") == []
