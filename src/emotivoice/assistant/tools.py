"""The assistant's browser tool: the language model may open a web page, read it, find text on it
and click a link or button, through Playwright on a headless Chromium.

Safety first, in :class:`BrowserPolicy`: an allowlist of hosts that is **empty by default**
(nothing is opened until the user adds a host), no ``file:`` URLs unless allowed, and a cap on
the actions of one turn. The policy is checked before a page is asked for, and again by a route
on the browser context for every request the page makes (a link, a redirect, a script): a
request to a host that is not allowed is aborted before it leaves the browser.

How the model asks: one JSON line, ``{"tool": "open_page", "args": {"url": "..."}}``
(:func:`parse_tool_call`). The same format works for the local GGUF model and for any
OpenAI-compatible server, since it is plain text in the reply; the pipeline holds back a reply
from its first ``{`` on, so a tool call is never read aloud. Every action, refused or not, is a
:class:`ToolAction` in the turn's trace; a refused or failed one is told to the model and never
raised out of the conversation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from emotivoice.errors import (
    EmotiVoiceError,
    InvalidConfigError,
    ToolCallError,
    ToolError,
    ToolLimitError,
    ToolNotAllowedError,
)
from emotivoice.extras import import_extra

__all__ = [
    "TOOLS",
    "BrowserPolicy",
    "BrowserTool",
    "ToolAction",
    "ToolCall",
    "parse_tool_call",
]

logger = logging.getLogger(__name__)

#: tool name → its one argument (``None``: no argument)
TOOLS: dict[str, str | None] = {
    "open_page": "url",
    "read_page": None,
    "find": "text",
    "click": "text",
}
_WEB_SCHEMES = ("http", "https")
_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:(?!\d)")  # "host:8000" is a port, not a scheme
_FIND_CONTEXT_CHARS = 60  # text either side of a match that ``find`` reports
_FIND_MATCHES = 3
_OUTCOME_CHARS = 160  # of an outcome, in the trace's short form
_CHROMIUM_FLAGS = [
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-sandbox",  # containers without user namespaces; the page runs headless, off-screen
]


@dataclass(frozen=True)
class BrowserPolicy:
    """What the browser tool may do.

    Attributes:
        allowed_hosts: host names (``example.org``) or ``host:port`` pairs that pages may come
            from, matched exactly (no subdomains). Empty: nothing is opened.
        allow_file: ``file:`` URLs may be opened (local files: off by default).
        max_actions: browser actions one turn may take (refused ones and unreadable calls
            count: the cap bounds the model's rounds too).
        page_chars: the most page text given to the model at once (the small local model's
            context is 2,048 tokens; 600 characters are about 150 tokens).
        timeout_s: how long a page may take to load, or an element to appear.
    """

    allowed_hosts: tuple[str, ...] = ()
    allow_file: bool = False
    max_actions: int = 3
    page_chars: int = 600
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        hosts = tuple(h.strip().lower() for h in self.allowed_hosts)
        for host in hosts:
            if not host or "/" in host or " " in host:
                raise InvalidConfigError(
                    f"Allowed hosts are host names such as example.org or 127.0.0.1:8000, "
                    f"not {host!r}."
                )
        object.__setattr__(self, "allowed_hosts", hosts)
        if self.max_actions < 1:
            raise InvalidConfigError("max_actions must be at least 1.")
        if self.page_chars < 100:
            raise InvalidConfigError("page_chars must be at least 100.")
        if self.timeout_s <= 0:
            raise InvalidConfigError("timeout_s must be a positive number.")

    def check(self, url: str) -> str:
        """``url`` if the policy allows it (``http://`` is added to a bare host).

        Raises:
            ToolNotAllowedError: a host not on the allowlist, a ``file:`` URL without
                ``allow_file``, another scheme.
            ToolCallError: not a web address at all.
        """
        url = url.strip()
        if not _SCHEME.match(url):  # a bare host, "example.org/news" or "localhost:8000"
            url = f"http://{url}"
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "file":
            if not self.allow_file:
                raise ToolNotAllowedError(
                    f"Opening local files ({url}) is not allowed; the user can allow it "
                    "(--allow-file)."
                )
            return url
        if scheme not in _WEB_SCHEMES:
            raise ToolNotAllowedError(f"Only http and https pages may be opened, not {url}.")
        host = parts.hostname
        if not host:
            raise ToolCallError(f"{url!r} is not a web address.")
        if not self.allowed_hosts:
            raise ToolNotAllowedError(
                f"No website is allowed yet, so {host} was not opened; the user can allow a "
                "host (--allow-host)."
            )
        try:
            port = parts.port
        except ValueError as error:
            raise ToolCallError(f"{url!r} is not a web address: {error}.") from error
        if host not in self.allowed_hosts and f"{host}:{port}" not in self.allowed_hosts:
            raise ToolNotAllowedError(
                f"The host {host} is not allowed (allowed: {', '.join(self.allowed_hosts)})."
            )
        return url

    def allows(self, url: str) -> bool:
        """Whether a request the page makes may go out (the browser's route asks)."""
        if url.startswith(("data:", "blob:", "about:")):
            return True
        try:
            self.check(url)
        except ToolError:
            return False
        return True


@dataclass(frozen=True)
class ToolCall:
    """A tool the model asked for.

    Attributes:
        tool: one of :data:`TOOLS`.
        argument: its argument (``""`` for ``read_page``).
        raw: the text of the call as the model wrote it.
    """

    tool: str
    argument: str = ""
    raw: str = ""


def parse_tool_call(text: str) -> ToolCall:
    """The tool call at the beginning of ``text`` (from its first ``{``): one JSON object
    ``{"tool": NAME, "args": {ARG: VALUE}}``; a code fence around it and text after it are
    ignored, and so are arguments the tool does not take.

    Raises:
        ToolCallError: not JSON, not an object, an unknown tool, a missing argument.
    """
    start = text.find("{")
    if start < 0:
        raise ToolCallError(f"The tool call is not JSON: {text.strip()[:120]!r}.")
    try:
        call, end = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError as error:
        raise ToolCallError(
            f"The tool call is not valid JSON ({error.msg}): {text[start:][:120]!r}."
        ) from error
    raw = text[start:end]
    if not isinstance(call, dict) or not isinstance(call.get("tool"), str):
        raise ToolCallError(f'A tool call needs a "tool" name: {raw[:120]!r}.')
    name = call["tool"]
    if name not in TOOLS:
        raise ToolCallError(f"There is no tool {name!r}; the tools are {', '.join(TOOLS)}.")
    args = call.get("args", {})
    if not isinstance(args, dict):
        raise ToolCallError(f'The "args" of a tool call are an object: {raw[:120]!r}.')
    key = TOOLS[name]
    if key is None:
        return ToolCall(name, "", raw)
    value = args.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ToolCallError(f'{name} needs "{key}" (a non-empty string): {raw[:120]!r}.')
    return ToolCall(name, value.strip(), raw)


@dataclass(frozen=True)
class ToolAction:
    """One action of a turn, as the trace shows it.

    Attributes:
        tool: the tool asked for (as the model wrote it, for an unreadable call).
        argument: its argument.
        ok: the action was done.
        outcome: what happened, in words (what the model is told: page text included).
        code: the error code of a refused or failed action (``TOOL_NOT_ALLOWED``,
            ``TOOL_LIMIT``, ``INVALID_TOOL_CALL``, ``TOOL_FAILED``), ``None`` when ``ok``.
        url: the page's address after the action (``None`` when no page is open).
        duration_s: how long it took.
    """

    tool: str
    argument: str
    ok: bool
    outcome: str
    code: str | None = None
    url: str | None = None
    duration_s: float = 0.0

    def feedback(self) -> str:
        """The result as the model reads it, in a system message after its call: the outcome
        in plain words (SmolLM2 answers in words after ``The page "..." is open. It says:
        ...``, and writes another call after a result that begins with a URL or a label)."""
        if self.ok:
            return self.outcome
        return f"Tool error ({self.tool}, {self.code}): {self.outcome}"

    def to_dict(self) -> dict[str, Any]:
        """The action for the trace (its outcome shortened)."""
        out = asdict(self)
        if len(self.outcome) > _OUTCOME_CHARS:
            out["outcome"] = self.outcome[: _OUTCOME_CHARS - 1] + "…"
        out["duration_s"] = round(self.duration_s, 3)
        return out


def _normalise(text: str) -> str:
    return " ".join(text.split())


class BrowserTool:
    """The browser tool of one assistant: a headless Chromium with one page, started on the
    first action and closed with :meth:`close` (or the assistant's ``aclose``).

    Args:
        policy: what it may open; the default allows nothing.
        executable: the Chromium to run; default: the system's ``chromium`` when there is one,
            else Playwright's own (``playwright install chromium``).

    Raises:
        MissingExtraError: Playwright is not installed (the ``assistant`` extra).
    """

    def __init__(self, policy: BrowserPolicy | None = None, executable: str | None = None) -> None:
        self.policy = policy or BrowserPolicy()
        self._api = import_extra("playwright.async_api", "assistant", "The browser tool")
        self.executable = executable or shutil.which("chromium")
        if executable is not None and not Path(executable).is_file():
            raise InvalidConfigError(f"No Chromium at {executable}.")
        self._playwright: Any = None
        self._browser: Any = None
        self._page: Any = None
        self._start_lock = asyncio.Lock()
        self._blocked: list[str] = []  # requests the route refused during the current action
        self.used = 0  # actions taken this turn

    def new_turn(self) -> None:
        """Begin a turn: its actions are counted from zero."""
        self.used = 0

    def instructions(self) -> str:
        """What the model is told about the tool (in the persona's system message)."""
        hosts = ", ".join(self.policy.allowed_hosts) or "none yet"
        return (
            "You can use a web browser. To use it, answer with one JSON line only: "
            '{"tool": NAME, "args": {...}}. Tools: open_page(url), read_page(), find(text), '
            f"click(text). Allowed sites: {hosts}. After a tool result, answer the user in "
            "one or two short sentences."
        )

    def reminder(self) -> str:
        """A line before the turn's context, just before the question: without it, SmolLM2
        forgets the format behind the turn's other system lines and echoes the request."""
        return 'Browser: answer with one JSON line {"tool": NAME, "args": {...}} to use it.'

    def examples(self) -> list[dict[str, str]]:
        """Example exchanges that show the model the call format (after the persona).

        SmolLM2-135M copies the format from these, and leans to the tool of the last example:
        the last one opens a page (the usual first step), a question without a page is
        answered in words. With the two ways of asking for a page (measured on 8 phrasings ×
        3 ports, greedy): 21 of 24 requests became an ``open_page`` call with the right URL,
        against 9 of 24 with one; no tool call for 4 questions that name no page.
        """
        return [
            {"role": "user", "content": "Can you show me https://example.com/news?"},
            {
                "role": "assistant",
                "content": '{"tool": "open_page", "args": {"url": "https://example.com/news"}}',
            },
            {"role": "user", "content": "Click Sports."},
            {"role": "assistant", "content": '{"tool": "click", "args": {"text": "Sports"}}'},
            {"role": "user", "content": "What is two plus two?"},
            {"role": "assistant", "content": "Two plus two is four."},
            {"role": "user", "content": "Open the page http://example.org/"},
            {
                "role": "assistant",
                "content": '{"tool": "open_page", "args": {"url": "http://example.org/"}}',
            },
        ]

    async def call(self, call: ToolCall) -> ToolAction:
        """Run a parsed call (within the turn's cap); never raises for a refused or failed
        action: the returned action says what happened."""
        action: Callable[[], Awaitable[ToolAction]]
        if call.tool == "open_page":
            action = lambda: self.open_page(call.argument)  # noqa: E731
        elif call.tool == "read_page":
            action = self.read_page
        elif call.tool == "find":
            action = lambda: self.find(call.argument)  # noqa: E731
        elif call.tool == "click":
            action = lambda: self.click(call.argument)  # noqa: E731
        else:  # parse_tool_call lets only TOOLS through
            return self.refuse(call.tool, call.argument, ToolCallError(f"No tool {call.tool!r}."))
        return await action()

    def refuse(self, tool: str, argument: str, error: EmotiVoiceError) -> ToolAction:
        """An action that is not run (an unreadable call): counted like the others, and
        recorded (as over the cap, if the turn has used its actions)."""
        started = time.perf_counter()
        limit = self._over_cap()
        if limit is None:
            self.used += 1
        return self._action(tool, argument, started, error=limit or error)

    async def open_page(self, url: str) -> ToolAction:
        """Open ``url`` (checked against the policy first: a refused URL is never asked for)."""

        async def run() -> str:
            target = self.policy.check(url)
            page = await self._ensure_page()
            try:
                await page.goto(target, wait_until="domcontentloaded")
            except self._api.Error as error:
                self._raise_blocked()
                raise ToolError(f"{target} did not open: {_first_line(error)}") from error
            self._raise_blocked()
            return await self._summary(page)

        return await self._run("open_page", url, run)

    async def read_page(self) -> ToolAction:
        """The open page's text (up to the policy's ``page_chars``)."""

        async def run() -> str:
            page = self._open_page()
            text = await self._text(page)
            more = " (cut)" if len(text) > self.policy.page_chars else ""
            return f"The page says{more}: {text[: self.policy.page_chars]}"

        return await self._run("read_page", "", run)

    async def find(self, text: str) -> ToolAction:
        """Where ``text`` occurs on the open page (case-insensitive): how often, and the words
        around its first few matches."""

        async def run() -> str:
            page = self._open_page()
            body = await self._text(page)
            needle, haystack = text.strip().lower(), body.lower()
            spots, at = [], haystack.find(needle)
            while at >= 0 and needle:
                spots.append(at)
                at = haystack.find(needle, at + len(needle))
            if not spots:
                raise ToolError(f"{text!r} is not on the page.")
            snippets = [
                body[max(0, s - _FIND_CONTEXT_CHARS) : s + len(needle) + _FIND_CONTEXT_CHARS]
                for s in spots[:_FIND_MATCHES]
            ]
            found = "; ".join(f"...{s}..." for s in snippets)
            return f"Found {text!r} {len(spots)} time(s): {found}"

        return await self._run("find", text, run)

    async def click(self, text: str) -> ToolAction:
        """Click the link or button whose text contains ``text`` (else any element showing
        it); a navigation it starts is subject to the policy like ``open_page``."""

        async def run() -> str:
            page = self._open_page()
            for kind, locator in (
                ("link", page.get_by_role("link", name=text)),
                ("button", page.get_by_role("button", name=text)),
                ("text", page.get_by_text(text)),
            ):
                if await locator.count():
                    before = page.url
                    try:
                        await locator.first.click()
                        await page.wait_for_load_state("domcontentloaded")
                    except self._api.Error as error:
                        await self._back_from_blocked(page, before)
                        raise ToolError(
                            f"Clicking {text!r} failed: {_first_line(error)}"
                        ) from error
                    await self._back_from_blocked(page, before)
                    return f"Clicked the {kind} {text!r}. {await self._summary(page)}"
            raise ToolError(f"Nothing on the page says {text!r}.")

        return await self._run("click", text, run)

    async def close(self) -> None:
        """Close the browser (it starts again on the next action)."""
        browser, playwright = self._browser, self._playwright
        self._browser = self._playwright = self._page = None
        if browser is not None:
            await browser.close()
        if playwright is not None:
            await playwright.stop()

    async def _run(self, tool: str, argument: str, run: Callable[[], Awaitable[str]]) -> ToolAction:
        started = time.perf_counter()
        limit = self._over_cap()
        if limit is not None:
            return self._action(tool, argument, started, error=limit)
        self.used += 1
        self._blocked.clear()
        try:
            outcome = await run()
        except ToolError as error:
            return self._action(tool, argument, started, error=error)
        except self._api.Error as error:  # a browser error the action did not expect
            return self._action(tool, argument, started, error=ToolError(_first_line(error)))
        return self._action(tool, argument, started, outcome=outcome)

    def _over_cap(self) -> ToolLimitError | None:
        if self.used < self.policy.max_actions:
            return None
        return ToolLimitError(
            f"This turn has used its {self.policy.max_actions} browser actions; no more are "
            "allowed until the user speaks again."
        )

    def _action(
        self,
        tool: str,
        argument: str,
        started: float,
        outcome: str = "",
        error: EmotiVoiceError | None = None,
    ) -> ToolAction:
        page = self._page
        url = None if page is None or page.url == "about:blank" else page.url
        action = ToolAction(
            tool=tool,
            argument=argument,
            ok=error is None,
            outcome=outcome if error is None else error.message,
            code=None if error is None else error.code,
            url=url,
            duration_s=time.perf_counter() - started,
        )
        logger.info("browser %s(%r): %s", tool, argument, "ok" if action.ok else f"{action.code}")
        return action

    async def _ensure_page(self) -> Any:
        async with self._start_lock:
            if self._page is None:
                try:
                    self._playwright = await self._api.async_playwright().start()
                    self._browser = await self._playwright.chromium.launch(
                        executable_path=self.executable, headless=True, args=_CHROMIUM_FLAGS
                    )
                    context = await self._browser.new_context(
                        accept_downloads=False, service_workers="block"
                    )
                    await context.route("**/*", self._route)
                    page = await context.new_page()
                except self._api.Error as error:
                    await self.close()
                    raise ToolError(f"Chromium could not start: {_first_line(error)}") from error
                page.set_default_timeout(self.policy.timeout_s * 1000)
                self._page = page
        return self._page

    async def _route(self, route: Any) -> None:
        """Every request of the page: one to a host that is not allowed is aborted, and so is
        a redirect to one (the request is made here, without following redirects, so that
        the ``Location`` is checked before the browser follows it)."""
        url = route.request.url
        if not self.policy.allows(url):
            await self._block(route, url)
            return
        if urlsplit(url).scheme.lower() not in _WEB_SCHEMES:
            await route.continue_()
            return
        try:
            response = await route.fetch(max_redirects=0)
        except self._api.Error as error:
            logger.debug("browser: %s failed: %s", url, _first_line(error))
            await route.abort("failed")
            return
        location = response.headers.get("location")
        if 300 <= response.status < 400 and location:
            target = urljoin(url, location)
            if not self.policy.allows(target):
                await self._block(route, target)
                return
        await route.fulfill(response=response)

    async def _block(self, route: Any, url: str) -> None:
        logger.info("browser: blocked a request to %s", url)
        self._blocked.append(url)
        await route.abort("blockedbyclient")

    def _raise_blocked(self) -> None:
        if self._blocked:
            try:
                self.policy.check(self._blocked[0])
            except ToolError as error:
                raise ToolNotAllowedError(
                    f"The page tried to load {self._blocked[0]}, which was blocked: {error.message}"
                ) from error

    async def _back_from_blocked(self, page: Any, before: str) -> None:
        """After a blocked navigation, back to the page it left (not Chromium's error page)."""
        if self._blocked and page.url != before:
            try:
                await page.go_back(wait_until="domcontentloaded")
            except self._api.Error:
                logger.debug("browser: no way back to %s", before)
        self._raise_blocked()

    def _open_page(self) -> Any:
        if self._page is None or self._page.url == "about:blank":
            raise ToolError("No page is open: open_page first.")
        return self._page

    async def _text(self, page: Any) -> str:
        body = await page.evaluate("() => document.body ? document.body.innerText : ''")
        return _normalise(str(body))

    async def _summary(self, page: Any) -> str:
        title = _normalise(await page.title()) or "(no title)"
        text = await self._text(page)
        head = text[: self.policy.page_chars]
        more = " (cut)" if len(text) > len(head) else ""
        return f'The page "{title}" is open. It says{more}: {head}'


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
