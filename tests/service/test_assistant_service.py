"""``/api/v1/assistant`` over real WebSockets: the real app served by uvicorn on loopback, the
real live analysis, the real small language model (SmolLM2 via cyllama), the real espeak-ng
voice; a spoken question synthesised with flite (a voice the assistant does not reply with)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emotivoice.audio import SAMPLE_RATE, to_pcm16
from emotivoice.service.app import create_app
from emotivoice.service.local_server import serve
from emotivoice.service.settings import load_settings

pytest.importorskip("websockets")

CHUNK = SAMPLE_RATE // 10  # 100 ms frames, as the web page sends them
STAGES = (
    "final_transcript_s",
    "first_token_s",
    "first_sentence_s",
    "first_audio_s",
    "playback_start_s",
    "voice_to_voice_s",
)


def _ws(base: str) -> str:
    return base.replace("http://", "ws://") + "/api/v1/assistant"


@pytest.fixture(scope="module")
def question() -> np.ndarray:
    """A spoken question in flite's ``slt`` voice (the assistant replies with espeak-ng)."""
    from emotivoice.evaluation.assistant import QUESTION_VOICE
    from emotivoice.wakeword.tts import synthesize

    return synthesize("What is the capital of France?", QUESTION_VOICE)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    pytest.importorskip("cyllama")
    home = tmp_path_factory.mktemp("assistant-home")
    settings = load_settings(
        home=home, assistant_voice="espeak-ng", assistant_max_reply_tokens=24, max_streams=4
    )
    return create_app(settings, janitor=False)


@pytest.fixture(scope="module")
def server(app: Any) -> Iterator[str]:
    with serve(app) as base:
        yield _ws(base)


def _start(**fields: Any) -> str:
    return json.dumps({"type": "start", "encoding": "pcm_s16le", "sample_rate": 16000, **fields})


def _frames(samples: np.ndarray) -> list[bytes]:
    pcm = to_pcm16(samples).tobytes()
    step = CHUNK * 2
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]


