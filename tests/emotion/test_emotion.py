"""Emotion recognition: the numpy head, backends, uncertainty, file summary, pipeline, recipe."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

import emotivoice
from emotivoice.emotion import BASE_EMOTIONS, EmotionAnalyzer, EmotionOptions
from emotivoice.emotion.head import EmotionHead
from emotivoice.emotion.torch_head import head_module
from emotivoice.errors import InvalidConfigError, ModelIntegrityError, ModelNotFoundError
from emotivoice.metrics import classification_report
from emotivoice.pipeline import AnalyzeOptions
from emotivoice.results import EmotionUnit, Segment
from emotivoice.training.augment import augment, channel_eq
from emotivoice.training.config import TrainConfig
from emotivoice.training.corpora import read_corpus
from emotivoice.training.fit import (
    _epoch_batches,
    export_head,
    fit_temperature,
    predict_logits,
    train_head,
)
from emotivoice.training.recipe import recipe_jobs
from emotivoice.training.states import Clip, StateSet

torch = pytest.importorskip("torch")


@pytest.mark.parametrize(
    "config",
    [
        TrainConfig(),
        TrainConfig(pooling="attentive", layer_norm=True, hidden_dim=16, batch_norm=True),
    ],
)
def test_numpy_head_matches_torch_module(config: TrainConfig) -> None:
    module = head_module(512, config.architecture).eval()
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.normal_(0, 0.05)
        module.standardise.running_mean.normal_()
        module.standardise.running_var.uniform_(0.5, 2)
    head = EmotionHead(export_head(module, 1.3, {"config": asdict(config)}))
    states = np.random.default_rng(0).standard_normal((37, 512)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(states)[None], torch.ones(1, 37, dtype=torch.bool))[0]
    np.testing.assert_allclose(head.logits(states), expected.numpy(), atol=1e-4)
    p = head.probabilities(states)
    assert p.shape == (6,) and p.sum() == pytest.approx(1.0)


def test_default_head_and_broken_files(tmp_path: Path) -> None:
    head = EmotionHead.load()
    assert head.metadata["labels"] == list(BASE_EMOTIONS)
    assert 0.1 < head.temperature < 10
    assert "ravdess_speaker_disjoint" in head.metadata["evaluations"]
    broken = tmp_path / "broken.npz"
    np.savez(broken, temperature=np.array(1.0))
    with pytest.raises(ModelIntegrityError, match="incomplete"):
        EmotionHead.load(broken)
    with pytest.raises(ModelNotFoundError):
        EmotionHead.load(tmp_path / "absent.npz")
    metadata = dict(head.metadata, config=dict(head.config))
    del metadata["config"]["adapter_alpha"]  # the LoRA scale is part of the weights' meaning
    extras = {"temperature": np.array(head.temperature), "metadata": np.array(json.dumps(metadata))}
    np.savez(broken, **head.weights, **extras)
    with pytest.raises(ModelIntegrityError, match="adapter_alpha"):
        EmotionHead.load(broken)


def _segment(start: float, end: float, units: tuple[EmotionUnit, ...] = ()) -> Segment:
    emotion = units[0].emotion if units else None
    return Segment(0, start, end, "", "en", 1.0, 0.0, 0.0, (), None, emotion, units=units)


def test_uncertainty_short_segments_and_file_summary() -> None:
    analyzer = EmotionAnalyzer(EmotionOptions(uncertain_below=0.5))
    confident = analyzer.scores_from_probabilities(
        np.array([0.8, 0.04, 0.04, 0.04, 0.04, 0.04]), 3.0
    )
    assert confident.dominant == "anger" and not confident.uncertain and not confident.short
    flat = analyzer.scores_from_probabilities(np.array([0.3, 0.2, 0.1, 0.2, 0.1, 0.1]), 3.0)
    assert flat.uncertain
    short = analyzer.scores_from_probabilities(np.array([0.8, 0.04, 0.04, 0.04, 0.04, 0.04]), 0.6)
    assert short.short and short.uncertain
    sad = analyzer.scores_from_probabilities(np.array([0.04, 0.04, 0.04, 0.04, 0.8, 0.04]), 1.0)
    # one segment of two units (3 s of anger, 1 s of sadness), and a segment without units
    # (a file before schema 1.3) that counts as one unit
    first = _segment(
        0.0, 4.0, (EmotionUnit(0.0, 3.0, "", confident), EmotionUnit(3.0, 4.0, "", sad))
    )
    old = dataclasses.replace(_segment(10.0, 11.0), emotion=sad)
    summary = analyzer.summarise([first, old])
    assert summary is not None
    assert summary.distribution["anger"] == pytest.approx((3 * 0.8 + 2 * 0.04) / 5, abs=1e-3)
    assert summary.dominant == "anger" and summary.confidence == summary.distribution["anger"]
    assert summary.uncertain  # anger's share 0.496 is below 0.5: nothing stands out
    # without windows, the timeline has a point per unit
    assert [p.dominant for p in summary.timeline] == ["anger", "sadness", "sadness"]
    assert analyzer.summarise([]) is None


def test_options_validation_and_flat_keywords() -> None:
    with pytest.raises(InvalidConfigError):
        EmotionOptions(uncertain_below=2)
    with pytest.raises(InvalidConfigError, match="Unknown emotion model"):
        EmotionAnalyzer(EmotionOptions(model="nonsense"))
    options = AnalyzeOptions.from_kwargs(emotion_model="default", uncertain_below=0.6)
    assert options.emotion is not None and options.emotion.uncertain_below == 0.6
    assert AnalyzeOptions.from_kwargs(emotion=False).emotion is None


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--soup", "0", "soup is a number of fits (1 or more), not 0"),
        ("--min-steps", "-5", "min_steps is 0 (off) or a number of steps, not -5"),
    ],
)
def test_train_emotion_rejects_bad_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, message: str
) -> None:
    from emotivoice.cli import main

    code = main(["train-emotion", "--data", str(tmp_path), option, value])
    assert code != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_small_training_sets_get_the_minimum_steps() -> None:
    from emotivoice.training.config import TrainConfig
    from emotivoice.training.fit import training_epochs

    # RAVDESS alone with three augmented copies: 4,152 examples, 33 batches an epoch
    assert training_epochs(4152, TrainConfig()) == 40  # the recipe's floor: 1,300 steps
    assert training_epochs(4152, TrainConfig(min_steps=0)) == 10
    # a set that already gets the steps in its epochs is not trained longer (the final fit)
    assert training_epochs(22060, TrainConfig()) == 10


def test_corpus_readers(data_dir: Path, tmp_path: Path) -> None:
    ravdess = read_corpus(data_dir / "ravdess", "ravdess")
    assert len(ravdess) == 1040  # 1,200 minus 160 disgust clips; calm counted as neutral
    assert {c.emotion for c in ravdess} == set(BASE_EMOTIONS)
    assert len({c.speaker for c in ravdess}) == 20
    table = tmp_path / "labels.csv"
    table.write_text("path,emotion,speaker\na.wav,Happy,s1\nb.wav,calm,s2\n")
    clips = read_corpus(tmp_path, "csv")
    assert [c.emotion for c in clips] == ["happiness", "neutral"]
    table.write_text("path,emotion,speaker\na.wav,bored,s1\n")
    with pytest.raises(InvalidConfigError, match="line 2"):
        read_corpus(tmp_path, "csv")
    with pytest.raises(InvalidConfigError, match="Unknown layout"):
        read_corpus(tmp_path, "voxceleb")


def test_metrics_report() -> None:
    report = classification_report(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), ["a", "b"])
    assert report["accuracy"] == 0.75 and report["ua"] == 0.75
    assert report["confusion"] == [[1, 1], [0, 2]]


def test_augmentation_changes_audio_but_keeps_scale(jfk_samples: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    clip = jfk_samples[:32000]
    copies = [augment(clip, rng) for _ in range(4)]
    assert all(np.abs(c).max() <= 1 for c in copies)
    assert all(0.85 * len(clip) < len(c) < 1.15 * len(clip) for c in copies)
    assert any(not np.allclose(c[: len(clip)], clip[: len(c)]) for c in copies)


def _lengths_set(n: int) -> StateSet:
    rng = np.random.default_rng(1)
    states = [np.zeros((int(t), 2), np.float16) for t in rng.integers(50, 600, n)]
    speakers = np.array([f"ravdess-{i % 6:02d}" if i % 3 else f"nemo-{i % 4}" for i in range(n)])
    corpora = np.array([s.split("-")[0] for s in speakers])
    return StateSet(states, rng.integers(0, 6, n), speakers, corpora, np.zeros(n, bool))


def test_length_buckets_cover_every_example_once_with_less_padding() -> None:
    data = _lengths_set(1000)
    lengths = np.array([len(s) for s in data.states])

    def padding(batches: list[np.ndarray]) -> float:
        return sum(lengths[b].max() * len(b) - lengths[b].sum() for b in batches) / lengths.sum()

    plain = _epoch_batches(lengths, TrainConfig(length_buckets=0), np.random.default_rng(0))
    bucketed = _epoch_batches(lengths, TrainConfig(length_buckets=4), np.random.default_rng(0))
    for batches in (plain, bucketed):
        assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
        assert len(batches) == 8 and max(len(b) for b in batches) == 128
    assert padding(bucketed) < padding(plain) / 3


def test_recipe_jobs_are_speaker_disjoint() -> None:
    data = _lengths_set(120)
    groups = recipe_jobs(data, ravdess_folds=3, nemo_folds=2)
    assert {k: len(v) for k, v in groups.items()} == {
        "ravdess_speaker_disjoint": 3,
        "nemo_speaker_disjoint": 2,
        "cross_nemo_to_ravdess": 1,
        "cross_ravdess_to_nemo": 1,
        "calibration": 1,
        "final": 1,
    }
    for jobs in groups.values():
        for job in jobs:
            if job.test is not None:
                assert not set(data.speakers[job.train]) & set(data.speakers[job.test])
    tested = np.concatenate([j.test for j in groups["ravdess_speaker_disjoint"]]).reshape(3, -1)
    assert (tested.sum(0) == (data.corpora == "ravdess")).all()  # each clip tested once


def test_channel_eq_is_smooth_bounded_and_spares_padding() -> None:
    torch.manual_seed(0)
    x = torch.zeros(64, 30, 80)
    mask = torch.arange(30)[None].expand(64, 30) < torch.randint(5, 31, (64, 1))
    coloured = channel_eq(x, mask, 6.0)
    assert (coloured[~mask] == 0).all()
    curves = coloured[:, 0]  # one curve per example, the same in every real frame
    assert torch.equal(coloured[mask], curves[:, None].expand(-1, 30, -1)[mask])
    assert curves.abs().max() <= 2 * 6.0 / 40 and curves.abs().max() > 6.0 / 40
    assert curves.diff(dim=1).abs().max() < 0.05  # smooth across neighbouring mel bins
    assert curves.std(dim=0).mean() > 0.02  # a different curve per example


def test_mixup_head_still_learns_separable_classes() -> None:
    rng = np.random.default_rng(0)
    centres = 3 * rng.standard_normal((6, 8))
    labels = np.repeat(np.arange(6), 40)
    states = [(centres[k] + rng.standard_normal((20, 8))).astype(np.float32) for k in labels]
    speakers = np.array([f"ravdess-{i % 4}" for i in range(len(labels))])
    data = StateSet(states, labels, speakers, np.full(len(labels), "ravdess"), labels < 0)
    config = TrainConfig(
        tap="final", adapter_rank=0, mixup_alpha=0.4, epochs=60, batch_size=32, min_steps=0
    )
    module = train_head(data, config)
    accuracy = (predict_logits(module, states).argmax(1) == labels).mean()
    assert accuracy > 0.9


def test_temperature_fit_recovers_scale() -> None:
    rng = np.random.default_rng(0)
    logits = 2 * rng.standard_normal((4000, 6))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(6, p=row) for row in p])  # calibrated at temperature 1
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.15)
    assert fit_temperature(logits * 3, labels) == pytest.approx(3.0, rel=0.15)


def test_pipeline_returns_emotions(jfk_path: Path) -> None:
    analysis = emotivoice.analyze(jfk_path, beam_size=1)
    segment = analysis.segments[0]
    assert segment.emotion is not None
    assert sum(segment.emotion.probabilities.values()) == pytest.approx(1, abs=1e-3)
    assert analysis.emotion is not None and analysis.emotion.backend == "whisper-head"
    assert len(analysis.emotion.timeline) == len(analysis.segments)
    assert analysis.model.emotion_model == "whisper-head"
    data = json.loads(analysis.to_json())
    assert set(data["segments"][0]["emotion"]["probabilities"]) == set(BASE_EMOTIONS)


def test_silence_has_no_emotion() -> None:
    analysis = emotivoice.analyze(np.zeros(16000 * 3, np.float32), sample_rate=16000)
    assert analysis.segments == () and analysis.emotion is None


def test_short_segment_is_flagged(data_dir: Path) -> None:
    from emotivoice.transcription import Transcriber, TranscriptionOptions

    samples = emotivoice.load_audio(data_dir / "speech" / "jfk.flac").samples[8000:20000]
    encoded = Transcriber(TranscriptionOptions()).encode(samples)
    scores = EmotionAnalyzer().score(samples, encoded)
    assert scores.short and scores.uncertain


def test_huggingface_backend_through_analyze(tiny_hubert: Path, jfk_path: Path) -> None:
    analysis = emotivoice.analyze(jfk_path, beam_size=1, emotion_model=f"hf:{tiny_hubert}")
    emotion = analysis.segments[0].emotion
    assert emotion is not None
    p = emotion.probabilities
    assert sum(p.values()) == pytest.approx(1, abs=1e-3)
    # fear and surprise have no label in this checkpoint; disgust is dropped
    assert p["fear"] == 0 and p["surprise"] == 0
    assert analysis.emotion is not None and analysis.emotion.backend == f"hf:{tiny_hubert}"


def test_huggingface_label_map_and_short_input(tiny_hubert: Path) -> None:
    from emotivoice.emotion.backends import HuggingFaceBackend

    backend = HuggingFaceBackend(str(tiny_hubert), {"dis": "anger", "neu": ""})
    p = backend.probabilities(np.zeros(1000, np.float32), None)  # shorter than the front end
    assert p.shape == (6,) and p[BASE_EMOTIONS.index("neutral")] == 0
    with pytest.raises(InvalidConfigError, match="unknown emotion"):
        HuggingFaceBackend(str(tiny_hubert), {"dis": "disgust"})
    with pytest.raises(ModelNotFoundError):
        HuggingFaceBackend(str(tiny_hubert.parent / "nowhere"))


@pytest.mark.parametrize(
    "environment",
    [
        {"HF_HUB_OFFLINE": "1"},
        # online as far as the settings go, but the Hub does not answer (a closed local port)
        {"HF_HUB_OFFLINE": "", "HF_ENDPOINT": "http://127.0.0.1:9"},
    ],
)
def test_a_hub_model_fails_fast_offline_and_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]
) -> None:
    import time

    from emotivoice.emotion.backends import HuggingFaceBackend

    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    started = time.monotonic()
    with pytest.raises(ModelNotFoundError, match="not in the local cache") as error:
        HuggingFaceBackend("emotivoice-tests/no-such-model")
    assert time.monotonic() - started < 10  # the Hub client alone retries for ~45 s
    assert "huggingface-cli download emotivoice-tests/no-such-model" in error.value.message
    assert "hf:/path/to/folder" in error.value.message


# --- the recipe on real speech (CPU, small) ------------------------------------------------

HELD_OUT = ("ravdess-03", "ravdess-04")
TRAIN_ACTORS = tuple(f"ravdess-{i:02d}" for i in range(5, 21))


@pytest.fixture(scope="module")
def ravdess_sets(data_dir: Path) -> dict[str, StateSet]:
    """RAVDESS actors 03–04 and the first repetitions of 05–20, as the recipe trains on them:
    ``frozen``, the states of the default tap (a layer of the encoder run on each clip's own
    frames of the pipeline's log-mel); ``mel``, those frames with the encoder weights, to
    fine-tune."""
    from emotivoice.emotion.head import own_log_mel, prefix_layers
    from emotivoice.emotion.torch_head import encoder_variables
    from emotivoice.models.encoder_prefix import load_encoder_prefix
    from emotivoice.training.states import prepare_clips

    labeled = [
        c
        for c in read_corpus(data_dir / "ravdess", "ravdess")
        if c.speaker in HELD_OUT
        or (c.speaker in TRAIN_ACTORS and c.path.stem.split("-")[5] == "01")
    ]
    clips: list[Clip] = prepare_clips(labeled)
    # the pipeline's log-mel of each clip (the 30 s transcription pass is not needed)
    mels = [own_log_mel(c.samples) for c in clips]
    meta = (
        np.array([BASE_EMOTIONS.index(c.emotion) for c in clips]),
        np.array([c.speaker for c in clips]),
        np.array([c.corpus for c in clips]),
        np.zeros(len(clips), bool),
    )
    (layer,) = prefix_layers(TrainConfig().tap)
    prefix = load_encoder_prefix("base", layer)
    frozen = [prefix(mel).layers[layer][0] for mel in mels]
    return {
        "frozen": StateSet(frozen, *meta),
        "mel": StateSet([mel[0].T for mel in mels], *meta, variables=encoder_variables("base")),
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    ("inputs", "config"),
    [
        ("frozen", TrainConfig(augment_copies=0, epochs=40, adapter_rank=0, min_steps=0)),
        ("mel", TrainConfig(augment_copies=0, epochs=8, min_steps=0)),  # prefix fine-tuned
    ],
)
def test_recipe_generalises_to_held_out_speakers(
    ravdess_sets: dict[str, StateSet], inputs: str, config: TrainConfig
) -> None:
    data = ravdess_sets[inputs]
    held = np.isin(data.speakers, HELD_OUT)
    module = train_head(data.select(~held), config)
    assert (module.prefix is not None) == (inputs == "mel")
    test = data.select(held)
    predicted = predict_logits(module, test.states).argmax(1)
    report = classification_report(test.labels, predicted, BASE_EMOTIONS)
    assert report["ua"] >= 0.6, report


@pytest.mark.slow
def test_train_emotion_command_end_to_end(tmp_path: Path, data_dir: Path) -> None:
    from emotivoice.cli import main

    out = tmp_path / "head.npz"
    code = main(
        [
            "train-emotion",
            "--corpora", "ravdess",
            "--max-clips-per-corpus", "36",
            "--epochs", "30",
            "--min-steps", "0",  # 30 steps, not the recipe's floor of 1,300
            "--augment-copies", "1",
            "--soup", "1",  # one fit (the default soup of three triples the time)
            "--no-eval",
            "-o", str(out),
        ]
    )  # fmt: skip
    assert code == 0 and out.exists() and out.with_suffix(".json").exists()
    head = EmotionHead.load(out)
    assert head.metadata["config"]["augment_copies"] == 1
    assert head.metadata["config"]["soup"] == 1  # fit_head's soups: tests/test_encoder_prefix.py
    speakers = head.metadata["training_speakers"]  # what benchmark-emotion checks clips against
    assert speakers == sorted(speakers) and all(s.startswith("ravdess-") for s in speakers)
    assert head.weights["prefix.layers.0.fc1.a"].shape[0] == head.metadata["config"]["adapter_rank"]
    # the exported head, run as the pipeline runs it, scores its training clips above chance
    from emotivoice.emotion.backends import WhisperHeadBackend
    from emotivoice.training.states import prepare_clips
    from emotivoice.transcription import Transcriber, TranscriptionOptions

    assert head.prefix_layers == (4,)
    backend = WhisperHeadBackend(str(out))
    clips = prepare_clips(read_corpus(data_dir / "ravdess", "ravdess")[::28][:36])
    transcriber = Transcriber(TranscriptionOptions())
    hits = [
        BASE_EMOTIONS[
            int(np.argmax(backend.probabilities(c.samples, transcriber.encode(c.samples))))
        ]
        == c.emotion
        for c in clips
    ]
    assert np.mean(hits) > 0.4
    analysis = emotivoice.analyze(clips[0].samples, sample_rate=16000, emotion_model=str(out))
    assert analysis.emotion is not None and analysis.emotion.backend.endswith("head.npz")


def test_benchmark_knows_the_speakers_a_head_was_trained_on(tmp_path: Path) -> None:
    from emotivoice.emotion.backends import WhisperHeadBackend
    from emotivoice.evaluation.emotion import training_record

    shipped = WhisperHeadBackend()
    speakers, evaluations = training_record(shipped)
    assert speakers is not None and len(speakers) == 29  # RAVDESS actors 01-20, nEMO's nine
    assert {"ravdess-01", "ravdess-20", "nemo-EB0"} <= speakers
    assert set(evaluations) == {
        "ravdess_speaker_disjoint",
        "nemo_speaker_disjoint",
        "cross_ravdess_to_nemo",
        "cross_nemo_to_ravdess",
    }
    assert all(0 < e["ua"] < 1 for e in evaluations.values())
    # a head that does not record its speakers (an older export): unknown, not "none heard"
    metadata = {k: v for k, v in shipped.head.metadata.items() if k != "training_speakers"}
    np.savez(
        tmp_path / "old.npz",
        temperature=np.array(shipped.head.temperature),
        metadata=np.array(json.dumps(metadata)),
        **shipped.head.weights,
    )
    speakers, evaluations = training_record(WhisperHeadBackend(str(tmp_path / "old.npz")))
    assert speakers is None and len(evaluations) == 4


@pytest.mark.slow
def test_benchmark_emotion_command(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from emotivoice.cli import main

    out = tmp_path / "bench"
    args = ["benchmark-emotion", str(data_dir / "ravdess"), "--layout", "ravdess"]
    code = main([*args, "--max-clips", "24", "--cross-validate", "2", "-o", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "ms per clip" in printed and "2 speaker-disjoint folds" in printed
    result = json.loads((out / "emotion-benchmark.json").read_text())
    assert result["clips"] == 24 and result["ms_per_clip"] > 0
    assert np.array(result["report"]["confusion"]).sum() == 24
    assert result["report"]["ua"] > 0.3  # the shipped head (trained on all of RAVDESS)
    # ... which says so, and prints its own held-out figures, both cross-corpus ones included
    assert result["seen_clips"] == 24
    assert "24 of 24 clips are by speakers this model was trained on" in printed
    stored = result["stored_evaluations"]
    assert {"cross_ravdess_to_nemo", "cross_nemo_to_ravdess"} <= set(stored)
    assert f"UA {stored['ravdess_speaker_disjoint']['ua']:.3f}" in printed
    assert result["cross_validation"]["n"] == 24
    assert (out / "confusion.png").stat().st_size > 5000
    # a folder without the layout's files is a usage error with a clear message
    assert main(["benchmark-emotion", str(tmp_path), "--layout", "ravdess", "-o", str(out)]) == 2
    assert "No labelled clips found" in capsys.readouterr().err
