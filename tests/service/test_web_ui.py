"""The web UI in a real browser: Debian's Chromium, headless, driven by Playwright, against a real
``emotivoice serve`` (embedded queue and worker). Screenshots of every page go to
``test-artifacts/ui/``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from emotivoice.evaluation.processes import running_server, service_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("ui-home")
    with running_server(service_env(home), home / "serve.log", workers=1) as client:
        yield str(client.base_url).removesuffix("/api/v1/").removesuffix("/api/v1")


@pytest.fixture(scope="module")
def fake_mic_wav(mic_wav: Callable[[str, np.ndarray], Path], jfk_path: Path) -> Path:
    """The JFK clip, followed by silence so that the utterance ends."""
    from emotivoice.audio import SAMPLE_RATE, load_audio

    samples = load_audio(jfk_path).samples
    padded = np.concatenate([np.zeros(SAMPLE_RATE // 2), samples, np.zeros(SAMPLE_RATE * 3)])
    return mic_wav("jfk-mic", padded)


@pytest.fixture(scope="module")
def browser(chromium: Callable[..., Any], fake_mic_wav: Path) -> Any:
    return chromium(fake_mic_wav, 1200, 900, accept_downloads=True)


class Console:
    """Collects console errors and uncaught exceptions of a page."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))


def wait_until(page: Any, expression: str, timeout_ms: int, arg: Any = None) -> None:
    """Poll ``expression`` until it is true. ``page.wait_for_function`` polls with ``eval``,
    which the UI's Content Security Policy forbids; ``page.evaluate`` is not subject to it."""
    import time

    deadline = time.monotonic() + timeout_ms / 1000
    while not page.evaluate(expression, arg):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        page.wait_for_timeout(100)


def test_upload_analyse_result_and_exports(
    browser: Any, server: str, jfk_path: Path, screenshot: Callable[[Any, str], None]
) -> None:
    page = browser.new_page()
    console = Console(page)
    page.goto(server + "/")
    page.wait_for_selector("#history")
    screenshot(page, "analyze-empty")
    page.set_input_files("#files", str(jfk_path))
    page.wait_for_selector("#queue td:has-text('completed')", timeout=180_000)
    screenshot(page, "analyze-done")
    page.click("#queue a:has-text('open')")
    page.wait_for_selector("#transcript .segment", timeout=30_000)
    transcript = page.inner_text("#transcript")
    assert "fellow Americans" in transcript
    segment = page.locator("#transcript .segment").first
    emotion = segment.get_attribute("data-emotion")
    assert emotion and f"emo-{emotion}" in (segment.get_attribute("class") or "")
    # JFK's sentence parts are units, each with its own emotion chips
    units = page.locator("#transcript .segment .unit")
    assert units.count() >= 2
    assert all(u.get_attribute("data-emotion") for u in units.all())
    assert units.first.locator(".chip").count() >= 1
    assert page.locator("#distribution svg").count() == 1
    assert page.locator("#timeline svg").count() == 1
    # one segment of 11 s: each emotion a line across the segment, not a dot at its centre
    spread = page.evaluate(
        "() => { const p = document.querySelector('#timeline path.timeline-line');"
        " return p.getBBox().width / p.ownerSVGElement.viewBox.baseVal.width; }"
    )
    assert spread > 0.5, spread
    assert page.locator("#features td").count() > 5
    headers = page.locator("#features th").all_inner_texts()
    assert "HNR (dB)" in headers and "pitch mean (Hz)" in headers and "hnr db" not in headers
    summary = page.inner_text("#summary")
    assert " 1 segment · 1 speaker · " in summary and "1 segments" not in summary, summary
    assert re.search(r"dominant emotion: (uncertain \()?\w+ \d+%", summary), summary
    # "completed in" is the job's own duration, exports and all, not the segments' analysis
    job = httpx.get(f"{server}/api/v1/analyses/{page.url.rsplit('/', 1)[-1]}").json()
    took = (
        datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])
    ).total_seconds()
    shown = float(page.inner_text("#status").removeprefix("completed in ").removesuffix(" s"))
    # (the API's timestamps are whole seconds: the duration holds the analysis within that)
    assert abs(shown - took) < 0.15 and took + 1.0 > job["result"]["processing_time_s"]
    # analysed without explanations: the Explain view offers every method to analyse again
    assert page.locator("#explain fieldset input[name='explain-method']").count() == 4
    segment.click()  # seeks the player; words get highlighted while it plays
    wait_until(page, "document.getElementById('player').currentTime > 0.5", 15_000)
    page.wait_for_selector("#transcript .word.current", timeout=15_000)
    screenshot(page, "result")
    downloads = {}
    for fmt in ("json", "csv", "srt", "vtt", "pdf"):
        with page.expect_download() as info:
            page.click(f"#export-{fmt}")
        downloads[fmt] = Path(info.value.path()).read_bytes()
    assert "fellow Americans" in json.loads(downloads["json"])["text"]
    assert "fellow Americans" in downloads["csv"].decode()
    assert downloads["pdf"].startswith(b"%PDF")
    assert downloads["srt"].startswith(b"1\n00:00:00,") and b"fellow Americans" in downloads["srt"]
    assert downloads["vtt"].startswith(b"WEBVTT\n\n00:00:00.")
    page.goto(server + "/")
    page.wait_for_selector("#history td:has-text('completed')")
    assert "jfk.flac" in page.inner_text("#history")
    screenshot(page, "history")
    assert console.errors == []


