"""The conversation memory keeps the newest turns that fit the context window."""

from __future__ import annotations

import itertools

import pytest

from emotivoice.assistant.memory import CUT_MARKER, ConversationMemory, voice_line


def words(text: str) -> int:
    return len(text.split())


def test_oldest_turns_are_dropped_whole() -> None:
    memory = ConversationMemory(context_tokens=60, reply_tokens=10, count_tokens=words)
    for i in range(10):
        memory.add(f"question {i} " + "word " * 5, f"answer {i} " + "word " * 5)
    prompt = memory.prompt("system", "the new question")
    assert prompt[0] == {"role": "system", "content": "system"}
    assert prompt[-1] == {"role": "user", "content": "the new question"}
    kept = prompt[1:-1]
    assert kept and len(kept) % 2 == 0  # whole turns
    assert kept[-1]["content"].startswith("answer 9")  # the newest turns are kept
    assert memory.dropped == 10 - len(kept) // 2 > 0
    cost = sum(words(m["content"]) + 4 for m in prompt)
    assert cost <= 60 - 10


def test_a_cut_reply_is_marked() -> None:
    memory = ConversationMemory(context_tokens=1000, reply_tokens=10, count_tokens=words)
    memory.add("tell me a story", "Once upon a time", cut=True)
    prompt = memory.prompt("system", "sorry, go on")
    assert prompt[2] == {"role": "assistant", "content": f"Once upon a time {CUT_MARKER}"}


def test_the_history_budget_caps_the_prompt() -> None:
    memory = ConversationMemory(1000, 10, count_tokens=words, history_tokens=30)
    for i in range(10):
        memory.add(f"question {i}", f"answer {i} is short")
    prompt = memory.prompt("system", "next")
    history = sum(words(m["content"]) + 4 for m in prompt[1:-1])
    assert 0 < history <= 30 and prompt[-2]["content"] == "answer 9 is short"


@pytest.mark.slow
def test_the_local_model_counts_its_own_tokens(local_model) -> None:  # type: ignore[no-untyped-def]
    memory = ConversationMemory(
        local_model.context_tokens, 80, local_model.count_tokens, history_tokens=10_000
    )
    for _ in range(200):
        memory.add("What is the weather like today? " * 3, "It is sunny and warm. " * 3)
    prompt = memory.prompt("system", "and tomorrow?")
    assert 0 < memory.dropped < 200
    used = sum(local_model.count_tokens(m["content"]) + 4 for m in prompt)
    assert used <= local_model.context_tokens - 80


def test_the_beginning_of_the_prompt_stays_the_same_for_a_while() -> None:
    """Turns are dropped down to half the budget at once: the first kept turn changes seldom
    (the local model does not read an unchanged beginning again)."""
    memory = ConversationMemory(1000, 10, count_tokens=words, history_tokens=60)
    firsts = []
    for i in range(20):
        prompt = memory.prompt("system", f"question {i}", context="style")
        assert prompt[-2:] == [
            {"role": "system", "content": "style"},
            {"role": "user", "content": f"question {i}"},
        ]
        if len(prompt) > 3:
            firsts.append(prompt[1]["content"])
        memory.add(f"question {i} word word", f"answer {i} word word")
    changes = sum(a != b for a, b in itertools.pairwise(firsts))
    assert memory.dropped > 0 and changes <= len(firsts) // 2


def test_the_prefix_is_the_beginning_of_the_next_prompt() -> None:
    """What the model reads ahead of a turn (:meth:`ConversationMemory.prefix`) is exactly how
    the turn's prompt begins, also when reading it ahead dropped old turns."""
    memory = ConversationMemory(1000, 10, count_tokens=words, history_tokens=60)
    examples = [{"role": "user", "content": "show"}, {"role": "assistant", "content": "{}"}]
    for i in range(20):
        memory.add(f"question {i} word word", f"answer {i} word word")
        dropped = memory.dropped
        prefix = memory.prefix("system", examples)
        prompt = memory.prompt("system", f"question {i + 1}", context="style", examples=examples)
        assert prompt[: len(prefix)] == prefix
        assert prompt[len(prefix) :] == [
            {"role": "system", "content": "style"},
            {"role": "user", "content": f"question {i + 1}"},
        ]
        assert memory.dropped >= dropped
    assert memory.dropped > 0


def test_the_voice_line_is_short_and_readable() -> None:
    fields = {"emotion": "angry", "confidence": 0.8, "arousal": 1.0, "valence": 0.2}
    fields |= {"intensity": 0.0, "uncertain": True, "pitch_hz": 182, "rate_wps": 2.6}
    assert voice_line(fields) == (
        "voice: emotion angry, confidence .8, arousal 1, valence .2, intensity 0, uncertain, "
        "pitch_hz 182, rate_wps 2.6"
    )
