"""The attacks on the real Whisper base PyTorch copy, with budgets small enough for 2 CPU cores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emotivoice.audio import load_audio
from emotivoice.errors import InvalidTargetError

torch = pytest.importorskip("torch")

from emotivoice.models.torch_whisper import TorchWhisper, load_torch_whisper  # noqa: E402
from emotivoice.robustness import (  # noqa: E402
    AttackOptions,
    UntargetedOptions,
    targeted_attack,
    untargeted_attack,
)
from emotivoice.robustness.whisper_loss import greedy_transcripts, target_token_ids  # noqa: E402

pytestmark = pytest.mark.slow
STEP_BUDGET = 20  # the short target is reached in 5-15 steps on this clip


@pytest.fixture(scope="module")
def whisper() -> TorchWhisper:
    torch.set_num_threads(2)
    return load_torch_whisper("base")


@pytest.fixture(scope="module")
def short_clip(data_dir: Path) -> np.ndarray:
    return load_audio(data_dir / "speech" / "jfk.flac").samples[: int(1.5 * 16000)]


def _transcribe(whisper: TorchWhisper, samples: np.ndarray) -> str:
    return greedy_transcripts(whisper, [torch.from_numpy(samples)], "en")[0]


def test_short_utterance_reaches_short_target(whisper: TorchWhisper, short_clip: np.ndarray) -> None:
    assert "yes" not in _transcribe(whisper, short_clip).lower()
    options = AttackOptions(
        stage1_steps=STEP_BUDGET, check_every=5, stage2_steps=3, progress=False, device="cpu"
    )
    [result] = targeted_attack(whisper, [short_clip], ["Yes."], options)
    assert result.succeeded and result.stage1_success_step is not None
    assert result.stage1_success_step < STEP_BUDGET
    assert _transcribe(whisper, result.adversarial) == "Yes."
    assert result.stage1_adversarial is not None
    assert _transcribe(whisper, result.stage1_adversarial) == "Yes."
    delta = result.adversarial - short_clip
    assert np.abs(delta).max() <= options.initial_bound + 1e-6
    assert np.abs(delta).max() <= result.linf_bound + 1e-6  # the shrunk bound holds in stage 2
    assert result.iterations == STEP_BUDGET + 3


def test_untargeted_pgd_respects_its_snr_bound(
    whisper: TorchWhisper, short_clip: np.ndarray
) -> None:
    options = UntargetedOptions(snr_db=20.0, steps=2, progress=False, device="cpu")
    [result] = untargeted_attack(whisper, [short_clip], options)
    delta = result.adversarial - short_clip
    snr = 10 * np.log10(np.sum(short_clip**2) / np.sum(delta**2))
    assert snr >= 20.0 - 0.05
    assert result.kind == "untargeted" and result.goal == _transcribe(whisper, short_clip)


def test_targets_become_whisper_tokens(whisper: TorchWhisper) -> None:
    ids = target_token_ids(whisper, "ISN'T HE SPLENDID")  # LibriSpeech capitals → sentence case
    assert whisper.tokenizer.decode(list(ids)) == " Isn't he splendid"
    with pytest.raises(InvalidTargetError, match="at most"):
        target_token_ids(whisper, "word " * 300)