async def _talk(
    url: str,
    start: str,
    question: np.ndarray,
    turns: int = 1,
    extra: tuple[str, ...] = (),
    push_to_talk: bool = True,
) -> tuple[list[Any], int]:
    """Push-to-talk a question ``turns`` times (or just send it, hands-free); returns every
    event (binary frames as bytes) and the close code."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    events: list[Any] = []
    silence = to_pcm16(np.zeros(CHUNK, np.float32)).tobytes()
    async with connect(url, max_size=None) as ws:

        async def read() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for message in ws:
                    events.append(message if isinstance(message, bytes) else json.loads(message))

        reader = asyncio.create_task(read())
        await ws.send(start)
        for text in extra:
            await ws.send(text)
        for n in range(turns):
            if push_to_talk:
                await ws.send(json.dumps({"type": "talk_start"}))
            for frame in _frames(question):
                await ws.send(frame)
            if push_to_talk:
                await ws.send(json.dumps({"type": "talk_stop"}))
            # the microphone goes on (silence while the button is up) until the turn ends
            while sum(isinstance(e, dict) and e["type"] == "turn" for e in events) <= n:
                assert not reader.done(), events
                await ws.send(silence)
                await asyncio.sleep(CHUNK / SAMPLE_RATE)
        await ws.send(json.dumps({"type": "stop"}))
        await asyncio.wait_for(reader, 60)
        return events, ws.close_code or 0


def _talk_sync(*args: Any, **kwargs: Any) -> tuple[list[Any], int]:
    return asyncio.run(asyncio.wait_for(_talk(*args, **kwargs), 120))


def _types(events: list[Any]) -> list[str]:
    return ["<audio>" if isinstance(e, bytes) else e["type"] for e in events]


@pytest.mark.slow
def test_a_spoken_question_gets_a_streamed_spoken_reply_with_its_trace(
    server: str, question: np.ndarray
) -> None:
    events, code = _talk_sync(server, _start(max_reply_tokens=16, partials=True), question)
    kinds = _types(events)
    assert code == 1000 and kinds[0] == "ready" and kinds[-1] == "done", kinds
    ready = events[0]
    assert ready["model"] == "SmolLM2-135M-Instruct.Q4_1" and ready["voice"].startswith(
        "espeak-ng:"
    )
    assert ready["max_reply_tokens"] == 16
    # the order of a turn: speech, its transcript, tokens, sentences with their audio, the turn
    order = [kinds.index(k) for k in ("vad", "transcript", "token", "sentence", "audio", "turn")]
    assert order == sorted(order), kinds
    transcript = next(e for e in events if isinstance(e, dict) and e["type"] == "transcript")
    assert "capital" in transcript["text"].lower() and "france" in transcript["text"].lower()
    emotion = transcript["emotion"]
    assert emotion["dominant"] in ("anger", "fear", "happiness", "neutral", "sadness", "surprise")
    assert 0 < emotion["confidence"] <= 1
    assert transcript["prosody"]["pitch_mean_hz"] > 50
    assert transcript["voice_fields"]["emotion"] == emotion["dominant"]
    assert transcript["style"] in ("calm", "warm", "brisk") and transcript["style_reason"]
    # each audio header is followed by its PCM frame, of the announced length
    for i, kind in enumerate(kinds):
        if kind == "audio":
            assert kinds[i + 1] == "<audio>" and len(events[i + 1]) == 2 * events[i]["samples"]
            assert events[i]["sample_rate"] == SAMPLE_RATE and events[i]["samples"] > 1600
    tokens = "".join(e["text"] for e in events if isinstance(e, dict) and e["type"] == "token")
    turn = next(e for e in events if isinstance(e, dict) and e["type"] == "turn")
    assert turn["index"] == 0 and transcript["turn"] == 0
    assert turn["reply"] == tokens.strip() and turn["reply"] and not turn["cut"]
    assert turn["style"] == transcript["style"] and turn["user"]["text"] == transcript["text"]
    assert 0 < turn["trace"]["tokens"] <= 16 and turn["error"] is None
    sentences = [e["text"] for e in events if isinstance(e, dict) and e["type"] == "sentence"]
    assert sentences == turn["sentences"]
    trace = turn["trace"]
    figures = [trace[stage] for stage in STAGES]
    assert all(f is not None and 0 < f < 30 for f in figures), trace
    # the stages happen in this order; voice-to-voice is playback start
    assert figures[:5] == sorted(figures[:5]) and trace["voice_to_voice_s"] == figures[4], trace
    assert trace["reply_done_s"] >= trace["playback_start_s"]


@pytest.mark.slow
def test_hands_free_answers_only_after_the_wake_word(server: str, question: np.ndarray) -> None:
    from emotivoice.wakeword.tts import Voice, synthesize

    wake = synthesize("hey jarvis", Voice("espeak-ng", "en-029+Andy", "Andy"))
    second = np.zeros(SAMPLE_RATE, np.float32)
    audio = np.concatenate([second, wake, second, question, second, second, question])
    start = _start(mode="hands_free", wake_word="hey_jarvis", max_reply_tokens=8, partials=False)
    events, code = _talk_sync(server, start, audio, push_to_talk=False)
    kinds = _types(events)
    assert code == 1000 and kinds[-1] == "done" and kinds.count("wake") == 1, kinds
    assert events[0]["wake_phrase"] == "hey jarvis" and events[0]["mode"] == "hands_free"
    # the question after the wake word is answered; the next one, without it, is not
    assert kinds.count("transcript") == 1 and kinds.index("wake") < kinds.index("transcript")
    turns = [e for e in events if isinstance(e, dict) and e["type"] == "turn"]
    assert len(turns) == 1 and "capital" in turns[0]["user"]["text"].lower()
    assert 1.0 < turns[0]["trace"]["wake_s"] < 5.0, turns[0]["trace"]


@pytest.mark.slow
def test_hands_free_takes_a_trained_wake_word_by_its_job_id(
    app: Any, server: str, question: np.ndarray, studio_job: Callable[[Any, bool], str]
) -> None:
    """The same ``wake_word`` as ``/api/v1/stream``'s: a completed job's id is a wake word; an
    unknown id or a job still training is refused with the stream's error."""
    from emotivoice.wakeword.tts import Voice, synthesize

    job = studio_job(app.state.store, True)
    wake = synthesize("hey jarvis", Voice("espeak-ng", "en-029+Andy", "Andy"))
    second = np.zeros(SAMPLE_RATE, np.float32)
    audio = np.concatenate([second, wake, second, question, second])
    start = _start(mode="hands_free", wake_word=job, max_reply_tokens=8, partials=False)
    events, code = _talk_sync(server, start, audio, push_to_talk=False)
    kinds = _types(events)
    assert code == 1000 and kinds[-1] == "done" and kinds.count("wake") == 1, kinds
    assert events[0]["wake_word"] == job and events[0]["wake_phrase"] == "hey jarvis"
    assert kinds.index("wake") < kinds.index("transcript")
    (turn,) = [e for e in events if isinstance(e, dict) and e["type"] == "turn"]
    assert "capital" in turn["user"]["text"].lower() and turn["trace"]["wake_s"] > 1.0

    running = studio_job(app.state.store, False)
    for refused in ("0" * 32, running):
        start = _start(mode="hands_free", wake_word=refused)
        errors, close = asyncio.run(asyncio.wait_for(_session(server, start), 60))
        assert close == 1007 and [e["code"] for e in errors] == ["PROTOCOL_ERROR"], errors
        assert "completed wake-word job" in errors[0]["message"] and refused in errors[0]["message"]


