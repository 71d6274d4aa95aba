"""The language models: the local GGUF model in process, and the OpenAI-compatible client
against a real local server (cyllama's bundled server on the same small model)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from emotivoice.assistant.llm import (
    LocalModel,
    OpenAIChatModel,
    local_model_path,
    parse_sse_line,
)
from emotivoice.errors import (
    LanguageModelError,
    LanguageModelFileError,
    LanguageModelTimeoutError,
    ModelNotFoundError,
)

QUESTION = [
    {"role": "system", "content": "You are a helpful assistant. Answer in one sentence."},
    {"role": "user", "content": "What is the capital of France?"},
]


async def collect(stream, limit: int | None = None) -> list[str]:  # type: ignore[no-untyped-def]
    pieces: list[str] = []
    async for piece in stream:
        pieces.append(piece)
        if limit is not None and len(pieces) >= limit:
            break
    return pieces


@pytest.mark.slow
def test_the_local_model_streams_an_answer() -> None:
    pytest.importorskip("cyllama")
    greedy = LocalModel(temperature=0.0)  # sampled, a 135M model sometimes misplaces Paris
    pieces = asyncio.run(collect(greedy.stream(QUESTION, max_tokens=24)))
    assert 3 <= len(pieces) <= 24
    assert "paris" in "".join(pieces).lower()


@pytest.mark.slow
def test_closing_the_stream_stops_the_generation(local_model: LocalModel) -> None:
    async def cut_short() -> tuple[list[str], float]:
        stream = local_model.stream(QUESTION, max_tokens=200)
        pieces = await collect(stream, limit=3)
        started = time.perf_counter()
        await stream.aclose()  # type: ignore[attr-defined]
        return pieces, time.perf_counter() - started

    pieces, closing_s = asyncio.run(cut_short())
    assert len(pieces) == 3
    assert closing_s < 1.0  # the thread stopped at the next token, not after 200
    # the model is free again: a new generation runs
    assert asyncio.run(collect(local_model.stream(QUESTION, max_tokens=8)))


@pytest.mark.slow
def test_a_cached_beginning_gives_the_same_answer_as_a_fresh_model() -> None:
    """The second prompt shares the first one's beginning: only the rest is read, and the
    answer is the one a model without a cache gives (greedy decoding)."""
    pytest.importorskip("cyllama")
    first = [*QUESTION[:1], {"role": "user", "content": "Name a red fruit."}]
    second = [*first, {"role": "assistant", "content": "An apple."}, *QUESTION[1:]]
    cached = LocalModel(temperature=0.0)
    asyncio.run(collect(cached.stream(first, max_tokens=8)))
    reused = len(cached._cached)
    answer = asyncio.run(collect(cached.stream(second, max_tokens=16)))
    assert reused > 20  # the system message and the first question stayed in the context
    fresh = asyncio.run(collect(LocalModel(temperature=0.0).stream(second, max_tokens=16)))
    assert answer == fresh and "paris" in "".join(answer).lower()


@pytest.mark.slow
def test_a_prefilled_prompt_reads_only_its_new_part() -> None:
    """After a reply, the next prompt's beginning (the last exchange) is read ahead: the next
    generation then reads only the new question, and answers as a fresh model does."""
    pytest.importorskip("cyllama")
    first = [*QUESTION[:1], {"role": "user", "content": "Name a red fruit."}]
    model = LocalModel(temperature=0.0)
    reply = "".join(asyncio.run(collect(model.stream(first, max_tokens=8))))
    history = [*first, {"role": "assistant", "content": reply.strip()}]
    read = asyncio.run(model.prefill(history))
    assert read > 0
    assert asyncio.run(model.prefill(history)) == 0  # all of it is cached now
    cached = len(model._cached)
    second = [*history, *QUESTION[1:]]
    tokens = model._llm.vocab.tokenize(
        model._llm._apply_template(second), add_special=True, parse_special=True
    )
    assert tokens[:cached] == model._cached  # the prefilled tokens begin the next prompt
    answer = asyncio.run(collect(model.stream(second, max_tokens=16)))
    fresh = asyncio.run(collect(LocalModel(temperature=0.0).stream(second, max_tokens=16)))
    assert answer == fresh and "paris" in "".join(answer).lower()


@pytest.mark.slow
def test_a_reply_asked_for_during_a_prefill_stops_it() -> None:
    """A prefill gives way: a generation asked for while it reads aborts the read, and its
    answer is unchanged."""
    pytest.importorskip("cyllama")
    model = LocalModel(temperature=0.0)
    long_history = [QUESTION[0]] + [
        {"role": role, "content": f"Sentence number {i} about nothing in particular at all."}
        for i in range(60)
        for role in ("user", "assistant")
    ]

    async def prefill_then_ask() -> tuple[int, list[str]]:
        prefill = asyncio.create_task(model.prefill(long_history))
        await asyncio.sleep(0.02)  # the prefill has begun reading ~1,500 tokens (seconds)
        answer = await collect(model.stream(QUESTION, max_tokens=16))
        return await prefill, answer

    read, answer = asyncio.run(prefill_then_ask())
    assert read == 0  # aborted (or never began), not read to its end
    alone = asyncio.run(collect(LocalModel(temperature=0.0).stream(QUESTION, max_tokens=16)))
    assert answer == alone


@pytest.mark.slow
def test_closing_a_waiting_stream_does_not_stop_the_running_one() -> None:
    pytest.importorskip("cyllama")
    greedy = LocalModel(temperature=0.0)

    async def two_streams() -> list[str]:
        running = asyncio.create_task(collect(greedy.stream(QUESTION, max_tokens=16)))
        waiting = asyncio.create_task(collect(greedy.stream(QUESTION, max_tokens=16)))
        await asyncio.sleep(0.05)  # the first generates, the second waits for the model
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        return await running

    pieces = asyncio.run(two_streams())
    alone = asyncio.run(collect(LocalModel(temperature=0.0).stream(QUESTION, max_tokens=16)))
    assert pieces == alone


def test_bad_model_files(tmp_path: Path) -> None:
    pytest.importorskip("cyllama")
    with pytest.raises(ModelNotFoundError, match="No language model file"):
        LocalModel(tmp_path / "missing.gguf")
    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_bytes(b"PK\x03\x04 this is a zip file")
    with pytest.raises(LanguageModelFileError, match="not a GGUF model") as info:
        LocalModel(not_gguf)
    assert info.value.code == "INVALID_LLM_MODEL"
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(local_model_path().read_bytes()[:4096])
    with pytest.raises(LanguageModelFileError, match="cannot load"):
        LocalModel(truncated)
    with pytest.raises(ModelNotFoundError, match="available models"):
        local_model_path("gpt-5")


@pytest.fixture(scope="module")
def llm_server(free_port) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """cyllama's OpenAI-compatible server on SmolLM2, on a free loopback port."""
    pytest.importorskip("cyllama")
    port = free_port()
    command = [sys.executable, "-m", "cyllama.llama.server", "-m", str(local_model_path())]
    command += ["--host", "127.0.0.1", "--port", str(port), "--ctx-size", "2048"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("cyllama's server did not start within 60 s")
        yield f"{url}/v1"
    finally:
        server.terminate()  # its HTTP thread may ignore SIGTERM
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.mark.slow
def test_the_client_against_a_real_server(llm_server: str) -> None:
    """One request: cyllama 0.2.18's server answers only the first request of its process
    (it does not clear its KV cache between requests; later answers are empty)."""
    model = OpenAIChatModel(llm_server, model="smollm2", timeout_s=60)
    question = [{"role": "user", "content": "What is the capital of France?"}]
    pieces = asyncio.run(collect(model.stream(question, max_tokens=24)))
    assert len(pieces) == 1  # it answers one JSON completion, not a stream: read as one piece
    assert "paris" in pieces[0].lower()


def test_a_server_that_is_down(free_port) -> None:  # type: ignore[no-untyped-def]
    model = OpenAIChatModel(f"http://127.0.0.1:{free_port()}/v1", timeout_s=5)
    with pytest.raises(LanguageModelError, match="Cannot reach") as info:
        asyncio.run(collect(model.stream(QUESTION, max_tokens=8)))
    assert info.value.code == "LLM_ERROR"


def test_a_server_that_never_answers(silent_server: str) -> None:
    model = OpenAIChatModel(silent_server, timeout_s=0.5)
    with pytest.raises(LanguageModelTimeoutError, match=r"did not answer within 0\.5 s"):
        asyncio.run(collect(model.stream(QUESTION, max_tokens=8)))


def test_server_sent_events() -> None:
    chunk = '{"choices": [{"delta": {"content": "Paris"}, "index": 0}]}'
    assert parse_sse_line(f"data: {chunk}") == "Paris"
    assert parse_sse_line('data: {"choices": [{"delta": {"role": "assistant"}}]}') == ""
    assert parse_sse_line(": keep-alive") == ""
    assert parse_sse_line("data: [DONE]") not in ("", "Paris")
    with pytest.raises(LanguageModelError, match="malformed"):
        parse_sse_line("data: {not json")
