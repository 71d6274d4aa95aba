"""The assistant's latency benchmark: spoken questions fed as a live stream, the whole pipeline
real (live analysis, the default local model, the reply voice).

- **Per-turn latency**: each question is synthesised with a voice the assistant does not reply
  with (flite's ``slt``) and fed at the pace of speech in 100 ms chunks; every stage of the
  turn's :class:`~emotivoice.assistant.turns.LatencyTrace` is collected, p50 and p95 over the
  questions. The conversation memory carries over from question to question (as in one
  conversation); each question is its own stream.
- **No first words lost**: the streamed transcript of each question against the batch
  transcript of the same audio (WER of both against the question's text; the difference in
  points).
- **Barge-in**: a question, then, half a second after the reply has begun to play, the user
  says "wait, stop"; playback stop and generation cancel are timed from the first sample of
  that speech (known exactly: it is synthesised), p50/p95/max over the interruptions.
- **Cancelling a generation in flight**: the model writes a long answer and its task is
  cancelled after 5 to 14 pieces; the time until the model's thread has stopped (a short reply
  is usually complete before the user interrupts its playback, so the end-to-end figure above
  rarely catches the model still writing).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from emotivoice.assistant.listener import StreamListener
from emotivoice.assistant.llm import LanguageModel
from emotivoice.assistant.memory import ConversationMemory
from emotivoice.assistant.pipeline import Assistant, AssistantOptions
from emotivoice.assistant.sources import CHUNK_S, audio_chunks
from emotivoice.assistant.speech import BufferSink, Speaker
from emotivoice.assistant.turns import Turn
from emotivoice.audio import SAMPLE_RATE
from emotivoice.metrics import word_error_rate
from emotivoice.pipeline import Analyzer
from emotivoice.wakeword.tts import Voice, synthesize

__all__ = [
    "QUESTIONS",
    "QUESTION_VOICE",
    "AssistantBenchReport",
    "format_assistant_report",
    "run_assistant_benchmark",
    "speech_over_reply",
]

QUESTIONS = (
    "What is the capital of France?",
    "How many days are there in a week?",
    "What colour is the sky on a clear day?",
    "Can you tell me a short joke?",
    "What is two plus two?",
    "Why do cats purr?",
    "How far away is the moon?",
    "What should I cook for dinner tonight?",
    "Who wrote Romeo and Juliet?",
    "What is the boiling point of water?",
    "How do I make a cup of tea?",
    "What is the largest ocean on Earth?",
    "Give me a tip for sleeping better.",
    "What language do people speak in Brazil?",
    "How many legs does a spider have?",
    "What is the tallest mountain in the world?",
    "Can you recommend a good book?",
    "What is the opposite of hot?",
    "How often should I water a cactus?",
    "What is the speed of light?",
    "Tell me something interesting about octopuses.",
    "What time of year do leaves fall?",
    "How do airplanes stay in the air?",
    "What is the main ingredient of guacamole?",
    "Which planet is closest to the sun?",
    "How can I stay calm before an exam?",
    "What does a bee make?",
    "Why is exercise good for you?",
    "What is the freezing point of water?",
    "Say something nice about Mondays.",
)
#: the users' voice: one the assistant never replies with
QUESTION_VOICE = Voice("flite", "slt", "flite-slt")
INTERRUPTION = "Wait, stop."
STAGES = (
    "final_transcript_s",
    "first_token_s",
    "first_sentence_s",
    "first_audio_s",
    "voice_to_voice_s",
)
_ONSET_LEVEL = 0.01  # the first sample this loud is where synthesised speech begins
_INTERRUPT_AFTER_S = 0.5  # the user speaks this long after the reply began to play
_LONG_REPLY_TOKENS = 400  # a reply still being written when it is cancelled
_REPLY_WAIT_S = 30.0  # a reply that has not begun by then is not interrupted (counted missed)


@dataclass(frozen=True)
class AssistantBenchReport:
    """The figures of the assistant benchmark (seconds unless named otherwise)."""

    model: str
    speaker: str
    cpu_count: int
    questions: int
    max_reply_tokens: int
    prefill: bool  # the next prompt's beginning read ahead (AssistantOptions.prefill)
    stages: dict[str, tuple[float, float]]  # stage → (p50, p95)
    voice_to_voice_s: tuple[float, ...]
    stream_wer: float
    batch_wer: float
    interruptions: int
    barge_in_stop: tuple[float, float, float]  # p50, p95, max
    barge_in_cancel: tuple[float, float, float]
    interruptions_missed: int
    generation_cancel: tuple[float, float, float]  # p50, p95, max over in-flight cancels

    @property
    def wer_difference_points(self) -> float:
        """Streamed WER minus batch WER, in percentage points."""
        return (self.stream_wer - self.batch_wer) * 100

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {**asdict(self), "wer_difference_points": round(self.wer_difference_points, 2)}


def _speech(text: str) -> np.ndarray:
    """``text`` in the users' voice, leading silence trimmed (the onset is its first sample)."""
    samples = synthesize(text, QUESTION_VOICE)
    loud = np.flatnonzero(np.abs(samples) >= _ONSET_LEVEL)
    return samples[loud[0] :] if loud.size else samples


