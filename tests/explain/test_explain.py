"""Explanations: Shapley axioms, LIME, faithfulness on real clips, counterfactual transforms."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from emotivoice.audio import load_audio
from emotivoice.errors import InvalidConfigError
from emotivoice.explain import (
    AttributionOptions,
    ExplainOptions,
    attribute_time,
    counterfactuals,
    emotion_scorer,
    exact_shapley,
    explain,
)
from emotivoice.explain.attribution import window_bounds
from emotivoice.explain.counterfactual import gain, pitch_shift, spectral_tilt, tempo
from emotivoice.training.states import crop_to_speech

SR = 16000


def _window_energy_model(weights: Sequence[float], n: int) -> callable:  # type: ignore[valid-type]
    """A known model: class-0 score = Σ weight_i · (window i kept), read from the audio."""
    w = np.asarray(weights)

    def scorer(waves: Sequence[np.ndarray]) -> np.ndarray:
        out = []
        for wave in waves:
            kept = np.array(
                [np.abs(wave[a:b]).mean() > 0.05 for a, b in window_bounds(len(wave), n)]
            )
            value = float(w @ kept)
            out.append([value, 1 - value])
        return np.array(out)

    return scorer


def test_shapley_efficiency_and_symmetry_on_known_model() -> None:
    n = 5
    audio = np.full(SR, 0.5, np.float32)
    weights = [0.1, 0.1, 0.3, 0.0, 0.2]  # additive: Shapley values equal the weights
    options = AttributionOptions(n_windows=n, baseline="silence", budget=64)
    result = attribute_time(audio, _window_energy_model(weights, n), options, target=0)
    shapley = np.array([w.shapley for w in result.windows])
    assert result.exact and result.evaluations == 2**n
    assert shapley.sum() == pytest.approx(result.full_probability - result.baseline_probability)
    np.testing.assert_allclose(shapley, weights, atol=1e-6)
    assert shapley[0] == pytest.approx(shapley[1])  # symmetric players get equal values
    np.testing.assert_allclose([w.lime for w in result.windows], weights, atol=1e-6)
    assert result.supporting[0] == 2 and 3 not in result.supporting


def test_shapley_of_an_interaction() -> None:
    # v(S) = 1 when both players 0 and 1 are in S: they split the credit, player 2 gets none
    values = {mask: float(mask & 0b011 == 0b011) for mask in range(8)}
    np.testing.assert_allclose(exact_shapley(values, 3), [0.5, 0.5, 0.0])


def test_sampled_shapley_respects_budget() -> None:
    n = 10
    audio = np.full(SR, 0.5, np.float32)
    weights = np.linspace(0, 0.09, n)
    options = AttributionOptions(n_windows=n, baseline="silence", budget=80)
    result = attribute_time(audio, _window_energy_model(weights, n), options, target=0)
    assert not result.exact and result.evaluations <= 80
    np.testing.assert_allclose([w.shapley for w in result.windows], weights, atol=1e-6)


def test_sampled_mode_faithfulness_from_real_evaluations() -> None:
    # beyond the exact limit the random-order baseline must come from real evaluations, and
    # the budget caps every model call, the deletion curves' included
    n, budget = 10, 60
    audio = np.full(SR, 0.5, np.float32)
    weights = np.array([0.02, 0.09, 0.0, 0.05, 0.01, 0.08, 0.03, 0.0, 0.06, 0.04])
    model = _window_energy_model(weights, n)
    calls = []

    def counting(waves: Sequence[np.ndarray]) -> np.ndarray:
        calls.append(len(waves))
        return model(waves)

    options = AttributionOptions(n_windows=n, baseline="silence", budget=budget, random_orders=3)
    result = attribute_time(audio, counting, options, target=0)
    assert not result.exact
    assert sum(calls) == result.evaluations <= budget
    assert 1 <= result.random_curves <= 3
    assert np.isfinite(result.random_area)
    # additive model: every deletion curve runs from Σw to 0; removing the largest weights
    # first (the Shapley order) gives the smallest possible area
    shapley = next(c for c in result.deletion if c.method == "shapley")
    assert shapley.probabilities[0] == pytest.approx(weights.sum())
    assert shapley.area <= result.random_area and shapley.faithfulness > 0
    assert result.random_area <= weights.sum() - shapley.area + 1e-4  # the worst order's


def test_options_validation() -> None:
    with pytest.raises(InvalidConfigError):
        AttributionOptions(n_windows=1)
    with pytest.raises(InvalidConfigError):
        AttributionOptions(baseline="pink")
    with pytest.raises(InvalidConfigError, match="too small to sample"):
        AttributionOptions(n_windows=12, budget=20)
    AttributionOptions(n_windows=4, budget=16)  # exact needs only 2**4


def test_counterfactual_transforms_change_what_they_claim(jfk_samples: np.ndarray) -> None:
    import librosa

    clip = jfk_samples[: 3 * SR]

    def median_f0(y: np.ndarray) -> float:
        f0, voiced, _ = librosa.pyin(y, fmin=65, fmax=500, sr=SR, frame_length=1024)
        return float(np.nanmedian(f0[voiced]))

    phase = 2 * np.pi * 150 * np.arange(SR) / SR
    voice = (0.1 * sum(np.sin(k * phase) / k for k in range(1, 8))).astype(np.float32)
    for semitones in (2.0, -2.0):
        ratio = median_f0(pitch_shift(voice, semitones)) / median_f0(voice)
        assert 12 * np.log2(ratio) == pytest.approx(semitones, abs=0.2)
    rms = lambda y: float(np.sqrt(np.mean(y**2)))  # noqa: E731
    assert 20 * np.log10(rms(gain(clip, -6.0)) / rms(clip)) == pytest.approx(-6.0, abs=0.01)
    assert len(tempo(clip, 1.15)) == pytest.approx(len(clip) / 1.15, rel=0.02)
    quiet = 0.4 * clip / np.abs(clip).max()  # no clipping at +6 dB
    assert 20 * np.log10(rms(gain(quiet, 6.0)) / rms(quiet)) == pytest.approx(6.0, abs=0.01)
    # tempo: a 4 Hz "syllable rhythm" (amplitude modulation) speeds up or slows down by 15 %
    t = np.arange(4 * SR) / SR
    syllables = (np.tile(voice, 4) * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)
    for rate in (1.15, 1 / 1.15):
        stretched = tempo(syllables, rate)
        assert _rhythm_hz(stretched) == pytest.approx(4 * rate, rel=0.02)
        assert median_f0(stretched[:SR]) == pytest.approx(150, rel=0.03)  # pitch kept
    assert len(pitch_shift(voice, 2.0)) == len(voice)  # pitch shift keeps the tempo
    bright, dark = spectral_tilt(clip, 0.9), spectral_tilt(clip, -0.9)
    centroid = lambda y: float(librosa.feature.spectral_centroid(y=y, sr=SR).mean())  # noqa: E731
    assert centroid(bright) > 1.2 * centroid(clip) > 1.2 * centroid(dark)
    assert rms(bright) == pytest.approx(rms(clip), rel=0.02)


def _rhythm_hz(y: np.ndarray) -> float:
    """Frequency of the strongest amplitude modulation (the peak of the envelope's spectrum)."""
    hop = 80
    envelope = np.sqrt(np.convolve(y**2, np.ones(4 * hop) / (4 * hop), "same"))[::hop]
    envelope = (envelope - envelope.mean()) * np.hanning(len(envelope))
    n_fft = 1 << 16  # zero padding: 0.003 Hz bins
    spectrum = np.abs(np.fft.rfft(envelope, n_fft))
    return float(np.fft.rfftfreq(n_fft, hop / SR)[np.argmax(spectrum)])


def test_counterfactual_report_ranks_factors() -> None:
    # a model that only listens to loudness
    def scorer(waves: Sequence[np.ndarray]) -> np.ndarray:
        loud = np.array([min(1.0, 4 * float(np.sqrt(np.mean(w**2)))) for w in waves])
        return np.stack([loud, 1 - loud], axis=1)

    clip = (0.1 * np.sin(2 * np.pi * 150 * np.arange(SR) / SR)).astype(np.float32)
    report = counterfactuals(clip, scorer)
    assert report.evaluations == 9
    assert report.ranking[0][0] == "energy"


@pytest.mark.slow
def test_deletion_in_shapley_order_beats_random_on_real_clips(data_dir: Path) -> None:
    scorer = emotion_scorer()
    clips = [
        data_dir / "ravdess" / "Actor_11" / "03-01-05-02-01-01-11.flac",  # angry
        data_dir / "ravdess" / "Actor_12" / "03-01-03-02-02-01-12.flac",  # happy
        data_dir / "ravdess" / "Actor_14" / "03-01-04-02-01-02-14.flac",  # sad
    ]
    gains = []
    for clip in clips:
        samples = crop_to_speech(load_audio(clip).samples)
        result = attribute_time(samples, scorer, AttributionOptions(n_windows=5, budget=32))
        assert result.exact and result.evaluations == 32
        shapley = next(c for c in result.deletion if c.method == "shapley")
        gains.append(shapley.faithfulness)
        total = sum(w.shapley for w in result.windows)
        assert total == pytest.approx(
            result.full_probability - result.baseline_probability, abs=1e-4
        )
    assert np.mean(gains) > 0, gains


def _plot_areas(image: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(top, bottom, left, right) pixel bounds of each axes, found from its spines.

    The house style draws the left and bottom spines only, black: an axes is a horizontal black
    run of at least a fifth of the width (the bottom spine, maybe with a tick at its left end)
    with a black vertical run of at least a sixth of the height rising from its left end.
    """
    dark = image[..., :3].max(axis=-1) < 0.3
    height, width = dark.shape
    found = []
    for row in range(height):
        edges = np.flatnonzero(np.diff(np.concatenate([[0], dark[row].astype(np.int8), [0]])))
        for left, right in zip(edges[::2], edges[1::2], strict=True):
            if right - left < width / 5:
                continue
            tops = {}
            for column in range(left, min(left + 10, right)):  # the spine, past a y tick
                top = row
                while top > 0 and dark[top - 1, column]:
                    top -= 1
                tops[column] = top
            column = min(tops, key=lambda c: tops[c])
            if row - tops[column] >= height / 6:
                found.append((tops[column], row, column, int(right)))
    # a horizontal black line inside an axes (a zero line) is not a second axes
    return [
        a
        for a in found
        if not any(b != a and abs(b[2] - a[2]) <= 1 and b[0] <= a[0] and a[1] < b[1] for b in found)
    ]


def _png_ok(path: Path, size: tuple[int, int] | None = None, min_drawn: float = 0.005) -> None:
    """A valid PNG of ``size`` whose every axes has something drawn inside its spines.

    ``min_drawn``: share of the pixels inside the plot area that must differ from the white
    background; an axes with only its title, labels and ticks has none (checked below).
    """
    import matplotlib.image

    image = matplotlib.image.imread(path)
    assert image.ndim == 3, path
    if size is not None:
        assert image.shape[1::-1] == size, path
    areas = _plot_areas(image)
    assert areas, f"{path}: no axes found"
    for top, bottom, left, right in areas:
        inside = image[top + 2 : bottom - 1, left + 3 : right, :3]  # clear of the spines
        drawn = float((np.abs(inside - 1.0).max(axis=-1) > 0.02).mean())
        assert drawn >= min_drawn, f"{path}: axes at rows {top}-{bottom} is empty ({drawn:.4f})"


def test_png_check_fails_on_empty_axes(tmp_path: Path) -> None:
    from matplotlib.cm import ScalarMappable

    from emotivoice.explain import plots
    from emotivoice.extras import pyplot

    plt = pyplot()
    empty = []
    fig, ax = plt.subplots(figsize=plots.FIGSIZE)
    ax.set(title="Emotion distribution", xlabel="time (s)", ylabel="probability", ylim=(0, 1))
    empty.append(plots._save(fig, tmp_path / "single.png"))
    fig, ax = plt.subplots(figsize=plots.FIGSIZE)  # a heatmap's colour bar is not its data
    fig.colorbar(ScalarMappable(cmap="viridis"), ax=ax)
    ax.set(title="Encoder self-attention", xlabel="key time (s)", ylabel="query time (s)")
    empty.append(plots._save(fig, tmp_path / "colorbar.png"))
    fig, (wave_ax, spec_ax) = plt.subplots(2, 1, figsize=(8.0, 5.0), sharex=True)
    wave_ax.plot([0, 1], [0, 1], color="#333333")
    spec_ax.set_xlabel("time (s)")  # the second axes is empty
    empty.append(plots._save(fig, tmp_path / "half.png"))
    for png in empty:
        with pytest.raises(AssertionError):
            _png_ok(png)
    fig, ax = plt.subplots(figsize=plots.FIGSIZE)
    ax.plot(np.linspace(0, 1, 7), [0.9, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1], marker="o")
    ax.set(title="Deletion curves", ylim=(0, 1))
    _png_ok(plots._save(fig, tmp_path / "one-line.png"), (800, 400))


def test_heatmap_scale_is_not_set_by_a_few_extreme_cells(tmp_path: Path) -> None:
    from emotivoice.explain import plots

    rng = np.random.default_rng(0)
    saliency = rng.normal(0, 0.01, (80, 300))
    saliency[10, 20], saliency[40, 200] = 5.0, -3.0  # two cells 300-500x the rest
    limit = plots.colour_limit(saliency)
    assert 0.02 < limit < 0.05  # near the bulk's magnitude, not the spikes'
    assert plots.colour_limit(np.zeros((3, 4))) == 1.0
    assert plots.colour_limit(np.eye(40)) == 1.0  # a sparse map keeps its maximum
    _png_ok(plots.plot_heatmap(saliency, tmp_path / "saliency.png", "IG", "time", "mel band"))


@pytest.fixture(scope="module")
def angry_clip(data_dir: Path) -> Path:
    return data_dir / "ravdess" / "Actor_11" / "03-01-05-02-01-01-11.flac"


def test_explain_api_budget_json_and_plots(angry_clip: Path, tmp_path: Path) -> None:
    import json

    import emotivoice
    from emotivoice.explain import write_explanation

    options = ExplainOptions(attribution=AttributionOptions(n_windows=4, budget=16))
    audio = load_audio(angry_clip)
    reports: list[tuple[float, float, str]] = []
    (explanation,) = emotivoice.explain(
        audio, None, options, segment=0, progress=lambda *r: reports.append(r)
    )
    # progress as model evaluations are made, up to the budget, then done
    done = [r[0] for r in reports]
    assert len(reports) > 3 and done == sorted(done) and {r[1] for r in reports} == {100.0}
    assert reports[1][2].startswith("explaining segment 1/1 (") and 24.0 in done
    assert reports[-1] == (100.0, 100.0, "explained 1 of 1 segments")
    assert explanation.predicted in explanation.probabilities
    # the windows in the recording's time, and one plain sentence built from the figures
    windows = explanation.attribution.windows  # type: ignore[union-attr]
    assert explanation.start > 0 and windows[0].start == pytest.approx(explanation.start, abs=1e-3)
    assert windows[-1].end == pytest.approx(explanation.end, abs=2e-3)
    best = max(windows, key=lambda w: w.shapley)
    assert explanation.summary.startswith(f"The model heard {explanation.predicted} (")
    assert f"({best.start:.1f}–{best.end:.1f} s)" in explanation.summary
    assert explanation.cost["shapley+lime+deletion"]["evaluations"] == 16
    assert explanation.cost["counterfactual"]["evaluations"] == 8  # original reused
    assert explanation.evaluations == 24 and explanation.budget == 100
    segment = audio.samples[int(explanation.start * SR) : int(explanation.end * SR)]
    paths = write_explanation(explanation, segment, tmp_path)
    data = json.loads(paths[0].read_text())
    assert len(data["attribution"]["windows"]) == 4
    assert {"shapley", "lime"} == {c["method"] for c in data["attribution"]["deletion"]}
    rows = {r["name"]: r for r in data["features"]}
    assert {"f0_mean_hz", "hnr_db", "jitter_local"} <= set(rows)
    assert all(r["position"] in ("below", "within", "above") for r in rows.values())
    sizes = {"windows.png": (800, 550), "features.png": None}
    for png in paths[1:]:
        size = next((v for k, v in sizes.items() if png.name.endswith(k)), (800, 400))
        _png_ok(png, size)
    assert any(p.name.endswith("features.png") for p in paths)
    with pytest.raises(InvalidConfigError, match="No segment"):
        emotivoice.explain(audio, None, options, segment=5)
    deprecated = pytest.warns(DeprecationWarning, match="ExplainOptions")  # the first keywords
    with deprecated, pytest.raises(InvalidConfigError, match="No segment"):
        emotivoice.explain(angry_clip, segment=5, attribution=options.attribution)


@pytest.mark.slow
def test_attention_and_integrated_gradients(angry_clip: Path, tmp_path: Path) -> None:
    from emotivoice.explain import explain_segment, write_explanation

    samples = crop_to_speech(load_audio(angry_clip).samples)
    options = ExplainOptions(methods=("attention", "gradients"), ig_steps=4)
    explanation = explain_segment(samples, emotion_scorer(), options)
    attention, saliency = explanation.attention, explanation.gradients
    n = len(samples) // 320
    assert attention.layers[0].shape[0] == pytest.approx(n, abs=1)
    np.testing.assert_allclose(attention.layers[-1].sum(axis=1), 1, atol=1e-5)
    assert attention.rollout.sum() == pytest.approx(1, abs=1e-3)
    assert saliency.values.shape[0] == 80 and np.abs(saliency.values).sum() > 0
    for png in write_explanation(explanation, samples, tmp_path)[1:]:
        _png_ok(png, (800, 400))


@pytest.mark.slow
def test_cli_explain_writes_report(
    angry_clip: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    from emotivoice.cli import main, progress

    # feedback from the start (not after 2 s), so that the stage line is there however fast
    # this machine analyses the clip
    monkeypatch.setattr(progress, "SHOW_AFTER_S", 0.0)

    # 4 windows need 16 coalitions; a budget of 20 leaves 12 after the 8 counterfactuals,
    # so the Shapley values are sampled within it
    code = main(
        ["analyze", str(angry_clip), "-o", str(tmp_path), "--explain", "--explain-windows", "4",
         "--explain-budget", "20", "--fast"]
    )  # fmt: skip
    assert code == 0
    # stderr is no terminal here: progress comes as plain lines, explaining included
    err = capsys.readouterr().err
    assert "\r" not in err and "explaining emotions" in err, repr(err)
    folder = tmp_path / f"{angry_clip.stem}-explain"
    names = {p.name for p in folder.iterdir()}
    assert {"distribution.png", "timeline.png", "segment-0.json", "segment-0-windows.png"} <= names
    for png in ("distribution.png", "timeline.png", "segment-0-deletion.png"):
        _png_ok(folder / png, (800, 400))
    data = json.loads((folder / "segment-0.json").read_text())
    assert data["budget"] == 20 and data["evaluations"] <= 20
    assert not data["attribution"]["exact"] and data["attribution"]["evaluations"] <= 12
    with pytest.raises(SystemExit) as usage:
        main(["analyze", str(angry_clip), "--explain", "--explain-methods", "magic"])
    assert usage.value.code == 2


@pytest.mark.parametrize(
    "flags",
    [
        ["--explain-budget", "15"],  # 3 windows need 8 coalitions + 8 counterfactuals
        ["--explain-windows", "10", "--explain-budget", "30"],
        ["--emotion-model", "hf:some/model", "--explain-methods", "gradients"],
    ],
)
def test_cli_rejects_explanations_it_cannot_give(
    angry_clip: Path, capsys: pytest.CaptureFixture[str], flags: list[str]
) -> None:
    from emotivoice.cli import main

    with pytest.raises(SystemExit) as usage:
        main(["analyze", str(angry_clip), "--explain", "--explain-windows", "3", *flags])
    assert usage.value.code == 2
    assert "budget" in capsys.readouterr().err or "gradients" in " ".join(flags)


def test_attention_of_a_huggingface_backend(tiny_hubert: Path, jfk_samples: np.ndarray) -> None:
    from emotivoice.emotion import EmotionOptions
    from emotivoice.explain import explain_segment

    model = f"hf:{tiny_hubert}"
    scorer = emotion_scorer(EmotionOptions(model=model))
    clip = jfk_samples[: 2 * SR]
    explanation = explain_segment(
        clip, scorer, ExplainOptions(methods=("attention",), emotion_model=model)
    )
    layers = explanation.attention.layers
    assert len(layers) == 2  # the tiny model's two transformer layers
    np.testing.assert_allclose(layers[0].sum(axis=1), 1, atol=1e-4)
    assert explanation.attention.rollout.shape == (layers[0].shape[0],)


@pytest.fixture(scope="module")
def hubert_clip(jfk_samples: np.ndarray) -> np.ndarray:
    return jfk_samples[: 3 * SR]


@pytest.fixture(scope="module")
def hubert_analysis(tiny_hubert: Path, hubert_clip: np.ndarray) -> object:
    import emotivoice

    analysis = emotivoice.analyze(
        hubert_clip, sample_rate=SR, emotion_model=f"hf:{tiny_hubert}", beam_size=1
    )
    assert analysis.segments
    return analysis


def test_explain_explains_the_analysed_huggingface_backend(
    tiny_hubert: Path, hubert_clip: np.ndarray, hubert_analysis: object, tmp_path: Path
) -> None:
    # emotivoice.explain(..., emotion_model="hf:...") must explain that model, not Whisper's
    import emotivoice
    from emotivoice.explain import write_explanation

    model = f"hf:{tiny_hubert}"
    (explanation,) = emotivoice.explain(
        load_audio(hubert_clip, sample_rate=SR),
        hubert_analysis,
        ExplainOptions(methods=("attention",), emotion_model=model),
        segment=0,
    )
    segment = hubert_analysis.segments[0]  # type: ignore[attr-defined]
    samples = hubert_clip[int(segment.start * SR) : int(segment.end * SR)]
    attention = explanation.attention
    assert len(attention.layers) == 2  # the tiny HuBERT's layers; Whisper base has 6
    # its front end strides 5 x 4 = 20 samples per position (Whisper: 320, 20 ms)
    assert attention.layers[0].shape[0] == pytest.approx(len(samples) / 20, abs=2)
    assert len(attention.rollout) * attention.position_seconds == pytest.approx(
        len(samples) / SR, rel=0.01
    )
    np.testing.assert_allclose(attention.layers[-1].sum(axis=1), 1, atol=1e-4)
    # the probabilities are the Hugging Face model's, as in the analysis
    assert explanation.probabilities == pytest.approx(segment.emotion.probabilities, abs=1e-3)
    assert explanation.evaluations == 1 and explanation.cost["attention"]["evaluations"] == 1
    paths = {p.name: p for p in write_explanation(explanation, samples, tmp_path)}
    for name in ("segment-0-attention.png", "segment-0-rollout.png"):
        _png_ok(paths[name], (800, 400))
    _png_ok(paths["segment-0-features.png"])
    with pytest.raises(InvalidConfigError, match=r"Integrated Gradients.*Whisper-head"):
        ExplainOptions(methods=("gradients",), emotion_model=model)


@pytest.mark.parametrize(
    ("methods", "windows", "budget", "exact"),
    [
        (("shapley", "counterfactual"), 6, 100, True),  # the defaults: 64 + 8
        (("shapley", "counterfactual"), 6, 40, False),  # 32 left for the attribution: sampled
        (("shapley", "counterfactual"), 4, 24, True),  # exactly 16 + 8
        (("shapley", "counterfactual", "attention"), 10, 45, False),
        (("shapley",), 6, 17, False),  # the fewest a sampled attribution of 6 windows needs
        (("counterfactual",), 6, 9, None),  # the unperturbed score is one more evaluation
    ],
)
def test_the_budget_caps_every_model_evaluation(
    tiny_hubert: Path,
    hubert_clip: np.ndarray,
    hubert_analysis: object,
    methods: tuple[str, ...],
    windows: int,
    budget: int,
    exact: bool | None,
) -> None:
    import emotivoice
    from emotivoice.emotion import EmotionOptions
    from emotivoice.emotion.backends import load_backend

    model = f"hf:{tiny_hubert}"
    forwards = []  # every forward pass of the real model, whoever makes it
    hook = load_backend(EmotionOptions(model=model)).model.register_forward_hook(
        lambda module, args, output: forwards.append(1)
    )
    try:
        options = ExplainOptions(
            methods=methods,
            attribution=AttributionOptions(n_windows=windows),
            budget=budget,
            emotion_model=model,
        )
        (explanation,) = emotivoice.explain(
            load_audio(hubert_clip, sample_rate=SR), hubert_analysis, options, segment=0
        )
    finally:
        hook.remove()
    attention = 1 if "attention" in methods else 0  # costed apart, as the issue times it
    assert len(forwards) - attention == explanation.evaluations <= budget
    queried = ("shapley+lime+deletion", "counterfactual")
    assert explanation.evaluations >= sum(
        explanation.cost[m]["evaluations"] for m in queried if m in explanation.cost
    )
    if exact is not None:
        assert explanation.attribution is not None and explanation.attribution.exact is exact
        assert explanation.attribution.evaluations <= budget - ("counterfactual" in methods) * 8
    if budget == 100:
        assert explanation.evaluations == 72


def test_a_budget_too_small_is_refused_before_any_work(tiny_hubert: Path) -> None:
    # the options refuse it when they are made: before any audio is read or analysed
    with pytest.raises(
        InvalidConfigError, match=r"budget of 30 .* at least 29 .* Raise the budget to 37"
    ):
        ExplainOptions(
            attribution=AttributionOptions(n_windows=10),
            budget=30,
            emotion_model=f"hf:{tiny_hubert}",
        )
    with pytest.raises(InvalidConfigError, match="too small"):
        ExplainOptions(methods=("counterfactual",), budget=8)
    with pytest.raises(InvalidConfigError, match="Unknown explanation methods"):
        ExplainOptions(methods=("magic",))


def test_batch_scorer_equals_the_pipeline_encoder_path(jfk_samples: np.ndarray) -> None:
    # the explanation scorer (vectorised log-mel, parallel encoder replicas) must compute what
    # the pipeline computes: FeatureExtractor + pad_or_trim + encoder + head, wave by wave
    from faster_whisper.audio import pad_or_trim

    from emotivoice.emotion import EmotionOptions
    from emotivoice.emotion.backends import load_backend
    from emotivoice.explain.scoring import WhisperHeadScorer
    from emotivoice.transcription import Transcriber, TranscriptionOptions

    clip = jfk_samples[: 4 * SR]
    waves = [clip, gain(clip, -6.0), tempo(clip, 1.15), np.tile(jfk_samples, 3)[: 31 * SR]]
    scorer = emotion_scorer(cpu_threads=2, precision="float32")
    assert isinstance(scorer, WhisperHeadScorer) and scorer.device == "cpu"  # no GPU here
    transcriber = Transcriber(TranscriptionOptions(cpu_threads=2))
    features, n_frames = scorer.log_mel(waves)
    for wave, padded, frames in zip(waves, features, n_frames, strict=True):
        reference = transcriber.model.feature_extractor(wave)
        assert frames == reference.shape[-1] - 1
        np.testing.assert_allclose(padded, pad_or_trim(reference), atol=1e-6)
    backend = load_backend(EmotionOptions())
    expected = [backend.probabilities(w, transcriber.encode(w)) for w in waves]
    np.testing.assert_allclose(scorer(waves), expected, atol=1e-5)


def test_batch_scorer_runs_without_pytorch(
    jfk_samples: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    # with PyTorch the prefix runs as its twin (faster batches); without it, the numpy runtime
    waves = [jfk_samples[: 3 * SR], gain(jfk_samples[: 3 * SR], -6.0)]
    with_torch = emotion_scorer(precision="float32")(waves)
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    without = emotion_scorer()
    np.testing.assert_allclose(without(waves), with_torch, atol=1e-5)
    assert without._runner is not None and not without._runner.uses_torch  # type: ignore[attr-defined]


def test_explanations_on_cuda_fail_clearly_without_a_gpu(jfk_samples: np.ndarray) -> None:
    # this machine has no GPU: asking for one is refused at once, the CPU is the fallback of
    # device="auto", and the scorer runs there
    import torch

    assert not torch.cuda.is_available()
    with pytest.raises(InvalidConfigError, match="no CUDA GPU"):
        ExplainOptions(device="cuda")
    with pytest.raises(InvalidConfigError, match="no CUDA GPU"):
        explain(jfk_samples, sample_rate=SR, device="cuda")
    with pytest.raises(InvalidConfigError, match="Unknown device"):
        ExplainOptions(device="tpu")
    scorer = emotion_scorer(device="auto")
    assert getattr(scorer, "device", None) == "cpu"


def test_cuda_explanations_name_the_torch_extra_when_pytorch_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(InvalidConfigError, match=r"emotivoice\[torch\]"):
        ExplainOptions(device="cuda")


def test_bfloat16_scorer_agrees_with_float32(angry_clip: Path) -> None:
    """bfloat16 weights and activations (the default where the CPU computes them natively)
    move probabilities by thousandths, never the top emotion."""
    samples = crop_to_speech(load_audio(angry_clip).samples)
    rng = np.random.default_rng(0)
    waves = [samples, gain(samples, -6.0)]
    for _ in range(4):  # coalitions as the Shapley scorer makes them: windows silenced
        wave = samples.copy()
        start = int(rng.integers(0, wave.size - SR // 2))
        wave[start : start + SR // 2] = 0.0
        waves.append(wave)
    exact = emotion_scorer(precision="float32")(waves)
    fast = emotion_scorer(precision="bfloat16")(waves)
    assert not np.array_equal(exact, fast)  # it did run in another number format
    np.testing.assert_allclose(fast, exact, atol=0.02)
    assert (fast.argmax(1) == exact.argmax(1)).all()
    with pytest.raises(InvalidConfigError, match="precision must be one of"):
        emotion_scorer(precision="half")


def test_torch_scorer_agrees_with_the_pipeline_scorer(angry_clip: Path) -> None:
    from emotivoice.explain.gradients import torch_emotion_scorer
    from emotivoice.models.torch_whisper import load_torch_whisper, mel_filters

    samples = crop_to_speech(load_audio(angry_clip).samples)
    waves = [samples, samples[: SR // 2]]
    encoder = load_torch_whisper("base").model.model.encoder
    fast = emotion_scorer()(waves)
    differentiable = torch_emotion_scorer(encoder, mel_filters())(waves)
    # float32 PyTorch vs int8 CTranslate2 encoder states
    np.testing.assert_allclose(differentiable, fast, atol=0.12)
    assert (differentiable.argmax(1) == fast.argmax(1)).all()


def test_explain_cuts_segments_at_the_pipelines_sample_spans(
    jfk_samples: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # JSON keeps segment times to the millisecond; the pipeline's spans are exact to the sample
    from types import SimpleNamespace

    import emotivoice
    from emotivoice.audio import Audio
    from emotivoice.explain import scoring
    from emotivoice.explain.core import write_report
    from emotivoice.segmentation import SpeechSpan

    lengths: list[int] = []  # of every wave the real model scores
    real = scoring.emotion_scorer

    def recording_scorer(*args: object, **kwargs: object) -> object:
        scorer = real(*args, **kwargs)  # type: ignore[arg-type]

        def score(waves: list[np.ndarray]) -> np.ndarray:
            lengths.extend(len(w) for w in waves)
            return scorer(waves)

        return score

    monkeypatch.setattr(scoring, "emotion_scorer", recording_scorer)
    span = SpeechSpan(start_sample=16_007, end_sample=48_013)  # not whole milliseconds
    segment = SimpleNamespace(
        id=0,
        start=round(span.start, 3),
        end=round(span.end, 3),
        features=None,
        channel=None,
        words=(),
    )
    analysis = SimpleNamespace(segments=(segment,), emotion=None)
    audio = Audio(samples=jfk_samples, info=None)  # type: ignore[arg-type]
    options = ExplainOptions(methods=("counterfactual",), budget=9)
    (exact,) = emotivoice.explain(audio, analysis, options, spans={0: span})  # type: ignore[arg-type]
    assert 48_013 - 16_007 in lengths  # the unperturbed segment, cut at the span
    lengths.clear()
    emotivoice.explain(audio, analysis, options)  # type: ignore[arg-type]
    assert int(segment.end * SR) - int(segment.start * SR) in lengths  # cut from the times
    paths = write_report(analysis, jfk_samples, [exact], tmp_path, {0: span})
    assert any(p.name == "segment-0-counterfactuals.png" for p in paths)


@pytest.mark.slow
def test_a_split_stereo_segment_is_explained_from_its_own_channel(data_dir: Path) -> None:
    """The second talker of a stereo call is analysed from channel 2; its explanation scores the
    same audio (the mix would give other probabilities)."""
    import emotivoice
    from emotivoice.explain.options import ExplainOptions

    path = data_dir / "speech" / "stereo_diarization.wav"
    analysis = emotivoice.analyze(path, features=False)
    second = next(s for s in analysis.segments if s.channel == 1)
    assert second.emotion is not None
    exact = ExplainOptions(methods=("counterfactual",), precision="float32")
    (explanation,) = emotivoice.explain(path, analysis, exact, segment=second.id)
    assert explanation.probabilities == pytest.approx(second.emotion.probabilities, abs=2e-3)
    # the default (bfloat16 on this CPU) is within its stated tolerance of the analysis
    (fast,) = emotivoice.explain(
        path, analysis, ExplainOptions(methods=("counterfactual",)), segment=second.id
    )
    assert fast.probabilities == pytest.approx(second.emotion.probabilities, abs=0.02)


def test_timeline_steps_follow_in_time() -> None:
    """Overlapping windows stand for the stretch around their centres; segments that do not
    overlap keep their own start and end (one segment is a line, not a dot)."""
    from emotivoice.explain.plots import step_spans

    windows = [{"start": 0.0, "end": 2.0}, {"start": 0.5, "end": 2.5}, {"start": 1.0, "end": 3.0}]
    assert step_spans(windows) == [(0.0, 1.25), (1.25, 1.75), (1.75, 3.0)]
    segments = [{"start": 0.0, "end": 4.0}, {"start": 6.0, "end": 9.0}]
    assert step_spans(segments) == [(0.0, 4.0), (6.0, 9.0)]
