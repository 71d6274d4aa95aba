"""The Assistant page in a real browser: Debian's Chromium, headless, driven by Playwright, against
a real ``emotivoice serve`` with the real small language model and espeak-ng. The fake microphone
speaks a question synthesised with flite (a voice the assistant does not reply with); the test
holds the talk button while it does. The screenshot goes to ``test-artifacts/ui/``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emotivoice.audio import SAMPLE_RATE
from emotivoice.evaluation.processes import running_server, service_env

pytestmark = pytest.mark.slow

LEAD_S = 1.5  # silence before the question: the microphone opens a moment before the button
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def question_wav(mic_wav: Callable[[str, np.ndarray], Path]) -> tuple[Path, float]:
    """The fake microphone: silence, the spoken question, then silence for the rest of the
    test (Chromium loops the file). Returns the file and the question's end in seconds."""
    from emotivoice.evaluation.assistant import QUESTION_VOICE
    from emotivoice.wakeword.tts import synthesize

    spoken = synthesize(QUESTION, QUESTION_VOICE)
    lead, tail = np.zeros(int(LEAD_S * SAMPLE_RATE)), np.zeros(60 * SAMPLE_RATE)
    path = mic_wav("question", np.concatenate([lead, spoken, tail]))
    return path, LEAD_S + spoken.size / SAMPLE_RATE


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("assistant-ui-home")


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[str]:
    pytest.importorskip("cyllama")
    env = service_env(home, assistant_voice="espeak-ng", assistant_max_reply_tokens=24)
    with running_server(env, home / "serve.log", workers=1) as client:
        yield str(client.base_url).removesuffix("/api/v1/").removesuffix("/api/v1")


@pytest.fixture(scope="module")
def browser(chromium: Callable[..., Any], question_wav: tuple[Path, float]) -> Any:
    return chromium(question_wav[0], 1100, 900)


def wait_until(page: Any, expression: str, timeout_s: float) -> None:
    """Poll ``expression`` (``page.wait_for_function`` uses ``eval``, which the UI's Content
    Security Policy forbids)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        page.wait_for_timeout(100)


def test_push_to_talk_shows_the_emotion_the_reply_its_audio_and_latency_bars(
    browser: Any,
    server: str,
    question_wav: tuple[Path, float],
    screenshot: Callable[[Any, str], None],
) -> None:
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server + "/assistant")
    assert page.get_attribute("nav a[href='/assistant']", "aria-current") == "page"
    page.click("#connect")
    # the models load on the first conversation; the microphone opens once they have
    wait_until(page, "document.getElementById('assistant-status').dataset.ready === 'true'", 180)
    assert page.is_enabled("#talk") and "hold the talk button" in page.inner_text(
        "#assistant-status"
    )
    page.hover("#talk")
    page.mouse.down()
    assert page.get_attribute("#talk", "aria-pressed") == "true"
    page.wait_for_timeout(int((question_wav[1] + 0.6) * 1000))
    page.mouse.up()
    page.wait_for_selector("#chat .turn .latency", timeout=120_000)
    turn = page.locator("#chat .turn").first
    said = turn.locator(".user-text").inner_text().lower()
    assert "capital" in said and "france" in said, said
    emotion = turn.locator(".user").get_attribute("data-emotion")
    assert emotion in ("anger", "fear", "happiness", "neutral", "sadness", "surprise")
    meta = turn.locator(".user-meta").inner_text()
    assert emotion in meta and "%" in meta and "reply (" in meta, meta
    assert turn.locator(".reply-text").inner_text().strip()
    # the reply's audio: played as it came, kept as a WAV the user can play again
    wait_until(page, "document.querySelector('#chat audio.reply-audio')?.duration > 0.3", 30)
    # one latency bar per stage, each with its figure
    assert turn.locator(".latency .lat-track").count() == 6
    figures = turn.locator(".latency > span").all_inner_texts()[1::2]
    assert len(figures) == 6 and all(f.endswith(" s") for f in figures[:5]), figures
    assert turn.locator(".lat-bar.total").count() == 1
    screenshot(page, "assistant")
    page.click("#end")
    wait_until(page, "document.getElementById('assistant-status').innerText.includes('ended')", 60)
    assert errors == []


def test_hands_free_offers_a_trained_wake_word_and_the_server_takes_it(
    browser: Any, server: str, home: Path, studio_job: Callable[[Any, bool], str]
) -> None:
    """A completed wake-word job of the key is offered beside the Hands-free box; started with
    it, the conversation listens for its phrase (the server resolved the job's model)."""
    from emotivoice.service.settings import load_settings
    from emotivoice.service.storage import Store

    job = studio_job(Store(load_settings(home=home)), True)
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server + "/assistant")
    page.wait_for_selector(f"#wake-word option[value='{job}']", state="attached")
    assert page.locator("#wake-word option").first.get_attribute("value") == "hey_jarvis"
    page.check("#hands-free")
    page.select_option("#wake-word", job)
    page.click("#connect")
    wait_until(page, "document.getElementById('assistant-status').dataset.ready === 'true'", 180)
    assert page.inner_text("#assistant-status") == "Listening for “hey jarvis”…"
    assert page.is_disabled("#talk") and page.is_disabled("#wake-word")
    page.click("#end")
    wait_until(page, "document.getElementById('assistant-status').innerText.includes('ended')", 60)
    assert errors == [] and page.inner_text("#assistant-error") == ""
