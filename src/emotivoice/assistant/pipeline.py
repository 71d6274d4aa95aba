"""The assistant: wake word → live transcription with emotion → language model → speech.

:class:`Assistant` composes swappable stages (:class:`~emotivoice.assistant.listener.Listener`,
:class:`~emotivoice.assistant.listener.WakeStage`,
:class:`~emotivoice.assistant.llm.LanguageModel`,
:class:`~emotivoice.assistant.speech.Speaker`,
:class:`~emotivoice.assistant.speech.AudioSink`) and streams end to end: the model's tokens are
cut into sentences as they complete, each sentence is synthesised and played while the model
writes the next. Every turn carries a :class:`~emotivoice.assistant.turns.LatencyTrace`.

While a reply plays, live audio is handled as ``AssistantOptions.during_reply`` says:
``wait`` (scripted input: the source is read on only after the reply), ``ignore`` (a
loudspeaker: what the microphone hears meanwhile is the assistant itself, dropped) or
``barge_in`` (headphones: the user's new speech stops playback and cancels the generation;
the reply is kept as ``cut``). :meth:`Assistant.interrupt` does the same on request (a stop
button), whatever the mode.

With a :class:`~emotivoice.assistant.tools.BrowserTool` the model may also call the browser: a
reply is held back from its first ``{`` (never spoken), read as a tool call, checked by the
tool's policy and run; the outcome goes back to the model as a system message and it writes
on, up to the turn's cap. Refused, failed and unreadable calls are actions in the trace too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, field

import numpy as np

from emotivoice.assistant.listener import Heard, Listener, WakeStage
from emotivoice.assistant.llm import LanguageModel, Message
from emotivoice.assistant.memory import (
    DEFAULT_HISTORY_TOKENS,
    ConversationMemory,
    turn_context,
)
from emotivoice.assistant.sentences import SentenceCutter
from emotivoice.assistant.speech import AudioSink, BufferSink, Speaker
from emotivoice.assistant.style import ReplyStyle, choose_style
from emotivoice.assistant.tools import BrowserTool, ToolAction, parse_tool_call
from emotivoice.assistant.turns import LatencyTrace, Turn, Utterance
from emotivoice.audio import SAMPLE_RATE
from emotivoice.errors import (
    EmotiVoiceError,
    InvalidConfigError,
    LanguageModelError,
    LanguageModelTimeoutError,
    ToolCallError,
    ToolLimitError,
)

__all__ = ["DURING_REPLY", "Assistant", "AssistantOptions"]

logger = logging.getLogger(__name__)

DURING_REPLY = ("wait", "ignore", "barge_in")
DEFAULT_SYSTEM_PROMPT = (
    "You are EmotiVoice, a friendly voice assistant on the user's computer. Your words are "
    "spoken aloud: answer in one to three short sentences, no lists or markdown. A 'voice' "
    "line before each question measures how the user spoke (emotion, confidence, arousal, "
    "valence and intensity from 0 to 1, pitch, speaking rate): let it set your tone, never "
    "read it out."
)
_CLOCK_S = 120.0  # how far back the stream-time → wall-clock map reaches
_TOOL_CALL = re.compile(r"\{")  # with the browser on, a reply is held back from here on
_UNREADABLE = "(unreadable)"


@dataclass(frozen=True)
class AssistantOptions:
    """How the assistant converses.

    Attributes:
        max_reply_tokens: longest reply the model may generate (tokens).
        history_tokens: the most the remembered turns may take of a prompt (the oldest are
            dropped first; every prompt token delays the reply's first token).
        during_reply: ``wait``, ``ignore`` or ``barge_in`` (see the module doc).
        system_prompt: the persona (the turn's style and voice fields follow the history).
        first_token_timeout_s: a model that has not begun its answer by then is given up on:
            the turn gets a spoken and written apology and the conversation goes on.
        apology: what is said when the model fails.
        first_fragment_chars: the reply's first sentence is spoken from its first comma,
            semicolon or colon after this many characters, so that the first audio need not
            wait for the whole sentence (``None``: whole sentences only).
        tool_limit_reply: what is said when the model asks for more browser actions than a
            turn may take (``BrowserPolicy.max_actions``).
        prefill: after each turn, have the model read the next prompt's beginning (the
            persona and the remembered turns, the last reply included) while the user speaks;
            the next turn then reads only its own context and question before its first token.
    """

    max_reply_tokens: int = 80
    history_tokens: int = DEFAULT_HISTORY_TOKENS
    during_reply: str = "wait"
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    first_token_timeout_s: float = 20.0
    apology: str = "Sorry, I could not come up with an answer just now."
    first_fragment_chars: int | None = 12
    tool_limit_reply: str = "I stopped there: that is as many browser steps as I may take at once."
    prefill: bool = True

    def __post_init__(self) -> None:
        if self.during_reply not in DURING_REPLY:
            raise InvalidConfigError(
                f"during_reply must be one of {DURING_REPLY}, got {self.during_reply!r}."
            )
        if self.max_reply_tokens < 1:
            raise InvalidConfigError("max_reply_tokens must be at least 1.")
        if self.history_tokens < 0:
            raise InvalidConfigError("history_tokens must be 0 or more.")
        if self.first_token_timeout_s <= 0:
            raise InvalidConfigError("first_token_timeout_s must be a positive number.")
        if self.first_fragment_chars is not None and self.first_fragment_chars < 1:
            raise InvalidConfigError("first_fragment_chars must be at least 1 (or None).")


@dataclass
class _Clock:
    """Where the listener's stream time lies in the input, and when it was spoken.

    The listener hears only part of the input (not what the wake stage gets, nor what is
    ignored during a reply); each chunk is taken to arrive when its last sample was spoken.
    """

    heard: int = 0  # samples of input so far
    fed: int = 0  # of them, samples fed to the listener
    marks: deque[tuple[int, int, float]] = field(default_factory=deque)  # (fed, heard, when)

    def tick(self, samples: int, to_listener: bool) -> None:
        now = time.perf_counter()
        self.heard += samples
        if to_listener:
            self.fed += samples
            self.marks.append((self.fed, self.heard, now))
            while self.marks[0][2] < now - _CLOCK_S:
                self.marks.popleft()

    def locate(self, stream_time: float) -> tuple[int, float]:
        """The input sample of the listener's ``stream_time`` and the perf_counter() moment
        it was spoken."""
        sample = round(stream_time * SAMPLE_RATE)
        for fed, heard, at in self.marks:
            if fed >= sample:
                return heard - (fed - sample), at - (fed - sample) / SAMPLE_RATE
        return self.heard, time.perf_counter()


@dataclass
class _Reply:
    """A reply in the making (mutable: the tasks of one turn fill it in)."""

    index: int
    utterance: Utterance
    speech_end: float  # perf_counter() of the end of the user's speech
    style: ReplyStyle
    reason: str
    wake_s: float | None = None
    text: str = ""
    tokens: int = 0
    sentences: list[str] = field(default_factory=list)
    audio: list[np.ndarray] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)
    actions: list[ToolAction] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)  # the tool calls as the model wrote them
    error: EmotiVoiceError | None = None
    cut: bool = False
    cut_by: str | None = None  # "barge_in" or "interrupt"

    def mark(self, stage: str) -> None:
        self.marks.setdefault(stage, time.perf_counter())

    def since_speech_end(self, stage: str) -> float | None:
        at = self.marks.get(stage)
        return None if at is None else at - self.speech_end


class Assistant:
    """A voice assistant made of swappable stages.

    Args:
        listener: the ears (:class:`~emotivoice.assistant.listener.StreamListener`).
        model: the language model.
        speaker: text to speech.
        sink: where the reply's audio goes (default: kept in a :class:`BufferSink`).
        options: conversation settings.
        wake: an optional wake stage; without one every utterance is answered (push-to-talk
            or always listening).
        browser: the browser tool the model may call (off without one); the assistant closes
            it in :meth:`aclose` (or ``async with``).
    """

    def __init__(
        self,
        listener: Listener,
        model: LanguageModel,
        speaker: Speaker,
        sink: AudioSink | None = None,
        options: AssistantOptions | None = None,
        wake: WakeStage | None = None,
        browser: BrowserTool | None = None,
    ) -> None:
        self.listener, self.model, self.speaker, self.wake = listener, model, speaker, wake
        self.browser = browser
        self.sink: AudioSink = sink if sink is not None else BufferSink()
        self.options = options or AssistantOptions()
        self.memory = ConversationMemory(
            model.context_tokens,
            self.options.max_reply_tokens,
            model.count_tokens,
            self.options.history_tokens,
        )
        self.turns: list[Turn] = []
        self._clock = _Clock()
        self._current: tuple[asyncio.Task[None], _Reply] | None = None  # the reply in the making
        self._on_turn: Callable[[Turn], None] | None = None
        self._prefilling: asyncio.Task[None] | None = None  # the next prompt, read ahead

    async def aclose(self) -> None:
        """Close what the assistant opened (the browser tool's Chromium)."""
        if self._prefilling is not None:
            await self._prefilling
        if self.browser is not None:
            await self.browser.close()

    async def __aenter__(self) -> Assistant:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def reply(self, utterance: Utterance) -> Turn:
        """Answer one utterance (no audio in: the text path of the API); the end of speech is
        taken to be now."""
        state = self._new_reply(utterance, time.perf_counter())
        await self._respond(state)
        return self._finish(state)

    async def converse(
        self,
        audio: AsyncIterable[np.ndarray],
        on_turn: Callable[[Turn], None] | None = None,
    ) -> list[Turn]:
        """Listen to ``audio`` (16 kHz mono float32 chunks) and answer each utterance.

        Returns every turn of the conversation (also passed to ``on_turn`` as each ends).
        """
        asleep, woke = self.wake is not None, None  # woke: the input sample of the wake word
        mode = self.options.during_reply
        self._on_turn = on_turn

        async def handle(heard: list[Heard]) -> None:
            nonlocal asleep
            for h in heard:
                if h.kind == "speech_start" and self._current is not None and mode == "barge_in":
                    onset = self._clock.locate(h.time)[1]
                    await self._barge_in(*self._current, onset=onset, by="barge_in")
                    await self._collect()
                elif h.kind == "utterance" and h.utterance is not None:
                    await self._collect()
                    end, spoken = self._clock.locate(h.time)
                    wake_s = None if woke is None else (end - woke) / SAMPLE_RATE
                    state = self._new_reply(h.utterance, spoken, wake_s)
                    state.mark("final_transcript")
                    self._current = (asyncio.create_task(self._respond(state)), state)
                    asleep = self.wake is not None
                    if mode == "wait":
                        await self._collect()

        async for chunk in audio:
            if self._current is not None and self._current[0].done():
                await self._collect()
            if self._current is not None and mode == "ignore":
                self._clock.tick(chunk.size, to_listener=False)
                continue  # the microphone hears the assistant's own voice
            if asleep and self.wake is not None:
                self._clock.tick(chunk.size, to_listener=False)
                if self.wake.feed(chunk) is not None:
                    asleep, woke = False, self._clock.heard
                continue
            self._clock.tick(chunk.size, to_listener=True)
            await handle(await self.listener.feed(chunk))
        await handle(await self.listener.finish())
        await self._collect()
        return self.turns

    async def interrupt(self) -> bool:
        """Stop the reply in the making, as a barge-in does, at the user's request (a stop
        button): playback stops, the generation is cancelled, the turn is kept as ``cut``
        (``cut_by="interrupt"``; its trace's barge-in figures count from this call) and
        reported to :meth:`converse`'s ``on_turn`` at once.

        Returns whether a reply was cut (``False``: none was in the making, or its generation
        and playback were both over; such a turn is reported as it is).
        """
        if self._current is None:
            return False
        task, state = self._current
        await self._barge_in(task, state, onset=time.perf_counter(), by="interrupt")
        await self._collect()
        return state.cut

    async def _collect(self) -> None:
        """Wait for the current reply to end, then record and report its turn (once: a
        barge-in, :meth:`interrupt` and the conversation's loop may all be waiting for it)."""
        if self._current is None:
            return
        task, state = self._current
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._current is None or self._current[1] is not state:
            return  # another waiter recorded it
        self._current = None
        turn = self._finish(state)
        if self._on_turn is not None:
            self._on_turn(turn)

    def _new_reply(
        self, utterance: Utterance, speech_end: float, wake_s: float | None = None
    ) -> _Reply:
        style, reason = choose_style(utterance)
        return _Reply(
            index=len(self.turns),
            utterance=utterance,
            speech_end=speech_end,
            style=style,
            reason=reason,
            wake_s=wake_s,
        )

    async def _respond(self, state: _Reply) -> None:
        """Generate, cut, speak: the model and the voice run side by side. With the browser
        tool, a model round that ends in a tool call is followed by the action and another
        round with its result, up to the turn's cap."""
        context = turn_context(state.style, state.utterance)
        if self.browser is not None:
            self.browser.new_turn()
            context = f"{self.browser.reminder()}\n{context}"
        system, examples = self._persona()
        messages = self.memory.prompt(system, state.utterance.text, context, examples)
        sentences: asyncio.Queue[str | None] = asyncio.Queue()

        async def think() -> None:
            cutter = SentenceCutter(first_fragment_chars=self.options.first_fragment_chars)
            try:
                conversation = messages
                while call := await self._think_once(state, conversation, cutter, sentences):
                    action = await self._use_tool(call)
                    state.actions.append(action)
                    state.calls.append(call.strip())
                    if action.code == ToolLimitError.code:
                        self._say(state, cutter, sentences, self.options.tool_limit_reply)
                        break
                    conversation = [
                        *conversation,
                        {"role": "assistant", "content": call.strip()},
                        {"role": "system", "content": action.feedback()},
                    ]
                rest = cutter.flush()
                if rest:
                    state.mark("first_sentence")
                    sentences.put_nowait(rest)
                if not state.text.strip():
                    raise LanguageModelError(
                        f"The language model ({self.model.name}) said nothing."
                    )
            except TimeoutError:
                state.error = LanguageModelTimeoutError(
                    f"The language model ({self.model.name}) did not begin its answer within "
                    f"{self.options.first_token_timeout_s:g} s."
                )
            except EmotiVoiceError as error:
                state.error = error
            if state.error is not None:
                logger.warning("Turn %d: %s", state.index, state.error.message)
                sentences.put_nowait(self.options.apology)
            sentences.put_nowait(None)

        async def speak() -> None:
            while (sentence := await sentences.get()) is not None:
                try:
                    samples = await asyncio.to_thread(
                        self.speaker.synthesize, sentence, state.style
                    )
                except EmotiVoiceError as error:  # the text is still there; the voice is not
                    logger.warning("Turn %d: %s", state.index, error.message)
                    state.error = state.error or error
                    continue
                state.mark("first_audio")
                state.sentences.append(sentence)
                state.audio.append(samples)
                state.mark("playback_start")
                await self.sink.play(samples)
            state.mark("reply_done")

        async with asyncio.TaskGroup() as group:
            group.create_task(think())
            group.create_task(speak())

    def _persona(self) -> tuple[str, list[Message] | None]:
        """The prompt's fixed beginning: the persona and, with the browser tool, its
        instructions and example calls."""
        if self.browser is None:
            return self.options.system_prompt, None
        system = f"{self.options.system_prompt} {self.browser.instructions()}"
        return system, self.browser.examples()

    async def _prefill(self) -> None:
        """Have the model read the next prompt's beginning (the persona and the turns, this
        reply included) while the user is speaking: the next turn reads only its own part."""
        read = await self.model.prefill(self.memory.prefix(*self._persona()))
        logger.debug("Prefilled %d tokens for the next turn", read)

    async def _think_once(
        self,
        state: _Reply,
        messages: list[Message],
        cutter: SentenceCutter,
        sentences: asyncio.Queue[str | None],
    ) -> str:
        """One generation: its text is cut into sentences as it streams; with the browser on,
        from the first ``{`` on it is held back (a tool call is never spoken) and returned
        (``""``: no call)."""
        held: str | None = None
        if state.text.strip():  # a round after a tool result goes on from the spoken text
            state.text += " "
            for sentence in cutter.push(" "):
                sentences.put_nowait(sentence)
        async with asyncio.timeout(self.options.first_token_timeout_s) as deadline:
            stream = self.model.stream(messages, self.options.max_reply_tokens)
            first = True
            async with contextlib.aclosing(stream):  # type: ignore[type-var]
                async for piece in stream:
                    if first:
                        first = False
                        state.mark("first_token")
                        deadline.reschedule(None)
                    state.tokens += 1
                    if held is not None:
                        held += piece
                        continue
                    spoken = piece
                    if self.browser is not None and (start := _TOOL_CALL.search(piece)):
                        spoken, held = piece[: start.start()], piece[start.start() :]
                    state.text += spoken
                    for sentence in cutter.push(spoken):
                        state.mark("first_sentence")
                        sentences.put_nowait(sentence)
        return held or ""

    async def _use_tool(self, text: str) -> ToolAction:
        """The action of a held-back tool call; an unreadable call is refused (and counted)."""
        assert self.browser is not None  # only a browser's turn holds text back
        try:
            call = parse_tool_call(text)
        except ToolCallError as error:
            return self.browser.refuse(_UNREADABLE, text.strip()[:120], error)
        return await self.browser.call(call)

    def _say(
        self,
        state: _Reply,
        cutter: SentenceCutter,
        sentences: asyncio.Queue[str | None],
        text: str,
    ) -> None:
        """Add a fixed sentence of the assistant's own to the reply (after what the model left
        unfinished, as a sentence of its own)."""
        state.text = f"{state.text.strip()} {text}".strip()
        rest = cutter.flush()
        for sentence in [*([rest] if rest else []), *cutter.push(f"{text} ")]:
            state.mark("first_sentence")
            sentences.put_nowait(sentence)

    async def _barge_in(
        self, task: asyncio.Task[None], state: _Reply, onset: float, by: str
    ) -> None:
        """The user spoke over the reply (``by="barge_in"``) or asked it to stop
        (``"interrupt"``): stop the audio, cancel the generation."""
        self.sink.stop()
        state.marks["barge_in_stop"] = time.perf_counter()
        if task.done():
            return
        state.cut, state.cut_by = True, by
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        now = time.perf_counter()
        state.marks["reply_done"] = now
        state.marks["barge_in_cancel"] = now
        state.marks["barge_in_onset"] = onset

    def _finish(self, state: _Reply) -> Turn:
        onset = state.marks.get("barge_in_onset")
        trace = LatencyTrace(
            wake_s=state.wake_s,
            final_transcript_s=state.since_speech_end("final_transcript"),
            first_token_s=state.since_speech_end("first_token"),
            first_sentence_s=state.since_speech_end("first_sentence"),
            first_audio_s=state.since_speech_end("first_audio"),
            playback_start_s=state.since_speech_end("playback_start"),
            reply_done_s=state.since_speech_end("reply_done"),
            tokens=state.tokens,
            barge_in_stop_s=None if onset is None else state.marks["barge_in_stop"] - onset,
            barge_in_cancel_s=None if onset is None else state.marks["barge_in_cancel"] - onset,
            tools_s=sum(a.duration_s for a in state.actions) if state.actions else None,
        )
        turn = Turn(
            index=state.index,
            user=state.utterance,
            style=state.style.name,
            style_reason=state.reason,
            reply=state.text.strip(),
            sentences=tuple(state.sentences),
            cut=state.cut,
            cut_by=state.cut_by,
            trace=trace,
            error=None if state.error is None else state.error.to_dict(),
            actions=tuple(state.actions),
            audio=np.concatenate(state.audio) if state.audio else np.zeros(0, np.float32),
        )
        # a turn that used the browser is remembered with its calls: a history of requests
        # answered in words only teaches the small model to stop calling
        remembered = "\n".join([*state.calls[:1], turn.reply]) if state.calls else turn.reply
        self.memory.add(state.utterance.text, remembered, cut=turn.cut)
        self.turns.append(turn)
        if self.options.prefill:
            self._prefilling = asyncio.get_running_loop().create_task(self._prefill())
        return turn