def test_speakers_card_shows_lanes_and_keeps_a_rename(
    browser: Any, server: str, screenshot: Callable[[Any, str], None]
) -> None:
    """A stereo call: one lane per channel's speaker; a speaker renamed on the page is renamed in
    the lanes and the transcript and stays renamed after a reload."""
    from emotivoice.evaluation.datasets import data_dir

    page = browser.new_page()
    console = Console(page)
    page.goto(server + "/")
    page.set_input_files("#files", str(data_dir() / "speech" / "stereo_diarization.wav"))
    page.wait_for_selector("#queue td:has-text('completed')", timeout=180_000)
    page.click("#queue a:has-text('open')")
    page.wait_for_selector("#speakers-card:not([hidden]) .lane-segment", timeout=30_000)
    assert "one speaker per channel" in page.inner_text("#speakers-method")
    lanes = page.locator("#speaker-lanes .lane-name")
    assert lanes.all_text_contents() == ["SPEAKER_1", "SPEAKER_2"]
    assert page.locator("#transcript .speaker-badge").count() == 2
    name = page.locator("input.speaker-name[data-speaker='SPEAKER_1']")
    name.fill("Agent")
    name.dispatch_event("change")
    assert page.locator("#speaker-lanes .lane-name").first.text_content() == "Agent"
    assert page.locator(".speaker-badge[data-speaker='SPEAKER_1']").first.inner_text() == "Agent"
    screenshot(page, "speakers")
    page.reload()
    page.wait_for_selector("#speakers-card:not([hidden]) .lane-segment", timeout=30_000)
    assert page.locator("#speaker-lanes .lane-name").first.text_content() == "Agent"
    assert console.errors == []


def test_invalid_file_shows_the_api_message(
    browser: Any, server: str, tmp_path: Path, screenshot: Callable[[Any, str], None]
) -> None:
    page = browser.new_page()
    console = Console(page)
    page.goto(server + "/")
    bogus = tmp_path / "notes.mp3"
    bogus.write_text("definitely not audio\n" * 50)
    page.set_input_files("#files", str(bogus))
    page.wait_for_selector("#upload-error:has-text('not an audio file')", timeout=30_000)
    screenshot(page, "analyze-error")
    page.goto(server + "/analyses/does-not-exist")
    page.wait_for_selector("#result-error:has-text('No analysis')")
    assert page.inner_text("#title") == "Analysis not found"
    assert page.locator("#result-body").is_hidden()  # no empty cards
    screenshot(page, "result-missing")
    # The browser reports the failed fetches themselves as console errors; nothing else may fail.
    assert [e for e in console.errors if "Failed to load resource" not in e] == []


