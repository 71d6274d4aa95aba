"""``/assistant``: the voice assistant over a WebSocket (mounted under ``/api/v1``).

The browser (or any client) sends microphone audio framed as for ``/api/v1/stream`` (a JSON
``start`` message, then binary audio frames) and gets the conversation back as JSON events, the
reply's audio as binary frames. The conversation is the library's
:class:`~emotivoice.assistant.pipeline.Assistant`, unchanged: its stages are wrapped only to
tell the client what they do (:class:`_Told` and friends), and its ears are the engine's live
analysis (:class:`~emotivoice.assistant.listener.StreamListener`) on the app's shared Analyzer.

Client messages (text): ``start`` (:class:`AssistantStart`), ``talk_start`` / ``talk_stop``
(push-to-talk: the button is down / up), ``mute`` (stop the current reply: its audio and its
generation, as a barge-in does; the turn is ``cut``, ``cut_by`` ``"interrupt"``), ``stop``
(end the conversation; the open turn is answered first). Server events: ``ready``, ``wake``,
``vad``, ``partial``, ``transcript``, ``token``, ``sentence``, ``audio`` (followed by one binary
frame: the sentence's 16 kHz mono 16-bit PCM), ``barge_in``, ``turn`` (the whole turn and its
latency trace), ``error``, ``done``. ``docs/assistant.md`` describes each.

The language model loads once per server process (:class:`AssistantRuntime`) and holds one
conversation at a time: llama.cpp runs one generation at a time, and the model's prompt cache
and the conversation's memory belong to one conversation. A second connection is refused with
``ASSISTANT_BUSY`` (close code 1013, try again later) rather than left waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from emotivoice.assistant.listener import StreamListener, WakeWordStage
from emotivoice.assistant.llm import LanguageModel, LocalModel, Message, OpenAIChatModel
from emotivoice.assistant.pipeline import Assistant, AssistantOptions
from emotivoice.assistant.speech import Speaker, default_speaker
from emotivoice.assistant.style import ReplyStyle, choose_style
from emotivoice.assistant.turns import Turn, Utterance
from emotivoice.audio import SAMPLE_RATE, to_pcm16
from emotivoice.errors import (
    EmotiVoiceError,
    StreamProtocolError,
    StreamTooLongError,
)
from emotivoice.service.errors import (
    AssistantBusyError,
    AssistantDisabledError,
    StreamIdleError,
    api_error,
)
from emotivoice.service.session import CLOSE_CODES, SessionRejected, SocketSession, close_code
from emotivoice.service.stream import (
    admit_socket,
    message_type,
    next_message,
    parse_start_message,
    resolve_wake_word,
)
from emotivoice.streaming.analyzer import StreamOptions
from emotivoice.streaming.decoder import StreamDecoder
from emotivoice.streaming.events import PartialEvent, SegmentEvent, StreamEvent, VadEvent

__all__ = ["AssistantRuntime", "AssistantStart", "router"]

logger = logging.getLogger(__name__)

router = APIRouter()

BUSY_CLOSE_CODE = 1013  # RFC 6455 "try again later"
MODES = ("push_to_talk", "hands_free")
_TALK_END_SILENCE_S = 0.2  # beyond the endpoint pause: silence fed at talk_stop ends the turn
_END = object()


class AssistantStart(BaseModel):
    """The first message of a conversation."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["start"]
    encoding: str = "pcm_s16le"
    sample_rate: int = Field(default=SAMPLE_RATE, gt=0, le=192000)
    channels: int = Field(default=1, ge=1, le=2)
    mode: Literal["push_to_talk", "hands_free"] = "push_to_talk"
    wake_word: str | None = None
    wake_threshold: float | None = Field(default=None, gt=0, lt=1)
    during_reply: Literal["barge_in", "ignore"] = "barge_in"
    language: str | None = None
    partials: bool = True
    endpoint_silence_ms: int = Field(default=300, ge=100, le=5000)
    early_endpoint: bool = False
    max_reply_tokens: int | None = Field(default=None, ge=1)


