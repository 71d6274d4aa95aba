"""The emotion taxonomy: granular and complex emotions derived from the base probabilities and
the dimensions (arousal, valence, intensity).

The mapping is data (``taxonomy.yaml`` in this package, or a user's file of the same shape),
validated at load; :meth:`Taxonomy.interpret` applies its rules to one segment's or unit's
scores. Each base emotion has three levels (low, medium, high) read from one dimension through a
fuzzy partition, so a base emotion gets at most one granular name, scored by how probable the
base emotion is and how clearly its dimension sits in that level.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from emotivoice.emotion.dimensions import DIMENSIONS
from emotivoice.emotion.labels import BASE_EMOTIONS
from emotivoice.errors import InvalidConfigError
from emotivoice.results import ComplexEmotion, GranularEmotion

LEVELS = ("low", "medium", "high")
TAXONOMY_VERSION = 2


class TaxonomyError(InvalidConfigError):
    """A taxonomy file is malformed; the message names the offending entry."""

    code = "INVALID_OPTIONS"  # over HTTP it is an invalid option like any other


@dataclass(frozen=True)
class GranularRule:
    """The levels of one base emotion: the dimension that sets them and a name per level."""

    by: str
    names: Mapping[str, str]  # level → granular name


@dataclass(frozen=True)
class Taxonomy:
    """Validated rules and vocabularies (see ``taxonomy.yaml`` for their meaning)."""

    granular: Mapping[str, GranularRule]
    primary_min: Mapping[str, float]
    secondary_min: float
    blend_min: float
    levels: Mapping[str, float]  # level → centre of its fuzzy set on [0, 1]
    complex_rules: Mapping[frozenset[str], str]

    @property
    def granular_count(self) -> int:
        """Number of distinct granular emotion names."""
        return len({n for rule in self.granular.values() for n in rule.names.values()})

    def level_memberships(self, value: float) -> dict[str, float]:
        """How much ``value`` (0–1) belongs to each level: a triangular fuzzy partition whose
        peaks are the level centres (the memberships sum to 1)."""
        centres = sorted(self.levels.items(), key=lambda item: item[1])
        out = {name: 0.0 for name, _ in centres}
        if value <= centres[0][1]:
            out[centres[0][0]] = 1.0
            return out
        if value >= centres[-1][1]:
            out[centres[-1][0]] = 1.0
            return out
        for (low, a), (high, b) in itertools.pairwise(centres):
            if a <= value <= b:
                share = (value - a) / (b - a) if b > a else 1.0
                out[low], out[high] = 1.0 - share, share
                break
        return out

    def granular_emotion(
        self, base: str, probability: float, dimensions: Mapping[str, float] | None
    ) -> GranularEmotion:
        """The one granular emotion of ``base``: its most likely level, scored
        P(base) × membership of that level.

        The level is read from the rule's dimension; intensity (how strongly the speech is
        expressed, whatever the emotion) counts as this emotion's intensity in proportion to
        P(base), so a strongly expressed but doubtful anger is not *rage*. Without dimensions
        the base probability stands in for the dimension.
        """
        rule = self.granular[base]
        if dimensions is None:
            value = probability
        elif rule.by == "intensity":
            value = dimensions["intensity"] * probability
        else:
            value = dimensions[rule.by]
        memberships = self.level_memberships(float(value))
        level = max(LEVELS, key=lambda name: memberships[name])
        return GranularEmotion(
            rule.names[level], base, round(probability * memberships[level], 4), level
        )

    def interpret(
        self,
        probabilities: Mapping[str, float],
        dimensions: Mapping[str, float] | None = None,
    ) -> tuple[
        tuple[GranularEmotion, ...], tuple[GranularEmotion, ...], tuple[ComplexEmotion, ...]
    ]:
        """Primary and secondary granular emotions (of the two most probable base emotions, each
        when probable enough) and the blend of those two when both are probable."""
        ranked = sorted(BASE_EMOTIONS, key=lambda e: -probabilities[e])
        first, second = ranked[0], ranked[1]
        p1, p2 = float(probabilities[first]), float(probabilities[second])
        primary: tuple[GranularEmotion, ...] = ()
        if p1 >= self.primary_min[first]:
            primary = (self.granular_emotion(first, p1, dimensions),)
        secondary: tuple[GranularEmotion, ...] = ()
        if p2 >= self.secondary_min:
            secondary = (self.granular_emotion(second, p2, dimensions),)
        blends: tuple[ComplexEmotion, ...] = ()
        name = self.complex_rules.get(frozenset((first, second)))
        if name is not None and min(p1, p2) >= self.blend_min:
            blends = (ComplexEmotion(name, (first, second), round(min(p1, p2), 4)),)
        return primary, secondary, blends


def _number(value: Any, where: str, low: float = 0.0, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise TaxonomyError(f"{where} must be a number between {low} and {high}, got {value!r}")
    return float(value)


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TaxonomyError(f"{where} must be a name, got {value!r}")
    return value.strip()


def _granular(entry: Any, where: str) -> GranularRule:
    if not isinstance(entry, dict):
        raise TaxonomyError(f"{where} must map 'by' and {', '.join(LEVELS)} to names")
    by = entry.get("by", "intensity")
    if by not in DIMENSIONS:
        raise TaxonomyError(f"{where}.by must be one of {', '.join(DIMENSIONS)}, got {by!r}")
    return GranularRule(
        by, {level: _name(entry.get(level), f"{where}.{level}") for level in LEVELS}
    )


def parse_taxonomy(document: Any, source: str = "taxonomy") -> Taxonomy:
    """Validate a loaded YAML document and build a :class:`Taxonomy`."""
    if not isinstance(document, dict):
        raise TaxonomyError(f"{source}: the document must be a mapping")
    version = document.get("version", 1)
    if version != TAXONOMY_VERSION:
        raise TaxonomyError(
            f"{source}: taxonomy version {version!r} is not supported; version "
            f"{TAXONOMY_VERSION} names a low, medium and high level per base emotion: start "
            "from the packaged file (docs/emotion-model-card.md shows it)"
        )
    for key in ("rules", "granular", "complex"):
        if key not in document:
            raise TaxonomyError(f"{source}: missing section '{key}'")
    rules, granular = document["rules"], document["granular"]
    if not isinstance(rules, dict) or not isinstance(granular, dict):
        raise TaxonomyError(f"{source}: 'rules' and 'granular' must be mappings")
    unknown = set(granular) - set(BASE_EMOTIONS)
    missing = set(BASE_EMOTIONS) - set(granular)
    if unknown or missing:
        raise TaxonomyError(
            f"{source}: granular must list exactly the base emotions {', '.join(BASE_EMOTIONS)}"
            f" (unknown: {sorted(unknown)}, missing: {sorted(missing)})"
        )
    rules_of = {b: _granular(granular[b], f"{source}: granular.{b}") for b in BASE_EMOTIONS}
    default = _number(rules.get("primary_min", 0.35), f"{source}: rules.primary_min")
    overrides = rules.get("primary_min_by_emotion") or {}
    if not isinstance(overrides, dict) or set(overrides) - set(BASE_EMOTIONS):
        raise TaxonomyError(
            f"{source}: rules.primary_min_by_emotion must map base emotions to numbers"
        )
    primary_min = {
        b: _number(overrides.get(b, default), f"{source}: rules.primary_min_by_emotion.{b}")
        for b in BASE_EMOTIONS
    }
    levels = rules.get("levels", {"low": 0.2, "medium": 0.5, "high": 0.8})
    if not isinstance(levels, dict) or set(levels) != set(LEVELS):
        raise TaxonomyError(f"{source}: rules.levels must give a centre to each of {LEVELS}")
    centres = {k: _number(levels[k], f"{source}: rules.levels.{k}") for k in LEVELS}
    if not centres["low"] < centres["medium"] < centres["high"]:
        raise TaxonomyError(f"{source}: rules.levels must rise from low to medium to high")
    complex_rules: dict[frozenset[str], str] = {}
    if not isinstance(document["complex"], list):
        raise TaxonomyError(f"{source}: 'complex' must be a list of {{pair, name}} entries")
    for index, entry in enumerate(document["complex"]):
        where = f"{source}: complex[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise TaxonomyError(f"{where} needs a 'name' and a 'pair' of base emotions")
        pair = entry.get("pair")
        if not (isinstance(pair, list) and len(pair) == 2 and set(pair) <= set(BASE_EMOTIONS)):
            raise TaxonomyError(f"{where}.pair must be two distinct base emotions, got {pair!r}")
        if pair[0] == pair[1]:
            raise TaxonomyError(f"{where}.pair must be two distinct base emotions, got {pair!r}")
        complex_rules[frozenset(pair)] = entry["name"]
    return Taxonomy(
        granular=rules_of,
        primary_min=primary_min,
        secondary_min=_number(rules.get("secondary_min", 0.25), f"{source}: rules.secondary_min"),
        blend_min=_number(rules.get("blend_min", 0.3), f"{source}: rules.blend_min"),
        levels=centres,
        complex_rules=complex_rules,
    )


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """The package's taxonomy, or a user's YAML file of the same shape (validated)."""
    import yaml

    if path is None:
        text = resources.files("emotivoice.emotion").joinpath("taxonomy.yaml").read_text()
        source = "taxonomy.yaml"
    else:
        file = Path(path)
        if not file.is_file():
            raise TaxonomyError(f"Taxonomy file {file} does not exist")
        text, source = file.read_text(encoding="utf-8"), str(file)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise TaxonomyError(f"{source} is not valid YAML: {error}") from None
    return parse_taxonomy(document, source)
