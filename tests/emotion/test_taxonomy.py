"""The emotion taxonomy: rules at their boundaries, every complex pair, malformed files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from emotivoice.emotion import BASE_EMOTIONS, TaxonomyError, load_taxonomy
from emotivoice.emotion.taxonomy import parse_taxonomy


def _probs(**given: float) -> dict[str, float]:
    rest = (1 - sum(given.values())) / (len(BASE_EMOTIONS) - len(given))
    return {e: given.get(e, rest) for e in BASE_EMOTIONS}


@pytest.fixture(scope="module")
def taxonomy():  # type: ignore[no-untyped-def]
    return load_taxonomy()


def test_packaged_taxonomy_is_rich(taxonomy) -> None:  # type: ignore[no-untyped-def]
    assert taxonomy.granular_count >= 20
    assert set(taxonomy.primary) == set(BASE_EMOTIONS)
    assert "rage" in taxonomy.primary["anger"] and "annoyance" in taxonomy.secondary["anger"]


@pytest.mark.parametrize(
    ("dominant", "p", "has_primary"),
    [
        ("anger", 0.30, True),
        ("anger", 0.2999, False),
        ("neutral", 0.40, True),
        ("neutral", 0.39, False),
    ],
)
def test_primary_thresholds(taxonomy, dominant: str, p: float, has_primary: bool) -> None:  # type: ignore[no-untyped-def]
    # keep every other class below p so that ``dominant`` is the top one
    primary, _, _ = taxonomy.interpret(_probs(**{dominant: p}))
    assert bool(primary) is has_primary
    if primary:
        assert {g.base for g in primary} == {dominant}
        assert all(g.confidence == pytest.approx(p) for g in primary)


@pytest.mark.parametrize(
    ("p", "has_secondary"), [(0.3, True), (0.69, True), (0.7, False), (0.95, False)]
)
def test_secondary_window_and_confidence(taxonomy, p: float, has_secondary: bool) -> None:  # type: ignore[no-untyped-def]
    _, secondary, _ = taxonomy.interpret(_probs(sadness=p))
    assert bool(secondary) is has_secondary
    if secondary:
        assert all(g.confidence == pytest.approx(p * 0.7, abs=1e-4) for g in secondary)
        assert "melancholy" in {g.name for g in secondary}


@pytest.mark.parametrize(
    ("a", "b", "name"),
    [
        ("happiness", "surprise", "elation"),
        ("sadness", "anger", "bitterness"),
        ("fear", "sadness", "desperation"),
        ("happiness", "neutral", "contentment"),
        ("anger", "fear", "panic"),
        ("sadness", "neutral", "resignation"),
    ],
)
def test_every_complex_pair(taxonomy, a: str, b: str, name: str) -> None:  # type: ignore[no-untyped-def]
    for first, second in ((a, b), (b, a)):
        _, _, blends = taxonomy.interpret(_probs(**{first: 0.45, second: 0.35}))
        assert [c.name for c in blends] == [name]
        assert blends[0].confidence == pytest.approx(0.4)
        assert blends[0].components == (first, second)


def test_complex_needs_mean_above_threshold(taxonomy) -> None:  # type: ignore[no-untyped-def]
    # mean exactly 0.3 is not "> 0.3"
    low = dict.fromkeys(BASE_EMOTIONS, 0.05)
    _, _, blends = taxonomy.interpret({**low, "happiness": 0.5, "surprise": 0.1})
    assert blends == ()
    _, _, blends = taxonomy.interpret({**low, "happiness": 0.5, "surprise": 0.1002})
    assert [c.name for c in blends] == ["elation"]
    # a pair without a rule gives nothing
    _, _, blends = taxonomy.interpret(_probs(anger=0.5, happiness=0.4))
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
        (lambda d: d["granular"].pop("fear"), "missing: ['fear']"),
        (lambda d: d["granular"].update(disgust=d["granular"]["anger"]), "unknown: ['disgust']"),
        (lambda d: d["granular"]["anger"].update(primary=[]), "granular.anger.primary"),
        (lambda d: d["rules"].update(primary_threshold=1.5), "rules.primary_threshold"),
        (lambda d: d["rules"].update(secondary_min=0.8), "exceeds secondary_max"),
        (lambda d: d["complex"].append({"pair": ["anger", "joy"], "name": "x"}), "complex[6].pair"),
        (lambda d: d["complex"].append({"pair": ["anger"]}), "complex[6]"),
    ],
)
def test_malformed_taxonomy_names_the_problem(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    document = _document()
    mutate(document)
    with pytest.raises(TaxonomyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_taxonomy(document, "mine.yaml")


def test_user_file_round_trip_and_errors(tmp_path: Path) -> None:
    document = _document()
    document["granular"]["anger"]["primary"] = ["outrage"]
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(document))
    taxonomy = load_taxonomy(path)
    assert taxonomy.primary["anger"] == ("outrage",)
    path.write_text("granular: [unclosed")
    with pytest.raises(TaxonomyError, match="not valid YAML"):
        load_taxonomy(path)
    with pytest.raises(TaxonomyError, match="does not exist"):
        load_taxonomy(tmp_path / "absent.yaml")
