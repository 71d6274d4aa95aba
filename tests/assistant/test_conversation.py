"""The assistant end to end on real speech: the engine's live analysis, the real small language
model, the real espeak-ng voice."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import numpy as np
import pytest

from emotivoice.assistant.listener import Heard, StreamListener
from emotivoice.assistant.llm import LanguageModel, Message, OpenAIChatModel
from emotivoice.assistant.memory import CUT_MARKER, voice_line
from emotivoice.assistant.pipeline import Assistant, AssistantOptions
from emotivoice.assistant.sources import audio_chunks
from emotivoice.assistant.speech import BufferSink
from emotivoice.assistant.turns import Turn, Utterance
from emotivoice.audio import SAMPLE_RATE, load_audio
from emotivoice.errors import InvalidConfigError
from emotivoice.evaluation.assistant import speech_over_reply


class NoEars:
    """A listener that hears nothing: for the text path (``Assistant.reply``)."""

    async def feed(self, samples: np.ndarray) -> list[Heard]:
        return []

    async def finish(self) -> list[Heard]:
        return []


STAGES = ("final_transcript_s", "first_token_s", "first_sentence_s", "first_audio_s")


class Recorded:
    """The real model, with the prompts it was given kept for the test to read."""

    def __init__(self, model: LanguageModel) -> None:
        self.model, self.name, self.context_tokens = model, model.name, model.context_tokens
        self.prompts: list[list[Message]] = []
        self.prefills: list[list[Message]] = []

    def count_tokens(self, text: str) -> int:
        return self.model.count_tokens(text)

    def stream(self, messages: list[Message], max_tokens: int) -> AsyncIterator[str]:
        self.prompts.append(messages)
        return self.model.stream(messages, max_tokens)

    async def prefill(self, messages: list[Message]) -> int:
        self.prefills.append(messages)
        return await self.model.prefill(messages)


@pytest.mark.slow
def test_a_scripted_two_turn_conversation(  # type: ignore[no-untyped-def]
    analyzer, local_model, espeak, two_questions
) -> None:
    model = Recorded(local_model)
    options = AssistantOptions(max_reply_tokens=24)
    assistant = Assistant(StreamListener(analyzer), model, espeak, options=options)
    seen: list[int] = []
    turns = asyncio.run(
        assistant.converse(audio_chunks(two_questions), lambda t: seen.append(t.index))
    )

    assert [t.index for t in turns] == seen == [0, 1]
    for turn in turns:
        assert "door" in turn.user.text.lower()
        assert turn.reply and turn.sentences and not turn.cut and turn.error is None
        assert turn.audio.size > 0.3 * SAMPLE_RATE and np.abs(turn.audio).max() > 0.05
        figures = [getattr(turn.trace, stage) for stage in STAGES]
        assert all(f is not None for f in figures) and figures == sorted(figures)
        assert turn.trace.voice_to_voice_s == turn.trace.playback_start_s
        assert 0 < turn.trace.tokens <= 24
        json.dumps(turn.to_dict())
    # the user's emotion chose the style and reached the model as structured fields
    assert [t.style for t in turns] == ["calm", "warm"]
    for turn, prompt in zip(turns, model.prompts, strict=True):
        assert turn.user.emotion is not None
        line = voice_line(turn.user.voice_fields())
        assert line in prompt[-2]["content"]
        assert f"emotion {turn.user.emotion.dominant}," in line
    # the second prompt remembers the first turn
    assert model.prompts[1][1:3] == [
        {"role": "user", "content": turns[0].user.text},
        {"role": "assistant", "content": turns[0].reply},
    ]
    assert [m["role"] for m in model.prompts[1]] == [
        "system",
        "user",
        "assistant",
        "system",
        "user",
    ]
    # after the first turn the model read the second prompt's beginning ahead of time
    assert model.prefills[0] == model.prompts[1][:3]


@pytest.mark.slow
def test_a_model_that_fails_gets_an_apology_and_the_talk_goes_on(  # type: ignore[no-untyped-def]
    analyzer, espeak, two_questions, free_port
) -> None:
    down = OpenAIChatModel(f"http://127.0.0.1:{free_port()}/v1", timeout_s=2)
    assistant = Assistant(StreamListener(analyzer), down, espeak)
    turns = asyncio.run(assistant.converse(audio_chunks(two_questions)))
    assert len(turns) == 2
    for turn in turns:
        assert turn.error is not None and turn.error["code"] == "LLM_ERROR"
        assert "Cannot reach" in turn.error["message"]
        assert turn.sentences == (assistant.options.apology,)
        assert turn.audio.size > 0  # the apology is spoken


@pytest.mark.slow
def test_barge_in_stops_the_reply_and_marks_it_cut(  # type: ignore[no-untyped-def]
    analyzer, local_model, espeak, clips
) -> None:
    """At the pace of speech: a question, then the user speaks again half a second after the
    reply began to play (as the benchmark interrupts)."""
    question = load_audio(clips["neutral"]).samples
    interruption = load_audio(clips["angry"]).samples
    sink = BufferSink(realtime=True)
    options = AssistantOptions(max_reply_tokens=30, during_reply="barge_in")
    assistant = Assistant(StreamListener(analyzer), local_model, espeak, sink, options)
    onset: list[float] = []
    speech = speech_over_reply(question, interruption, sink, onset)
    turns = asyncio.run(assistant.converse(speech))

    first = turns[0]
    assert first.cut and first.cut_by == "barge_in" and turns[1].cut_by is None
    assert first.trace.barge_in_stop_s is not None and first.trace.barge_in_cancel_s is not None
    assert 0 < first.trace.barge_in_stop_s <= first.trace.barge_in_cancel_s
    assert sink.stopped_at is not None  # (the model may have finished: the voice had not)
    assert assistant.memory.history[0].cut
    assert CUT_MARKER in assistant.memory.prompt("s", "u")[2]["content"]
    assert len(turns) == 2 and "door" in turns[1].user.text.lower()


class StopsAtFirstToken(Recorded):
    """The real model; its first reply's first token makes the user press stop
    (:meth:`Assistant.interrupt`), as the web page's button does."""

    assistant: Assistant | None = None
    stopped: asyncio.Task[bool] | None = None

    async def stream(self, messages: list[Message], max_tokens: int) -> AsyncIterator[str]:
        async for piece in self.model.stream(messages, max_tokens):
            if self.stopped is None and self.assistant is not None:
                self.stopped = asyncio.create_task(self.assistant.interrupt())
            yield piece