def test_live_page_with_the_fake_microphone(
    browser: Any, server: str, screenshot: Callable[[Any, str], None]
) -> None:
    page = browser.new_page()
    console = Console(page)
    page.goto(server + "/live")
    screenshot(page, "live-idle")
    page.click("#start")
    page.wait_for_selector("#finals .final-text", timeout=90_000)
    wait_until(page, "document.getElementById('finals').innerText.includes('Americans')", 90_000)
    assert page.locator("#meter .bar").count() == 6
    assert page.locator("#live-timeline svg").count() == 1
    # latency from the end of speech to the final segment, on the stream's own clock
    latency = re.fullmatch(
        r"last (\d+\.\d\d) s · median (\d+\.\d\d) s", page.inner_text("#latency")
    )
    assert latency is not None and float(latency[1]) > 0 and float(latency[2]) > 0, latency
    page.click("#stop")
    # Stop says what it still does (the open utterance's analysis, saving) and counts
    assert re.match(r"Finishing: (analysing the last [\d.]+ s of audio|saving the recording)… ",
                    page.inner_text("#live-status"))  # fmt: skip
    page.wait_for_selector("#saved button", timeout=60_000)
    wait_until(page, "document.getElementById('live-status').innerText === 'Stopped.'", 30_000)
    screenshot(page, "live")
    finals = page.inner_text("#finals")
    assert "fellow Americans" in finals or "ask not what your country" in finals, finals
    name = page.inner_text("#saved .saved-name")  # the recording by its name, not a hex id
    assert re.fullmatch(r"stream-\d{8}-\d{6}\.wav", name), name
    # the live session is in the history, with a way to analyse it
    page.goto(server + "/")
    page.wait_for_selector("#history tr.live-recording")
    row = page.locator(f"#history tr.live-recording:has-text('{name}')")
    assert row.count() == 1 and row.locator("button:has-text('Analyse')").count() == 1
    assert console.errors == []


#: the Explain view's figures and a phrase of the one line under each
EXPLAIN_FIGURES = {
    "windows": "each time window's Shapley value",
    "deletion": "Deletion curve",
    "counterfactuals": "pitch, energy, tempo or spectral tilt",
    "attention": "Encoder self-attention",
    "rollout": "Attention rollout",
    "saliency": "Integrated Gradients",
}


def _analysis_request(request: Any) -> bool:
    return request.method == "POST" and request.url.endswith("/api/v1/analyses")