class AssistantRuntime:
    """What every conversation of this process shares: the language model and the voice, each
    loaded on first use and kept; one conversation at a time (:meth:`claim`)."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self._load_lock = threading.Lock()
        self._model: LanguageModel | None = None
        self._speaker: Speaker | None = None
        self._in_use = False

    def claim(self) -> None:
        """Take the assistant for one conversation.

        Raises:
            AssistantDisabledError: the settings turn the assistant off.
            AssistantBusyError: another conversation holds it.
        """
        if not getattr(self.settings, "assistant_enabled", True):
            raise AssistantDisabledError(
                "The voice assistant is turned off on this server (assistant_enabled)."
            )
        if self._in_use:  # the event loop's thread only: no lock needed
            raise AssistantBusyError(
                "The assistant is in another conversation (one at a time on this server); "
                "try again when it ends."
            )
        self._in_use = True

    def release(self) -> None:
        self._in_use = False

    def load(self) -> tuple[LanguageModel, Speaker]:
        """The model and the voice, loaded once (in a worker thread: loading takes seconds).

        Raises:
            ModelNotFoundError, LanguageModelFileError, MissingExtraError: no usable model.
            SpeechSynthesisError: no TTS engine.
        """
        with self._load_lock:
            s = self.settings
            if self._model is None:
                if getattr(s, "assistant_llm_url", None):
                    self._model = OpenAIChatModel(
                        s.assistant_llm_url,
                        s.assistant_llm_model,
                        s.assistant_llm_api_key or None,
                        timeout_s=s.assistant_first_token_timeout_s,
                    )
                else:
                    self._model = LocalModel(getattr(s, "assistant_model", None))
                logger.info("Assistant model %s loaded", self._model.name)
            if self._speaker is None:
                self._speaker = default_speaker(getattr(s, "assistant_voice", "auto"))
            return self._model, self._speaker


class _Told:
    """The model as the pipeline sees it, each streamed piece also sent as a ``token``."""

    def __init__(self, model: LanguageModel, session: _Session) -> None:
        self.model, self.session = model, session
        self.name, self.context_tokens = model.name, model.context_tokens

    def count_tokens(self, text: str) -> int:
        return self.model.count_tokens(text)

    async def stream(self, messages: list[Message], max_tokens: int) -> AsyncIterator[str]:
        turn = self.session.turn
        stream = self.model.stream(messages, max_tokens)
        async with contextlib.aclosing(stream):  # type: ignore[type-var]
            async for piece in stream:
                if self.session.ended:  # the client left: the reply's task ends soon after
                    return
                sink = self.session.sink
                if sink is not None and sink.muted:
                    # the client stopped this reply before its task began (the stop came
                    # with the transcript): it stops now, as if the stop came at this token
                    self.session.interrupt_soon()
                self.session.emit({"type": "token", "turn": turn, "text": piece})
                yield piece

    async def prefill(self, messages: list[Message]) -> int:
        return await self.model.prefill(messages)


class _ToldSpeaker:
    """The voice, each sentence's audio remembered with its text for the sink to send."""

    def __init__(self, speaker: Speaker, session: _Session) -> None:
        self.speaker, self.session, self.name = speaker, session, speaker.name

    def synthesize(self, text: str, style: ReplyStyle) -> np.ndarray:
        samples = self.speaker.synthesize(text, style)
        with self.session.spoken_lock:
            self.session.spoken[id(samples)] = (samples, text)
        return samples


class _SocketSink:
    """The client's loudspeaker: each sentence goes out as ``sentence``, ``audio`` and a binary
    frame; :meth:`play` lasts as long as the audio plays there (or until :meth:`stop`)."""

    def __init__(self, session: _Session) -> None:
        self.session = session
        self._stop = asyncio.Event()
        self.sentences = 0
        self.muted = False

    async def play(self, samples: np.ndarray) -> None:
        self._stop.clear()
        session = self.session
        with session.spoken_lock:
            _, text = session.spoken.pop(id(samples), (None, ""))
        index, self.sentences = self.sentences, self.sentences + 1
        if session.ended:
            return
        session.emit({"type": "sentence", "turn": session.turn, "index": index, "text": text})
        if self.muted:
            return
        pcm = to_pcm16(samples).tobytes()
        session.emit(
            {
                "type": "audio",
                "turn": session.turn,
                "index": index,
                "encoding": "pcm_s16le",
                "sample_rate": SAMPLE_RATE,
                "samples": int(samples.size),
                "duration": round(samples.size / SAMPLE_RATE, 3),
            }
        )
        session.emit(pcm)
        deadline = time.perf_counter() + samples.size / SAMPLE_RATE
        while not self._stop.is_set() and (left := deadline - time.perf_counter()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), left)

    def stop(self) -> None:
        """Barge-in: the pipeline stops the reply; the client is told to stop its playback
        (unless the client stopped it itself: :meth:`mute`)."""
        self._stop.set()
        if self.session.replying and not self.muted:
            self.session.emit({"type": "barge_in", "turn": self.session.turn})

    def mute(self) -> None:
        """The client's stop button: no more audio of this reply (the session then cancels
        its generation: :meth:`Assistant.interrupt`)."""
        self.muted = True
        self._stop.set()