@pytest.mark.slow
def test_interrupt_cuts_the_reply_as_barge_in_does(  # type: ignore[no-untyped-def]
    analyzer, local_model, espeak, two_questions
) -> None:
    """A stop request at the first token: the generation is cancelled, the turn is reported at
    once as cut by the interrupt (in the history too), and the next question is answered."""
    model = StopsAtFirstToken(local_model)
    options = AssistantOptions(max_reply_tokens=30, during_reply="barge_in")
    assistant = Assistant(StreamListener(analyzer), model, espeak, BufferSink(), options)
    model.assistant = assistant
    reported: list[int] = []

    async def talk() -> list[Turn]:
        assert not await assistant.interrupt()  # nothing to stop yet
        chunks = audio_chunks(two_questions, realtime=True)
        return await assistant.converse(chunks, lambda t: reported.append(t.index))

    first, second = asyncio.run(talk())
    assert model.stopped is not None and model.stopped.result() is True
    assert first.cut and first.cut_by == "interrupt" and first.audio.size == 0
    assert 0 < first.trace.tokens < 30 and first.trace.first_audio_s is None
    assert first.trace.barge_in_cancel_s is not None and first.trace.barge_in_cancel_s >= 0
    assert assistant.memory.history[0].cut
    assert not second.cut and second.cut_by is None and second.audio.size > 0
    assert reported == [0, 1]


@pytest.mark.slow
def test_the_text_path_of_the_api(local_model, espeak) -> None:  # type: ignore[no-untyped-def]
    assistant = Assistant(
        NoEars(), local_model, espeak, options=AssistantOptions(max_reply_tokens=16)
    )
    turn = asyncio.run(assistant.reply(Utterance("What is the capital of France?")))
    assert turn.style == "brisk" and turn.reply and turn.audio.size > 0
    assert turn.trace.first_token_s is not None and turn.trace.first_token_s > 0


def test_options_are_checked() -> None:
    with pytest.raises(InvalidConfigError, match="during_reply must be one of"):
        AssistantOptions(during_reply="shout")
    with pytest.raises(InvalidConfigError, match="max_reply_tokens"):
        AssistantOptions(max_reply_tokens=0)
    with pytest.raises(InvalidConfigError, match="first_fragment_chars"):
        AssistantOptions(first_fragment_chars=0)


@pytest.mark.slow
def test_with_a_wake_word_only_what_follows_it_is_answered(  # type: ignore[no-untyped-def]
    analyzer, local_model, espeak, clips
) -> None:
    """Speech before the wake word is not answered; the question after it is."""
    from emotivoice.assistant.listener import WakeWordStage
    from emotivoice.wakeword.tts import Voice, synthesize

    wake = WakeWordStage()
    hey_jarvis = synthesize("hey jarvis", Voice("flite", "slt", "flite-slt"))  # not espeak-ng
    ignored, question = (load_audio(clips[n]).samples for n in ("neutral", "angry"))
    pause = np.zeros(SAMPLE_RATE // 2, np.float32)
    audio = np.concatenate([ignored, pause, hey_jarvis, pause, question])
    options = AssistantOptions(max_reply_tokens=12)
    assistant = Assistant(StreamListener(analyzer), local_model, espeak, options=options, wake=wake)
    turns = asyncio.run(assistant.converse(audio_chunks(audio)))
    assert len(turns) == 1
    assert turns[0].style == "calm"  # the angry question, not the neutral speech before
    assert turns[0].trace.wake_s is not None and turns[0].trace.wake_s > 0


def test_a_slow_model_times_out_into_an_apology(espeak, silent_server) -> None:  # type: ignore[no-untyped-def]
    """A server that never answers; the assistant's own first-token limit."""
    silent = OpenAIChatModel(silent_server, timeout_s=60)
    options = AssistantOptions(first_token_timeout_s=0.5)
    assistant = Assistant(NoEars(), silent, espeak, options=options)
    turn = asyncio.run(assistant.reply(Utterance("Are you there?")))
    assert turn.error is not None and turn.error["code"] == "LLM_TIMEOUT"
    assert "0.5 s" in turn.error["message"]
    assert turn.sentences == (options.apology,) and turn.audio.size > 0
    assert turn.trace.first_token_s is None and turn.trace.first_audio_s is not None