@pytest.mark.slow
def test_a_client_that_vanishes_mid_reply_frees_the_assistant(
    server: str, question: np.ndarray
) -> None:
    async def vanish() -> list[str]:
        from websockets.asyncio.client import connect

        kinds: list[str] = []
        async with connect(server) as ws:
            await ws.send(_start(max_reply_tokens=24, partials=False))
            await ws.send(json.dumps({"type": "talk_start"}))
            for frame in _frames(question):
                await ws.send(frame)
            await ws.send(json.dumps({"type": "talk_stop"}))
            async for message in ws:
                kinds.append(
                    "<audio>" if isinstance(message, bytes) else json.loads(message)["type"]
                )
                if kinds[-1] == "token":
                    ws.transport.abort()  # gone without a closing handshake, mid-reply
                    break
        return kinds

    kinds = asyncio.run(asyncio.wait_for(vanish(), 120))
    assert kinds[-1] == "token" and "turn" not in kinds, kinds
    # the next conversation gets the assistant (not ASSISTANT_BUSY) and a whole turn
    events, code = _talk_sync(server, _start(max_reply_tokens=8, partials=False), question)
    assert code == 1000 and _types(events)[-1] == "done", _types(events)
    assert sum(isinstance(e, dict) and e["type"] == "turn" for e in events) == 1