class _ToldWake:
    """The wake stage, each detection also sent as ``wake``."""

    def __init__(self, stage: WakeWordStage, session: _Session) -> None:
        self.stage, self.session, self.phrase = stage, session, stage.phrase

    def feed(self, samples: np.ndarray) -> Any:
        found = self.stage.feed(samples)
        if found is not None:
            self.session.emit(
                {"type": "wake", "phrase": self.phrase, "score": round(float(found.score), 3)}
            )
        return found


class _Session(SocketSession):
    """One conversation: handshake, intake, the library's Assistant, events out."""

    name = "Assistant"
    failure_message = "The server failed during the conversation."

    def __init__(self, websocket: WebSocket) -> None:
        super().__init__(websocket)
        state = websocket.app.state
        self.runtime: AssistantRuntime = state.assistant
        self.store: Any = getattr(state, "store", None)
        self.claimed = False
        self.outbox: asyncio.Queue[Any] = asyncio.Queue()
        self.audio: asyncio.Queue[Any] = asyncio.Queue()
        self.spoken: dict[int, tuple[np.ndarray, str]] = {}
        self.spoken_lock = threading.Lock()
        self.turn = -1  # the turn being answered
        self.answered = -1  # the last turn reported to the client
        self.sink: _SocketSink | None = None
        self.talking = False
        self.tasks: list[asyncio.Task[Any]] = []
        self.assistant: Assistant | None = None
        self.interrupting: asyncio.Task[bool] | None = None
        self.ended = False  # the conversation is over: a reply still in the making stops
        self.last_message = time.monotonic()
        self.stopping = False
        self.heard_s = 0.0
        self.wake_model: str | None = None  # the start message's wake_word, resolved

    def emit(self, event: dict[str, Any] | bytes) -> None:
        """Queue an event (or a binary frame) for the client, in order."""
        if not self.closed:
            self.outbox.put_nowait(event)

    async def run(self) -> None:
        sender = asyncio.create_task(self._send_all())
        try:
            await super().run()
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    async def _serve(self) -> None:
        self.owner, self.slots, self.slot = await admit_socket(self.ws)
        start = await self._handshake()
        self.runtime.claim()
        self.claimed = True
        assistant, decoder = await self._build(start)
        self.assistant = assistant
        conversation = asyncio.create_task(assistant.converse(self._chunks(), self._on_turn))
        watchdog = asyncio.create_task(self._watch())
        self.tasks = [conversation, watchdog]
        await self._receive(decoder, start, assistant, conversation)
        await conversation
        self.emit({"type": "done", "turns": len(assistant.turns)})
        await self._close(CLOSE_CODES["normal"])

    def interrupt_soon(self) -> None:
        """Stop the reply in the making from within it: in a task of its own, since the
        reply's task cannot wait for its own cancellation."""
        if self.assistant is not None and (self.interrupting is None or self.interrupting.done()):
            self.interrupting = asyncio.create_task(self.assistant.interrupt())

    async def _cleanup(self) -> None:
        self.ended = True
        if self.interrupting is not None:
            self.tasks.append(self.interrupting)
        for task in self.tasks:
            task.cancel()
        if self.claimed:
            # free at once: what is left of this conversation stops at its next token or
            # sentence, and the model's own lock keeps a new conversation's generation
            # from overlapping it
            self.runtime.release()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _handshake(self) -> AssistantStart:
        try:
            message = await asyncio.wait_for(self.ws.receive(), self.limits.stream_start_timeout_s)
        except TimeoutError as e:
            raise StreamProtocolError(
                f"No start message within {self.limits.stream_start_timeout_s:g} s."
            ) from e
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        if message.get("bytes") is not None:
            raise StreamProtocolError("Audio arrived before the start message; send start first.")
        try:
            start = parse_start(message.get("text") or "")
            self.wake_model = await run_in_threadpool(
                resolve_wake_word, self.store, self.owner, start.wake_word
            )
        except StreamProtocolError as e:
            raise SessionRejected(e, CLOSE_CODES["invalid_data"]) from e
        return start

    async def _build(self, start: AssistantStart) -> tuple[Assistant, StreamDecoder]:
        """The conversation's stages on the process' shared model, voice and Analyzer."""
        model, speaker = await run_in_threadpool(self.runtime.load)
        analyzer = await run_in_threadpool(self.ws.app.state.analyzer)
        decoder = StreamDecoder(start.encoding, start.sample_rate, start.channels)
        options = StreamOptions(
            partials=start.partials,
            keep_recording=False,
            language=start.language,
            endpoint_silence_ms=start.endpoint_silence_ms,
            early_endpoint=start.early_endpoint,
            max_duration_s=self.limits.max_stream_seconds,
        )
        listener = await run_in_threadpool(StreamListener, analyzer, options, self._on_stream)
        wake = None
        if start.mode == "hands_free" and self.wake_model is not None:
            stage = await run_in_threadpool(WakeWordStage, self.wake_model, start.wake_threshold)
            wake = _ToldWake(stage, self)
        limit = self.settings.assistant_max_reply_tokens if self.settings else 80
        timeout = self.settings.assistant_first_token_timeout_s if self.settings else 20.0
        conversation = AssistantOptions(
            max_reply_tokens=min(start.max_reply_tokens or limit, limit),
            during_reply=start.during_reply,
            first_token_timeout_s=timeout,
        )
        self.sink = _SocketSink(self)
        assistant = Assistant(
            listener, _Told(model, self), _ToldSpeaker(speaker, self), self.sink, conversation, wake
        )
        self.emit(
            {
                "type": "ready",
                "mode": start.mode,
                "wake_word": None if wake is None else start.wake_word,
                "wake_phrase": None if wake is None else wake.phrase,
                "model": model.name,
                "voice": speaker.name,
                "max_reply_tokens": conversation.max_reply_tokens,
                "during_reply": start.during_reply,
                "sample_rate": SAMPLE_RATE,
            }
        )
        return assistant, decoder

    async def _chunks(self) -> AsyncIterator[np.ndarray]:
        """The audio the assistant listens to, as the intake queues it."""
        while (chunk := await self.audio.get()) is not _END:
            yield chunk

    def _on_stream(self, event: StreamEvent) -> None:
        """The live analysis' events: speech onsets, partial text, the final utterance."""
        if isinstance(event, VadEvent | PartialEvent):
            self.emit(event.to_dict())
        elif isinstance(event, SegmentEvent) and event.segment.text.strip():
            utterance = Utterance.from_segment(event.segment)
            style, reason = choose_style(utterance)  # the rule the pipeline applies to it
            self.turn += 1
            if self.sink is not None:
                self.sink.sentences, self.sink.muted = 0, False
            with self.spoken_lock:
                self.spoken.clear()
            self.emit(
                {
                    "type": "transcript",
                    "turn": self.turn,
                    "text": utterance.text,
                    "language": utterance.language,
                    "start": utterance.start,
                    "end": utterance.end,
                    "speech_end": event.speech_end,
                    "emotion": _plain(utterance.emotion),
                    "prosody": _plain(utterance.prosody),
                    "voice_fields": utterance.voice_fields(),
                    "style": style.name,
                    "style_reason": reason,
                }
            )

    @property
    def replying(self) -> bool:
        """A turn is being answered (not yet reported)."""
        return self.turn > self.answered

    def _on_turn(self, turn: Turn) -> None:
        self.answered = max(self.answered, turn.index)
        if turn.error:
            self.emit({"type": "error", "turn": turn.index, "fatal": False, **turn.error})
        self.emit({"type": "turn", **turn.to_dict()})

    async def _receive(
        self,
        decoder: StreamDecoder,
        start: AssistantStart,
        assistant: Assistant,
        conversation: asyncio.Task[Any],
    ) -> None:
        """Frames in until ``stop``: audio decoded and queued (silence while push-to-talk is
        up), control messages obeyed."""
        push_to_talk = start.mode == "push_to_talk"
        while not conversation.done():
            message = await next_message(self.ws, conversation, self.limits.stream_max_frame_bytes)
            if message is None:
                return
            self.last_message = time.monotonic()
            data = message.get("bytes")
            if data is not None:
                samples = await run_in_threadpool(decoder.feed, data)
                if push_to_talk and not self.talking:
                    samples = np.zeros_like(samples)  # the button is up: nobody speaks
                self._queue(samples)
                continue
            kind = message_type(message.get("text") or "")
            if kind == "stop":
                self.stopping = True
                self._queue(await run_in_threadpool(decoder.finish))
                self.audio.put_nowait(_END)
                return
            if kind == "talk_start":
                self.talking = True
            elif kind == "talk_stop":
                self.talking = False
                # the pause that ends the utterance, at once (the speaker let go of the button)
                pause = start.endpoint_silence_ms / 1000 + _TALK_END_SILENCE_S
                self._queue(np.zeros(round(pause * SAMPLE_RATE), np.float32))
            elif kind == "mute":
                # the reply stops as on barge-in: its audio, then its generation (cut)
                if self.sink is not None and self.replying:
                    self.sink.mute()
                    await assistant.interrupt()
            else:
                self.emit(
                    {
                        "type": "error",
                        "code": StreamProtocolError.code,
                        "fatal": False,
                        "message": "Unknown message; after start, send audio frames and "
                        'JSON messages of type "talk_start", "talk_stop", "mute" or "stop".',
                    }
                )

    def _queue(self, samples: np.ndarray) -> None:
        if samples.size:
            self.heard_s += samples.size / SAMPLE_RATE
            if self.heard_s > self.limits.max_stream_seconds:
                raise StreamTooLongError(
                    f"The conversation reached the longest allowed, "
                    f"{self.limits.max_stream_seconds:g} s of audio; start a new one."
                )
            self.audio.put_nowait(samples.astype(np.float32, copy=False))

    async def _watch(self) -> None:
        """End the conversation when the client sends nothing for too long."""
        period = min(self.limits.stream_check_interval_s, self.limits.stream_idle_timeout_s / 2)
        while not self.closed:
            await asyncio.sleep(period)
            idle = time.monotonic() - self.last_message
            if not self.stopping and idle > self.limits.stream_idle_timeout_s:
                error = StreamIdleError(
                    f"Nothing was received for {self.limits.stream_idle_timeout_s:g} s; the "
                    "conversation is closed. Send audio continuously (silence too)."
                )
                await self._fail(error, CLOSE_CODES["policy"])
                return

    async def _send_all(self) -> None:
        while True:
            item = await self.outbox.get()
            try:
                if isinstance(item, bytes):
                    await self.ws.send_bytes(item)
                else:
                    await self.ws.send_text(json.dumps(item, ensure_ascii=False))
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.closed = True
                return
            finally:
                self.outbox.task_done()

    async def _flush(self) -> None:
        """Wait until every queued event has gone out (or the client is gone)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.outbox.join(), 10.0)

    async def _fail(self, error: EmotiVoiceError, close_code: int, code: str | None = None) -> None:
        code = code or api_error(error)[1]
        self.emit({"type": "error", "code": code, "fatal": True, "message": error.message})
        await self._close(close_code)

    async def _close(self, code: int) -> None:
        if not self.closed:
            await self._flush()  # every queued event goes out before the close
        await super()._close(code)

    def _close_code(self, error: EmotiVoiceError) -> int:
        if isinstance(error, AssistantBusyError):
            return BUSY_CLOSE_CODE
        if isinstance(error, AssistantDisabledError):
            return CLOSE_CODES["policy"]
        return close_code(error)


def _plain(value: Any) -> dict[str, Any] | None:
    from dataclasses import asdict

    return None if value is None else asdict(value)


def parse_start(text: str) -> AssistantStart:
    """The checked ``start`` message.

    The ``wake_word`` is checked against what the key may use afterwards, as for
    ``/api/v1/stream`` (:func:`~emotivoice.service.stream.resolve_wake_word`).

    Raises:
        StreamProtocolError: not JSON, not a start message, an invalid field, a wake word in
            push-to-talk mode.
        UnsupportedFormatError: an unknown encoding.
    """
    start = parse_start_message(text, AssistantStart)
    if start.wake_word is not None and start.mode != "hands_free":
        raise StreamProtocolError(
            'A wake word needs "mode": "hands_free" (push-to-talk needs none).'
        )
    return start


@router.websocket("/assistant")
async def assistant_endpoint(websocket: WebSocket) -> None:
    """A conversation with the voice assistant; see the module documentation."""
    await _Session(websocket).run()
