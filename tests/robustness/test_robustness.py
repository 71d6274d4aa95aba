"""Robustness lab without the attack loop: masking threshold, features, inputs, reports, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emotivoice.audio import load_audio
from emotivoice.cli import main
from emotivoice.errors import (
    AudioFileNotFoundError,
    AudioTooLongError,
    InvalidConfigError,
    InvalidTargetError,
)
from emotivoice.robustness import load_attack_csv, load_attack_dir, load_items, masking_threshold
from emotivoice.robustness.report import build_report, distortion
from emotivoice.robustness.whisper_loss import validate_target

RATE = 16000
TONE_BIN = 128  # 128 × 16000 / 2048 = 1000 Hz exactly: a Hann window leaks only to bins 127, 129


def _bark(f: float) -> float:
    return 13 * np.arctan(0.00076 * f) + 3.5 * np.arctan((f / 7500) ** 2)


def _quiet_db(f: float) -> float:
    k = f / 1000
    return 3.64 * k**-0.8 - 6.5 * np.exp(-0.6 * (k - 3.3) ** 2) + 1e-3 * k**4 - 12


@pytest.mark.parametrize("bin_index", [100, 128, 140, 900])
def test_masking_threshold_of_a_tone_matches_hand_computation(bin_index: int) -> None:
    t = np.arange(RATE) / RATE
    tone = 0.5 * np.sin(2 * np.pi * 1000.0 * t)
    computed = masking_threshold(tone).threshold_db

    # by hand: the peak bin is set to 96 dB, its neighbours get a quarter of its amplitude
    # (-6.02 dB each); the masker's level sums the three; tonal masking index -6.025-0.275 z;
    # spreading +27 dB/Bark below, -27 + 0.37 (P - 40) dB/Bark above; plus the quiet threshold
    neighbour_db = 96 + 20 * np.log10(0.5)
    masker_db = 10 * np.log10(10**9.6 + 2 * 10 ** (neighbour_db / 10))
    z_masker = _bark(1000.0)
    f = bin_index * RATE / 2048
    dz = _bark(f) - z_masker
    slope = -27 + 0.37 * (masker_db - 40) if dz > 0 else 27.0
    individual_db = masker_db - 6.025 - 0.275 * z_masker + slope * dz
    expected_db = 10 * np.log10(10 ** (individual_db / 10) + 10 ** (_quiet_db(f) / 10))

    assert masker_db == pytest.approx(97.76, abs=0.01)
    np.testing.assert_allclose(computed[:, bin_index], expected_db, atol=0.01)


def test_perturbation_psd_is_on_the_threshold_scale() -> None:
    torch = pytest.importorskip("torch")
    from emotivoice.robustness.masking import perturbation_psd

    tone = 0.5 * np.sin(2 * np.pi * 1000.0 * np.arange(RATE) / RATE)
    masking = masking_threshold(tone)
    psd = perturbation_psd(
        torch.from_numpy(tone[None].astype(np.float32)), torch.tensor([masking.psd_max])
    )[0].numpy()
    assert psd.shape == masking.threshold.shape
    assert 10 * np.log10(psd.max()) == pytest.approx(96.0, abs=0.01)  # the tone masks itself
    assert (psd[:, TONE_BIN] > masking.threshold[:, TONE_BIN]).all()
    assert (psd[:, 900] < masking.threshold[:, 900]).all()


def test_differentiable_features_match_faster_whisper(data_dir: Path) -> None:
    torch = pytest.importorskip("torch")
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.feature_extractor import FeatureExtractor

    from emotivoice.models.torch_whisper import log_mel, mel_filters

    samples = load_audio(data_dir / "librispeech" / "5142-36377-0007.flac").samples
    ours = log_mel(torch.from_numpy(samples), torch.from_numpy(mel_filters()), pad="features")
    reference = pad_or_trim(FeatureExtractor()(samples))
    assert ours.shape == (1, 80, 3000) == (1, *reference.shape)
    np.testing.assert_allclose(ours[0].numpy(), reference, atol=2e-3)


@pytest.mark.parametrize(
    ("target", "match"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("open the door 🙂", "does not transcribe"),
        ("<|endoftext|>", "does not transcribe"),
        ("...", "no words"),
    ],
)
def test_bad_targets_are_refused(target: str, match: str) -> None:
    with pytest.raises(InvalidTargetError, match=match):
        validate_target(target)


def test_valid_target_is_kept() -> None:
    assert validate_target("  ISN'T he   splendid? ") == "ISN'T he splendid?"


def _csv(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "set.csv"
    path.write_text("file,target\n" + "\n".join(rows) + "\n")
    return path


def test_inputs_are_checked_before_attacking(tmp_path: Path, data_dir: Path) -> None:
    clip = data_dir / "librispeech" / "61-70968-0011.flac"
    with pytest.raises(AudioFileNotFoundError, match="no such file"):
        load_attack_csv(_csv(tmp_path, ["missing.flac,hello there"]))
    with pytest.raises(
        InvalidTargetError, match=r"61-70968-0011\.flac: The target transcript is empty"
    ):
        load_items([(clip, " ", None)])
    long_wav = tmp_path / "long.wav"
    from scipy.io import wavfile

    wavfile.write(long_wav, RATE, np.zeros(31 * RATE, np.float32))
    with pytest.raises(AudioTooLongError, match="at most 30 s"):
        load_items([(long_wav, "hello", None)])
    items = load_attack_csv(data_dir / "librispeech" / "transcripts.csv")
    assert len(items) == 10 and all(i.reference and i.target for i in items)


def test_report_fields_are_consistent(data_dir: Path) -> None:
    pytest.importorskip("pesq")
    clean = load_audio(data_dir / "librispeech" / "61-70968-0011.flac").samples
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(clean.size).astype(np.float32)
    noise *= np.linalg.norm(clean) / np.linalg.norm(noise) * 10 ** (-30 / 20)  # 30 dB SNR
    dist = distortion(clean, clean + noise)
    assert dist.snr_db == pytest.approx(30.0, abs=0.01)
    assert 1.0 <= dist.pesq <= 4.65 and 0.9 < dist.stoi <= 1.0
    assert 0.0 <= dist.bins_above_threshold <= dist.frames_above_threshold <= 1.0
    target = "ISN'T HE SPLENDID CRIED JASPER"
    attack = {
        "stage2_applied": True,
        "stage1_success_step": 3,
        "linf_bound": 0.01,
        "iterations": 10,
        "seconds": 1.0,
        "device": "cpu",
    }
    for transcript in ("Isn't he splendid, cried Jasper.", "Is he splendid, cried Jasper?"):
        report = build_report(
            file="x.flac",
            kind="targeted",
            goal=target,
            original="HE GAVE WAY",
            clean_transcript="He gave way.",
            transcript=transcript,
            dist=dist,
            transfer=[("tiny.en", transcript), ("base-int8", "He gave way.")],
            **attack,
        )
        assert report.success == (report.wer_to_target == 0.0)
        assert report.transfer[0].reaches_goal == report.success
        assert not report.transfer[1].reaches_goal
        data = json.loads(json.dumps(report.to_dict()))
        for key in ("success", "wer_to_target", "cer_to_original", "distortion", "transfer"):
            assert key in data
        assert set(data["distortion"]) >= {"snr_db", "db_x", "pesq", "stoi"}
    assert not report.success and report.wer_to_target > 0


def test_cli_reports_bad_input_without_loading_a_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["attack", str(_csv(tmp_path, ["nowhere.flac,hello"]))]) == 1
    assert "no such file. [FILE_NOT_FOUND]" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["attack", str(tmp_path / "one.flac")])
    assert exit_info.value.code == 2
    assert "needs --target" in capsys.readouterr().err


def test_directory_inputs(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = data_dir / "librispeech" / "61-70968-0011.flac"
    folder = tmp_path / "clips"
    (folder / "nested").mkdir(parents=True)
    (folder / "a.flac").write_bytes(clip.read_bytes())
    (folder / "nested" / "b.flac").write_bytes(clip.read_bytes())
    (folder / "notes.txt").write_text("not audio, not an audio name: ignored")
    items = load_attack_dir(folder, "open the door")
    assert [i.path.name for i in items] == ["a.flac", "b.flac"]
    assert {i.target for i in items} == {"open the door"} and items[0].reference is None
    (folder / "nested" / "a.wav").write_bytes(b"")  # same output name as a.flac
    with pytest.raises(InvalidConfigError, match="share the name 'a'"):
        load_attack_dir(folder, "open the door")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no recordings here")
    assert main(["attack", str(empty), "--target", "hello"]) == 1
    err = capsys.readouterr().err
    assert "empty: no audio files to attack" in err and ".flac" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as no_target:
        main(["attack", str(empty)])
    assert no_target.value.code == 2
    assert "a targeted attack of a directory needs --target" in capsys.readouterr().err
    with pytest.raises(SystemExit) as audio_dir:
        main(["attack", str(empty), "--target", "hello", "--audio-dir", str(folder)])
    assert audio_dir.value.code == 2 and "--audio-dir" in capsys.readouterr().err


def test_simulated_rooms_and_reverberation() -> None:
    torch = pytest.importorskip("torch")
    from emotivoice.robustness.attack import _reverberate
    from emotivoice.robustness.rooms import RoomOptions, simulate_rirs

    options = RoomOptions(direct_to_reverberant_db=(3.0, 6.0))
    rirs = simulate_rirs(4, np.random.default_rng(0), options)
    assert rirs.shape == (4, 8000) and np.all(rirs[:, 0] == 1.0)
    drr_db = -10 * np.log10(np.sum(rirs[:, 1:] ** 2, axis=1))
    assert np.all((drr_db > 3.0 - 1e-3) & (drr_db < 6.0 + 1e-3))
    late = np.abs(rirs[:, 4000:]).max()  # 0.25 s in: at most 0.4 s RT60, so decayed by ≥ 37 dB
    assert late < np.abs(rirs[:, 1:800]).max()
    audio = torch.from_numpy(np.random.default_rng(1).uniform(-0.5, 0.5, (2, 3000)).astype("f4"))
    identity = torch.zeros(4, 100)
    identity[:, 0] = 1.0
    wet = _reverberate(audio, identity)  # two rooms per utterance
    assert wet.shape == (4, 3000)
    np.testing.assert_allclose(wet[1].numpy(), audio[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(wet[2].numpy(), audio[1].numpy(), atol=1e-5)