@pytest.mark.slow
def test_mute_cancels_the_reply_as_barge_in_does_and_the_conversation_goes_on(
    server: str, question: np.ndarray
) -> None:
    """The stop button (``mute``) at the reply's first token: no audio is sent, the generation
    is cancelled (the turn is cut by the interrupt, its trace says when), and the next
    question is answered whole."""

    async def muted() -> list[Any]:
        from websockets.asyncio.client import connect

        events: list[Any] = []
        silence = to_pcm16(np.zeros(CHUNK, np.float32)).tobytes()
        async with connect(server) as ws:
            await ws.send(_start(partials=False))  # the server's cap: 24 tokens
            for n in range(2):
                await ws.send(json.dumps({"type": "talk_start"}))
                for frame in _frames(question):
                    await ws.send(frame)
                await ws.send(json.dumps({"type": "talk_stop"}))
                while _types(events).count("turn") <= n:
                    with contextlib.suppress(TimeoutError):
                        message = await asyncio.wait_for(ws.recv(), CHUNK / SAMPLE_RATE)
                        event = message if isinstance(message, bytes) else json.loads(message)
                        events.append(event)
                        first_token = n == 0 and _types([event]) == ["token"]
                        if first_token and "mute" not in _types(events):
                            events.append({"type": "mute"})  # what the client sent, when
                            await ws.send(json.dumps({"type": "mute"}))
                    await ws.send(silence)
            await ws.send(json.dumps({"type": "stop"}))
            with contextlib.suppress(Exception):
                async for message in ws:
                    events.append(message if isinstance(message, bytes) else json.loads(message))
        return events

    events = asyncio.run(asyncio.wait_for(muted(), 180))
    kinds = _types(events)
    first = kinds.index("turn")
    muted_turn, answered = events[first], events[kinds.index("turn", first + 1)]
    # the first reply: nothing of it played, cut by the stop request, not by speech
    assert "audio" not in kinds[:first] and "<audio>" not in kinds[:first], kinds
    assert "barge_in" not in kinds, kinds
    assert muted_turn["cut"] and muted_turn["cut_by"] == "interrupt", muted_turn
    assert muted_turn["audio_s"] == 0 and muted_turn["error"] is None
    trace = muted_turn["trace"]
    assert trace["barge_in_stop_s"] is not None and trace["barge_in_cancel_s"] is not None
    assert trace["barge_in_cancel_s"] >= trace["barge_in_stop_s"] >= 0, trace
    # the generation stopped: it streamed fewer tokens than the next, whole reply, and none
    # after its turn was reported
    assert 0 < trace["tokens"] < answered["trace"]["tokens"], (muted_turn, answered)
    late = [e for e in events[first:] if _types([e]) == ["token"] and e["turn"] == 0]
    assert not late, kinds
    # the next question is answered whole, with its audio
    assert not answered["cut"] and answered["cut_by"] is None and answered["audio_s"] > 0
    assert kinds[-1] == "done", kinds


@pytest.mark.slow
def test_two_conversations_at_once_the_second_is_told_busy(
    server: str, question: np.ndarray
) -> None:
    async def both() -> tuple[Any, Any]:
        first = asyncio.create_task(_talk(server, _start(max_reply_tokens=8), question))
        await asyncio.sleep(2.0)  # the first holds the model
        busy = await _session(server, _start())
        return await first, busy

    (events, code), (busy, busy_code) = asyncio.run(asyncio.wait_for(both(), 240))
    assert busy_code == 1013 and busy[-1]["code"] == "ASSISTANT_BUSY", busy
    assert "another conversation" in busy[-1]["message"]
    assert code == 1000 and _types(events)[-1] == "done"


async def _session(url: str, *messages: str | bytes) -> tuple[list[Any], int]:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    events: list[Any] = []
    async with connect(url) as ws:
        for message in messages:
            await ws.send(message)
        with contextlib.suppress(ConnectionClosed):
            async for m in ws:
                events.append(m if isinstance(m, bytes) else json.loads(m))
        return events, ws.close_code or 0


