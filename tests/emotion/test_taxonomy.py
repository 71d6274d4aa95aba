"""The emotion taxonomy: levels from evidence, thresholds at their boundaries, every complex
pair, malformed files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from emotivoice.emotion import BASE_EMOTIONS, TaxonomyError, load_taxonomy
from emotivoice.emotion.taxonomy import parse_taxonomy


def _probs(**given: float) -> dict[str, float]:
    rest = (1 - sum(given.values())) / (len(BASE_EMOTIONS) - len(given))
    return {e: given.get(e, rest) for e in BASE_EMOTIONS}


def _dims(arousal: float = 0.5, valence: float = 0.5, intensity: float = 0.5) -> dict[str, float]:
    return {"arousal": arousal, "valence": valence, "intensity": intensity}


@pytest.fixture(scope="module")
def taxonomy():  # type: ignore[no-untyped-def]
    return load_taxonomy()


def test_packaged_taxonomy_names_three_levels_per_emotion(taxonomy) -> None:  # type: ignore[no-untyped-def]
    assert taxonomy.granular_count == 3 * len(BASE_EMOTIONS)
    assert set(taxonomy.granular) == set(BASE_EMOTIONS)
    anger = taxonomy.granular["anger"]
    assert (anger.by, anger.names["high"], anger.names["low"]) == (
        "intensity",
        "rage",
        "irritation",
    )
    assert taxonomy.granular["neutral"].by == "arousal"


@pytest.mark.parametrize(
    ("intensity", "name", "membership"),
    [
        (0.95, "rage", 1.0),
        (0.8, "rage", 1.0),
        (0.7, "rage", 2 / 3),
        (0.5, "frustration", 1.0),
        (0.3, "irritation", 2 / 3),
        (0.0, "irritation", 1.0),
    ],
)
def test_intensity_picks_one_level_and_scales_its_score(  # type: ignore[no-untyped-def]
    taxonomy, intensity: float, name: str, membership: float
) -> None:
    primary, _, _ = taxonomy.interpret(_probs(anger=1.0), _dims(intensity=intensity))
    assert [g.name for g in primary] == [name]  # one level of anger, never two
    assert primary[0].confidence == pytest.approx(membership, abs=1e-4)
    assert primary[0].level in {"low", "medium", "high"}


def test_strong_expression_of_a_doubtful_emotion_is_not_its_highest_level(taxonomy) -> None:  # type: ignore[no-untyped-def]
    # JFK-like: strongly expressed, anger only 0.6 probable → anger's intensity 0.57: frustration
    primary, _, _ = taxonomy.interpret(_probs(anger=0.6), _dims(intensity=0.95))
    assert primary[0].name == "frustration"
    primary, _, _ = taxonomy.interpret(_probs(anger=0.95), _dims(intensity=0.95))
    assert primary[0].name == "rage"


def test_same_probability_different_evidence_gives_different_emotions(taxonomy) -> None:  # type: ignore[no-untyped-def]
    calm, _, _ = taxonomy.interpret(_probs(neutral=0.7), _dims(arousal=0.1))
    alert, _, _ = taxonomy.interpret(_probs(neutral=0.7), _dims(arousal=0.9))
    assert (calm[0].name, alert[0].name) == ("calm", "alertness")


def test_without_dimensions_the_probability_sets_the_level(taxonomy) -> None:  # type: ignore[no-untyped-def]
    weak, _, _ = taxonomy.interpret(_probs(anger=0.4))
    strong, _, _ = taxonomy.interpret(_probs(anger=0.9))
    assert (weak[0].name, strong[0].name) == ("frustration", "rage")
    assert weak[0].confidence < 0.4 and strong[0].confidence == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("dominant", "p", "has_primary"),
    [
        ("anger", 0.35, True),
        ("anger", 0.3499, False),
        ("neutral", 0.45, True),
        ("neutral", 0.44, False),
    ],
)
def test_primary_thresholds(taxonomy, dominant: str, p: float, has_primary: bool) -> None:  # type: ignore[no-untyped-def]
    primary, _, _ = taxonomy.interpret(_probs(**{dominant: p}), _dims())
    assert bool(primary) is has_primary
    assert all(g.base == dominant for g in primary)


def test_secondary_is_the_runner_up_when_probable(taxonomy) -> None:  # type: ignore[no-untyped-def]
    _, secondary, _ = taxonomy.interpret(_probs(sadness=0.5, fear=0.3), _dims(intensity=0.2))
    assert [(g.name, g.base) for g in secondary] == [("worry", "fear")]
    _, secondary, _ = taxonomy.interpret(_probs(sadness=0.5, fear=0.24), _dims())
    assert secondary == ()


@pytest.mark.parametrize(
    ("a", "b", "name"),
    [
        ("happiness", "surprise", "elation"),
        ("sadness", "anger", "bitterness"),
        ("fear", "sadness", "desperation"),
        ("happiness", "neutral", "contentment"),
        ("anger", "fear", "panic"),
        ("sadness", "neutral", "resignation"),
        ("anger", "surprise", "outrage"),
        ("fear", "surprise", "alarm"),
        ("happiness", "sadness", "nostalgia"),
    ],
)
def test_every_complex_pair(taxonomy, a: str, b: str, name: str) -> None:  # type: ignore[no-untyped-def]
    for first, second in ((a, b), (b, a)):
        _, _, blends = taxonomy.interpret(_probs(**{first: 0.45, second: 0.35}))
        assert [c.name for c in blends] == [name]
        assert blends[0].confidence == pytest.approx(0.35)
        assert blends[0].components == (first, second)


def test_blend_needs_both_emotions_probable(taxonomy) -> None:  # type: ignore[no-untyped-def]
    # a strong first emotion does not make a blend with a weak second one
    _, _, blends = taxonomy.interpret(_probs(happiness=0.6, surprise=0.29))
    assert blends == ()
    _, _, blends = taxonomy.interpret(_probs(happiness=0.6, surprise=0.3))
    assert [c.name for c in blends] == ["elation"]
    _, _, blends = taxonomy.interpret(_probs(anger=0.5, happiness=0.4))  # no rule for the pair
    assert blends == ()


def _document() -> dict:  # type: ignore[type-arg]
    from importlib import resources

    return yaml.safe_load(
        resources.files("emotivoice.emotion").joinpath("taxonomy.yaml").read_text()
    )


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("granular"), "missing section 'granular'"),
        (lambda d: d.update(version=1), "version 1 is not supported"),
        (lambda d: d["granular"].pop("fear"), "missing: ['fear']"),
        (lambda d: d["granular"].update(disgust=d["granular"]["anger"]), "unknown: ['disgust']"),
        (lambda d: d["granular"]["anger"].pop("high"), "granular.anger.high"),
        (lambda d: d["granular"]["anger"].update(by="loudness"), "granular.anger.by"),
        (lambda d: d["rules"].update(primary_min=1.5), "rules.primary_min"),
        (lambda d: d["rules"]["levels"].update(low=0.9), "must rise"),
        (lambda d: d["complex"].append({"pair": ["anger", "joy"], "name": "x"}), "complex[9].pair"),
        (lambda d: d["complex"].append({"pair": ["anger"]}), "complex[9]"),
    ],
)
def test_malformed_taxonomy_names_the_problem(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    document = _document()
    mutate(document)
    with pytest.raises(TaxonomyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_taxonomy(document, "mine.yaml")


def test_user_file_round_trip_and_errors(tmp_path: Path) -> None:
    document = _document()
    document["granular"]["anger"]["high"] = "fury"
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(document))
    taxonomy = load_taxonomy(path)
    primary, _, _ = taxonomy.interpret(_probs(anger=0.9), _dims(intensity=0.9))
    assert primary[0].name == "fury"
    path.write_text("granular: [unclosed")
    with pytest.raises(TaxonomyError, match="not valid YAML"):
        load_taxonomy(path)
    with pytest.raises(TaxonomyError, match="does not exist"):
        load_taxonomy(tmp_path / "absent.yaml")
