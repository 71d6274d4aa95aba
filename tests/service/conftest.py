"""What the service tests share: for the web UI's browser tests (tests/service/test_web_*.py),
Debian's Chromium, headless, launched by Playwright with a fake microphone that plays a WAV
file, and the WAV files those microphones play; for the wake word's routes, a completed job of
the wake-word studio."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

#: the web tests' screenshots
UI_ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
    # the page is granted the microphone without asking, and hears the file given
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
)


@pytest.fixture(scope="session")
def screenshot() -> Callable[[Any, str], None]:
    """``screenshot(page, name)``: the whole page as ``test-artifacts/ui/NAME.png``."""
    UI_ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str) -> None:
        page.screenshot(path=str(UI_ARTIFACTS / f"{name}.png"), full_page=True)

    return take


@pytest.fixture(scope="session")
def mic_wav(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, np.ndarray], Path]:
    """``mic_wav(name, samples)``: 16 kHz mono float samples as the 16-bit WAV file a fake
    microphone plays (Chromium loops it: end it with silence)."""
    from emotivoice.audio import encode_audio

    folder = tmp_path_factory.mktemp("mic")

    def write(name: str, samples: np.ndarray) -> Path:
        path = folder / f"{name}.wav"
        encode_audio(np.clip(samples, -1, 1).astype(np.float32), "wav", "pcm_s16le", target=path)
        return path

    return write


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """``chromium(mic, width, height, **options)``: a headless Chromium (a persistent context
    with a fresh profile) whose microphone plays the WAV file ``mic``; ``options`` go to
    Playwright's ``launch_persistent_context``. Closed when the test module ends."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        contexts: list[Any] = []

        def launch(mic: Path, width: int, height: int, **options: Any) -> Any:
            context = p.chromium.launch_persistent_context(
                str(tmp_path_factory.mktemp("chromium-profile")),
                executable_path=CHROMIUM,
                headless=True,
                args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={mic}"],
                viewport={"width": width, "height": height},
                **options,
            )
            contexts.append(context)
            return context

        yield launch
        for context in contexts:
            context.close()


@pytest.fixture(scope="session")
def studio_job() -> Callable[[Any, bool], str]:
    """``studio_job(store, completed)``: the id of a wake-word job of the key-less owner, left
    as the studio's worker leaves it: running, or completed with its trained model in the
    job's run folder. The model is the shipped ``hey_jarvis``, itself trained by the studio: a
    real trained model without the minutes of a training run
    (tests/service/test_wakeword_routes.py runs one end to end)."""

    def make(store: Any, completed: bool) -> str:
        from emotivoice.service.auth import ANONYMOUS
        from emotivoice.service.storage.wakeword import RUN_FOLDER
        from emotivoice.wakeword import load_model

        job = store.create_wakeword_job(ANONYMOUS, "hey jarvis", {"preset": "quick"})
        assert store.claim_wakeword(job.id, "test-worker") is not None
        if completed:
            shipped = load_model("hey_jarvis")
            run = store.wakeword_dir(job.id) / RUN_FOLDER
            run.mkdir(parents=True)
            shutil.copy(shipped.path, run / "model.onnx")
            assert store.complete_wakeword(job.id, {"threshold": shipped.threshold})
        return str(job.id)

    return make