@pytest.mark.parametrize(
    ("messages", "code", "close"),
    [
        (("not json",), "PROTOCOL_ERROR", 1007),
        ((b"\x00\x01",), "PROTOCOL_ERROR", 1008),
        ((_start(mode="walkie_talkie"),), "PROTOCOL_ERROR", 1007),
        ((_start(mode="hands_free", wake_word="hey_siri"),), "PROTOCOL_ERROR", 1007),
        ((_start(wake_word="hey_jarvis"),), "PROTOCOL_ERROR", 1007),
        ((_start(encoding="mp3"),), "UNSUPPORTED_FORMAT", 1003),
    ],
    ids=["not-json", "audio-first", "bad-mode", "unknown-wake-word", "wake-in-ptt", "encoding"],
)
def test_bad_start_messages_get_a_clear_code_and_a_clean_close(
    server: str, messages: tuple[str | bytes, ...], code: str, close: int
) -> None:
    events, close_code = asyncio.run(asyncio.wait_for(_session(server, *messages), 60))
    assert close_code == close and len(events) == 1, events
    assert events[0]["type"] == "error" and events[0]["code"] == code and events[0]["fatal"]
    assert "Traceback" not in events[0]["message"]


@pytest.mark.slow
def test_an_unknown_message_is_an_error_and_the_conversation_goes_on(
    server: str, question: np.ndarray
) -> None:
    """A bad message mid-conversation is reported; the question after it is still answered
    (the wake word's stage loads in hands-free mode, but push-to-talk is what is tested)."""
    events, code = _talk_sync(
        server,
        _start(max_reply_tokens=8, partials=False),
        question,
        extra=("{broken", json.dumps({"type": "dance"})),
    )
    errors = [e for e in events if isinstance(e, dict) and e["type"] == "error"]
    assert len(errors) == 2 and all(e["code"] == "PROTOCOL_ERROR" for e in errors), errors
    assert not any(e["fatal"] for e in errors) and "talk_start" in errors[0]["message"]
    assert code == 1000 and _types(events)[-1] == "done"
    assert [e["index"] for e in events if isinstance(e, dict) and e["type"] == "turn"] == [0]


@pytest.fixture
def silent_llm() -> Iterator[str]:
    """The ``/v1`` URL of a language-model server that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                accepted.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    finally:
        for connection in accepted:
            connection.close()
        listener.close()


@pytest.mark.slow
def test_a_language_model_that_hangs_gets_an_apology_and_the_loop_goes_on(
    tmp_path: Path, silent_llm: str, question: np.ndarray
) -> None:
    settings = load_settings(
        home=tmp_path,
        assistant_voice="espeak-ng",
        assistant_llm_url=silent_llm,
        assistant_first_token_timeout_s=1.0,
    )
    with serve(create_app(settings, janitor=False)) as base:
        events, code = _talk_sync(_ws(base), _start(partials=False), question, turns=2)
    turns = [e for e in events if isinstance(e, dict) and e["type"] == "turn"]
    errors = [e for e in events if isinstance(e, dict) and e["type"] == "error"]
    assert [t["index"] for t in turns] == [0, 1] and code == 1000
    assert [e["code"] for e in errors] == ["LLM_TIMEOUT", "LLM_TIMEOUT"]
    assert (
        not any(e["fatal"] for e in errors) and "did not begin its answer" in errors[0]["message"]
    )
    for turn in turns:  # the apology is spoken and written
        assert turn["sentences"] == ["Sorry, I could not come up with an answer just now."]
        assert turn["audio_s"] > 0.5 and turn["error"]["code"] == "LLM_TIMEOUT"
        assert turn["trace"]["first_token_s"] is None and turn["trace"]["playback_start_s"] > 1.0


def test_a_server_with_the_assistant_off_says_so(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, assistant_enabled=False)
    with serve(create_app(settings, janitor=False)) as base:
        events, code = asyncio.run(asyncio.wait_for(_session(_ws(base), _start()), 60))
    assert code == 1008 and events[0]["code"] == "ASSISTANT_DISABLED", events


def test_with_keys_required_a_conversation_without_a_key_is_refused(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, require_api_key=True)
    with serve(create_app(settings, janitor=False)) as base:
        events, code = asyncio.run(asyncio.wait_for(_session(_ws(base), _start()), 60))
    assert code == 1008 and events[0]["code"] == "UNAUTHORIZED", events
