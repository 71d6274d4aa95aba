"""The attacks on a real Whisper (tiny.en, the bundled small one) with budgets for 2 CPU cores.

The full-size benchmark on Whisper base is benchmarks/attack_librispeech.py."""

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
STEP_BUDGET = 8  # with a 5× larger step than the default the target comes within 2-5 steps
FAST_LR = 500 / 32768


@pytest.fixture(scope="module")
def whisper() -> TorchWhisper:
    torch.set_num_threads(2)
    return load_torch_whisper("tiny.en")


@pytest.fixture(scope="module")
def short_clip(data_dir: Path) -> np.ndarray:
    return load_audio(data_dir / "speech" / "jfk.flac").samples[: int(1.5 * 16000)]


def _transcribe(whisper: TorchWhisper, samples: np.ndarray) -> str:
    return greedy_transcripts(whisper, [torch.from_numpy(samples)], "en")[0]


def test_short_utterance_reaches_short_target(
    whisper: TorchWhisper, short_clip: np.ndarray
) -> None:
    assert "yes" not in _transcribe(whisper, short_clip).lower()
    options = AttackOptions(
        stage1_steps=STEP_BUDGET,
        stage1_lr=FAST_LR,
        check_every=2,
        stage2_steps=2,
        progress=False,
        device="cpu",
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
    assert result.iterations == STEP_BUDGET + 2


def test_untargeted_pgd_respects_its_snr_bound(
    whisper: TorchWhisper, short_clip: np.ndarray
) -> None:
    options = UntargetedOptions(snr_db=20.0, steps=1, progress=False, device="cpu")
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


def test_robust_stage_runs_through_simulated_rooms(
    whisper: TorchWhisper, short_clip: np.ndarray
) -> None:
    options = AttackOptions(
        stage1_steps=1, stage2_steps=1, rooms=2, progress=False, device="cpu", seed=3
    )
    [result] = targeted_attack(whisper, [short_clip[:8000]], ["Yes."], options)
    assert result.adversarial.shape == (8000,)
    assert np.isfinite(result.adversarial).all()
    assert 0 < np.abs(result.adversarial - short_clip[:8000]).max() <= options.initial_bound + 1e-6


def test_cli_writes_audio_and_reports(
    whisper: TorchWhisper, short_clip: np.ndarray, tmp_path: Path
) -> None:
    import json

    from scipy.io import wavfile

    from emotivoice.cli import main

    clip = tmp_path / "clip.wav"
    wavfile.write(clip, 16000, short_clip)
    out = tmp_path / "out"
    argv = ["attack", str(clip), "--target", "Yes.", "--model", "tiny.en", "--device", "cpu"]
    argv += ["--stage1-steps", "1", "--stage2-steps", "0", "--transfer", "tiny.en", "-o", str(out)]
    code = main(argv)
    report = json.loads((out / "clip.json").read_text())
    assert code == (0 if report["success"] else 1)
    assert report["success"] == (report["wer_to_target"] == 0.0)
    assert report["iterations"] == 1 and report["transfer"][0]["model"] == "tiny.en"
    rate, adversarial = wavfile.read(out / "clip.adv.16k.wav")
    assert rate == 16000 and adversarial.dtype == np.float32 and adversarial.size == short_clip.size
    assert report["distortion"]["snr_db"] > 20
    summary = json.loads((out / "summary.json").read_text())
    assert summary["examples"] == 1 and "| clip.wav |" in (out / "summary.md").read_text()


def test_cli_attacks_every_file_of_a_directory(
    whisper: TorchWhisper, short_clip: np.ndarray, tmp_path: Path
) -> None:
    import json

    from scipy.io import wavfile

    from emotivoice.cli import main

    folder = tmp_path / "clips"
    (folder / "more").mkdir(parents=True)
    wavfile.write(folder / "first.wav", 16000, short_clip)
    wavfile.write(folder / "more" / "second.wav", 16000, short_clip[:16000])
    (folder / "targets.txt").write_text("not audio: ignored")
    out = tmp_path / "out"
    argv = ["attack", str(folder), "--target", "Yes.", "--model", "tiny.en", "--device", "cpu"]
    argv += ["--stage1-steps", "1", "--stage2-steps", "0", "--transfer", "-o", str(out)]
    code = main(argv)
    reports = {name: json.loads((out / f"{name}.json").read_text()) for name in ("first", "second")}
    assert code == (0 if all(r["success"] for r in reports.values()) else 1)
    for name, report in reports.items():
        assert report["file"] == f"{name}.wav" and report["target"] == "Yes."
        assert report["kind"] == "targeted" and report["iterations"] == 1
        assert report["transfer"] == []
        assert (out / f"{name}.adv.16k.wav").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["examples"] == 2