def test_explain_view_with_every_method(
    browser: Any, server: str, data_dir: Path, screenshot: Callable[[Any, str], None]
) -> None:
    clip = data_dir / "ravdess" / "Actor_11" / "03-01-05-02-01-01-11.flac"  # 3.6 s, angry
    page = browser.new_page()
    console = Console(page)
    page.goto(server + "/")
    methods = page.locator("#drop ~ fieldset input[name='explain-method']")
    assert methods.count() == 4
    for i in range(4):
        methods.nth(i).check()
    page.fill("#drop ~ fieldset input[type='number']", "3")
    with page.expect_request(_analysis_request) as sent:
        page.set_input_files("#files", str(clip))
    assert sent.value.post_data_json["options"] == {
        "explain": True,
        "explain_methods": ["shapley", "counterfactual", "attention", "gradients"],
        "explain_windows": 3,
    }
    page.wait_for_selector("#queue td:has-text('completed')", timeout=600_000)
    page.click("#queue a:has-text('open')")
    page.wait_for_selector("#explain figure", timeout=60_000)
    # a plain sentence first; the checks and the model internals folded away until asked for
    sentence = page.inner_text("#explain .explain-summary")
    assert re.match(r"The model heard \w+ \(\d+%\) mostly in ", sentence), sentence
    assert "would make it less sure" in sentence or "made it much less sure" in sentence
    advanced = page.locator("#explain details.advanced")
    assert advanced.count() == 1 and page.locator("#explain .faithfulness").is_hidden()
    for kind in ("deletion", "attention", "rollout", "saliency"):
        assert advanced.locator(f"figure[data-kind='{kind}']").count() == 1, kind
        assert advanced.locator(f"figure[data-kind='{kind}']").is_hidden(), kind
    advanced.locator("summary").click()
    assert "Faithfulness" in page.inner_text("#explain .faithfulness")
    for kind, caption in EXPLAIN_FIGURES.items():
        figure = page.locator(f"#explain figure[data-kind='{kind}']")
        assert figure.count() == 1, kind
        assert caption in figure.locator("figcaption").inner_text(), kind
        image = figure.locator("img")
        image.scroll_into_view_if_needed()  # the figures load lazily
        wait_until(
            page, "img => img.complete && img.naturalWidth === 800", 30_000, image.element_handle()
        )
    screenshot(page, "result-explain")
    # analyse again with other methods from the result page
    again = page.locator("#explain fieldset input[name='explain-method']")
    checked = [again.nth(i).get_attribute("value") for i in range(4) if again.nth(i).is_checked()]
    assert checked == ["shapley", "counterfactual", "attention", "gradients"]
    for i in (1, 2, 3):
        again.nth(i).uncheck()
    page.fill("#explain fieldset input[type='number']", "2")
    first = page.url
    with page.expect_request(_analysis_request) as sent:
        page.click("#explain button:has-text('Analyse again')")
    options = sent.value.post_data_json["options"]
    assert options["explain_methods"] == ["shapley"] and options["explain_windows"] == 2
    page.wait_for_url(lambda url: url != first)  # the new analysis' own page
    page.wait_for_selector("#explain figure[data-kind='windows']", timeout=300_000)
    assert page.locator("#explain figure[data-kind='attention']").count() == 0
    assert console.errors == []


def test_with_keys_on_the_key_never_appears_in_a_url(
    browser: Any, tmp_path_factory: pytest.TempPathFactory, jfk_path: Path
) -> None:
    """The key goes in headers; media, downloads and the live stream use short-lived tokens."""
    from emotivoice.service.settings import load_settings
    from emotivoice.service.storage import Store

    home = tmp_path_factory.mktemp("ui-keys-home")
    secret = Store(load_settings(home=home)).create_key("browser").secret
    env = service_env(home, require_api_key="true")
    with running_server(env, home / "serve.log", workers=1) as client:
        base = str(client.base_url).removesuffix("/api/v1/").removesuffix("/api/v1")
        page = browser.new_page()
        console = Console(page)
        urls: list[str] = []
        page.on("request", lambda r: urls.append(r.url))
        page.on("websocket", lambda ws: urls.append(ws.url))
        page.goto(base + "/")
        page.wait_for_selector("#history")
        with page.expect_navigation():
            page.fill("#api-key", secret)
            page.dispatch_event("#api-key", "change")  # stores the key and reloads
        page.wait_for_selector("#history")
        console.errors.clear()  # the first load, without a key, was refused (401) as it should
        page.set_input_files("#files", str(jfk_path))
        page.wait_for_selector("#queue td:has-text('completed')", timeout=180_000)
        page.click("#queue a:has-text('open')")
        page.wait_for_selector("#transcript .segment", timeout=30_000)
        wait_until(page, "document.getElementById('player').readyState >= 1", 15_000)
        urls.append(page.get_attribute("#export-json", "href") or "")
        with page.expect_download() as info:  # the link works with its token
            page.click("#export-json")
        assert "fellow Americans" in json.loads(Path(info.value.path()).read_text())["text"]
        page.goto(base + "/live")
        page.click("#start")
        page.wait_for_selector("#finals .final-text", timeout=90_000)
        page.click("#stop")
        page.wait_for_selector("#saved button", timeout=60_000)
        assert console.errors == []
        log = (home / "serve.log").read_text()
    assert all(secret not in url and "api_key" not in url for url in urls), urls
    tokened = [u for u in urls if "token=" in u]
    assert any("/audio?token=" in u for u in tokened), urls
    assert any("/export?format=json&token=" in u for u in tokened), urls
    assert any(u.startswith("ws://") and "/stream?token=" in u for u in tokened), urls
    assert secret not in log