def _quantiles(values: list[float]) -> tuple[float, float, float]:
    if not values:
        return (float("nan"),) * 3
    p50, p95 = np.percentile(values, [50, 95])
    return round(float(p50), 3), round(float(p95), 3), round(max(values), 3)


async def _latency(
    analyzer: Analyzer,
    model: LanguageModel,
    speaker: Speaker,
    questions: list[np.ndarray],
    options: AssistantOptions,
) -> list[list[Turn]]:
    """Each question as its own live stream, one conversation memory; the turns of each."""
    memory = ConversationMemory(
        model.context_tokens, options.max_reply_tokens, model.count_tokens, options.history_tokens
    )
    lead = np.zeros(SAMPLE_RATE // 2, np.float32)
    out: list[list[Turn]] = []
    for samples in questions:
        assistant = Assistant(StreamListener(analyzer), model, speaker, BufferSink(), options)
        assistant.memory = memory
        audio = audio_chunks(np.concatenate([lead, samples]), realtime=True)
        out.append(await assistant.converse(audio))
    return out


async def speech_over_reply(
    question: np.ndarray, interruption: np.ndarray, sink: BufferSink, onset: list[float]
) -> AsyncIterator[np.ndarray]:
    """The question at the pace of speech, silence until the reply has played for a moment,
    then the interruption; ``onset`` gets the moment its first sample is spoken."""
    silence = np.zeros(int(CHUNK_S * SAMPLE_RATE), np.float32)
    async for chunk in audio_chunks(question, realtime=True, trailing_silence_s=0.0):
        yield chunk
    waited = 0.0
    while not sink.played and waited < _REPLY_WAIT_S:
        await asyncio.sleep(CHUNK_S)
        waited += CHUNK_S
        yield silence
    await asyncio.sleep(_INTERRUPT_AFTER_S)
    yield np.zeros(int(_INTERRUPT_AFTER_S * SAMPLE_RATE), np.float32)
    # the source below starts its clock now: its first sample is spoken from this moment
    onset.append(time.perf_counter())
    async for chunk in audio_chunks(interruption, realtime=True):
        yield chunk
    sink.realtime = False  # measured: the rest of the conversation need not play in real time


async def _barge_in(
    analyzer: Analyzer,
    model: LanguageModel,
    speaker: Speaker,
    questions: list[np.ndarray],
    options: AssistantOptions,
) -> tuple[list[float], list[float], int]:
    """Playback-stop and generation-cancel times from the interruption's first sample."""
    interruption = _speech(INTERRUPTION)
    options = dataclasses.replace(options, during_reply="barge_in")
    stops: list[float] = []
    cancels: list[float] = []
    missed = 0
    for question in questions:
        sink = BufferSink(realtime=True)
        assistant = Assistant(StreamListener(analyzer), model, speaker, sink, options)
        onset: list[float] = []
        turns = await assistant.converse(speech_over_reply(question, interruption, sink, onset))
        trace = turns[0].trace if turns and turns[0].cut else None
        if trace is None or trace.barge_in_stop_s is None or trace.barge_in_cancel_s is None:
            missed += 1
            continue
        stopped = sink.stopped_at or 0.0
        # the trace times the cancel from the VAD's onset; the stop fixes that onset's moment
        cancelled = stopped - trace.barge_in_stop_s + trace.barge_in_cancel_s
        stops.append(stopped - onset[0])
        cancels.append(cancelled - onset[0])
    return stops, cancels, missed


async def _cancel_in_flight(model: LanguageModel, trials: int) -> list[float]:
    """Seconds from cancelling a reply task to the model having stopped, mid-generation."""
    story = [{"role": "user", "content": "Tell me a long story about a dragon and a castle."}]
    out: list[float] = []
    for trial in range(trials):
        pieces = 0

        async def consume() -> None:
            nonlocal pieces
            async for _ in model.stream(story, max_tokens=_LONG_REPLY_TOKENS):
                pieces += 1

        task = asyncio.create_task(consume())
        while pieces < 5 + trial % 10 and not task.done():
            await asyncio.sleep(0.005)
        started = time.perf_counter()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        out.append(time.perf_counter() - started)
    return out


def run_assistant_benchmark(
    model: LanguageModel,
    speaker: Speaker,
    n_questions: int = len(QUESTIONS),
    interruptions: int = 20,
    max_reply_tokens: int = 60,
    prefill: bool = True,
) -> AssistantBenchReport:
    """Run both parts and return the figures (minutes: everything runs at the pace of speech).
    ``prefill=False`` measures the assistant without reading the next prompt ahead (the
    reference for :attr:`AssistantOptions.prefill`)."""
    analyzer = Analyzer()
    texts = [QUESTIONS[i % len(QUESTIONS)] for i in range(n_questions)]
    spoken = [_speech(text) for text in texts]
    options = AssistantOptions(max_reply_tokens=max_reply_tokens, prefill=prefill)
    # warm-up (not timed): the first pass of each model initialises its runtime
    asyncio.run(_latency(analyzer, model, speaker, spoken[:1], options))
    per_question = asyncio.run(_latency(analyzer, model, speaker, spoken, options))
    turns = [t for q in per_question for t in q]
    stages = {}
    for stage in STAGES:
        p50, p95, _ = _quantiles([v for t in turns if (v := getattr(t.trace, stage)) is not None])
        stages[stage] = (p50, p95)
    streamed = [" ".join(t.user.text for t in q) for q in per_question]
    batch = [
        " ".join(s.text for s in analyzer.analyze(a, sample_rate=SAMPLE_RATE).segments)
        for a in spoken
    ]
    questions = [spoken[i % len(spoken)] for i in range(interruptions)]
    stops, cancels, missed = asyncio.run(_barge_in(analyzer, model, speaker, questions, options))
    in_flight = asyncio.run(_cancel_in_flight(model, interruptions))
    voice_to_voice = [t.trace.voice_to_voice_s for t in turns]
    return AssistantBenchReport(
        model=model.name,
        speaker=speaker.name,
        cpu_count=os.cpu_count() or 0,
        questions=n_questions,
        max_reply_tokens=max_reply_tokens,
        prefill=prefill,
        stages=stages,
        voice_to_voice_s=tuple(round(v, 3) for v in voice_to_voice if v is not None),
        stream_wer=word_error_rate(texts, streamed),
        batch_wer=word_error_rate(texts, batch),
        interruptions=interruptions,
        barge_in_stop=_quantiles(stops),
        barge_in_cancel=_quantiles(cancels),
        interruptions_missed=missed,
        generation_cancel=_quantiles(in_flight),
    )


def format_assistant_report(report: AssistantBenchReport) -> str:
    """The figures as a few lines of text."""
    lines = [
        f"assistant latency: {report.questions} spoken questions, model {report.model}, "
        f"voice {report.speaker}, {report.cpu_count} CPUs, replies <= "
        f"{report.max_reply_tokens} tokens, prefill {'on' if report.prefill else 'off'}",
        "stage (s after end of speech)     p50     p95",
    ]
    for stage, (p50, p95) in report.stages.items():
        lines.append(f"  {stage:<30} {p50:6.2f}  {p95:6.2f}")
    lines.append(
        f"transcripts: streamed WER {report.stream_wer * 100:.2f} %, batch WER "
        f"{report.batch_wer * 100:.2f} % ({report.wer_difference_points:+.2f} points)"
    )
    stop, cancel = report.barge_in_stop, report.barge_in_cancel
    lines.append(
        f"barge-in over {report.interruptions - report.interruptions_missed}/"
        f"{report.interruptions} interruptions: playback stopped p50 {stop[0]:.3f} s, p95 "
        f"{stop[1]:.3f} s, max {stop[2]:.3f} s; generation cancelled p50 {cancel[0]:.3f} s, "
        f"p95 {cancel[1]:.3f} s after the user began to speak"
    )
    flight = report.generation_cancel
    lines.append(
        f"cancelling a generation in flight: stopped p50 {flight[0] * 1000:.0f} ms, p95 "
        f"{flight[1] * 1000:.0f} ms, max {flight[2] * 1000:.0f} ms"
    )
    return "\n".join(lines)
