"""The emotion taxonomy: granular and complex emotions derived from base probabilities.

The mapping is data (``taxonomy.yaml`` in this package, or a user's file of the same shape),
validated at load; :meth:`Taxonomy.interpret` applies its rules to one probability vector.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from emotivoice.emotion.labels import BASE_EMOTIONS
from emotivoice.errors import InvalidConfigError
from emotivoice.results import ComplexEmotion, GranularEmotion


class TaxonomyError(InvalidConfigError):
    """A taxonomy file is malformed; the message names the offending entry."""

    code = "INVALID_OPTIONS"  # over HTTP it is an invalid option like any other


@dataclass(frozen=True)
class Taxonomy:
    """Validated rules and vocabularies (see ``taxonomy.yaml`` for their meaning)."""

    primary: Mapping[str, tuple[str, ...]]
    secondary: Mapping[str, tuple[str, ...]]
    primary_thresholds: Mapping[str, float]
    secondary_min: float
    secondary_max: float
    secondary_factor: float
    complex_rules: Mapping[frozenset[str], str]
    complex_min: float

    @property
    def granular_count(self) -> int:
        """Number of distinct granular emotion names."""
        names = {n for v in (*self.primary.values(), *self.secondary.values()) for n in v}
        return len(names)

    def interpret(
        self, probabilities: Mapping[str, float]
    ) -> tuple[
        tuple[GranularEmotion, ...], tuple[GranularEmotion, ...], tuple[ComplexEmotion, ...]
    ]:
        """Primary granular, secondary granular and complex emotions for base probabilities."""
        ranked = sorted(BASE_EMOTIONS, key=lambda e: -probabilities[e])
        dominant, runner_up = ranked[0], ranked[1]
        p = float(probabilities[dominant])
        primary: tuple[GranularEmotion, ...] = ()
        if p >= self.primary_thresholds[dominant]:
            primary = tuple(
                GranularEmotion(n, dominant, round(p, 4)) for n in self.primary[dominant]
            )
        secondary: tuple[GranularEmotion, ...] = ()
        if self.secondary_min <= p < self.secondary_max:
            confidence = round(p * self.secondary_factor, 4)
            secondary = tuple(
                GranularEmotion(n, dominant, confidence) for n in self.secondary[dominant]
            )
        blends: tuple[ComplexEmotion, ...] = ()
        name = self.complex_rules.get(frozenset((dominant, runner_up)))
        mean = (p + float(probabilities[runner_up])) / 2
        if name is not None and mean > self.complex_min:
            blends = (ComplexEmotion(name, (dominant, runner_up), round(mean, 4)),)
        return primary, secondary, blends


def _number(value: Any, where: str, low: float = 0.0, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise TaxonomyError(f"{where} must be a number between {low} and {high}, got {value!r}")
    return float(value)


def _names(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise TaxonomyError(f"{where} must be a non-empty list of names, got {value!r}")
    return tuple(value)


def parse_taxonomy(document: Any, source: str = "taxonomy") -> Taxonomy:
    """Validate a loaded YAML document and build a :class:`Taxonomy`."""
    if not isinstance(document, dict):
        raise TaxonomyError(f"{source}: the document must be a mapping")
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
    primary, secondary = {}, {}
    for base in BASE_EMOTIONS:
        entry = granular[base]
        if not isinstance(entry, dict):
            raise TaxonomyError(f"{source}: granular.{base} must have 'primary' and 'secondary'")
        primary[base] = _names(entry.get("primary"), f"{source}: granular.{base}.primary")
        secondary[base] = _names(entry.get("secondary"), f"{source}: granular.{base}.secondary")
    default = _number(rules.get("primary_threshold", 0.3), f"{source}: rules.primary_threshold")
    overrides = rules.get("primary_thresholds") or {}
    if not isinstance(overrides, dict) or set(overrides) - set(BASE_EMOTIONS):
        raise TaxonomyError(f"{source}: rules.primary_thresholds must map base emotions to numbers")
    thresholds = {
        b: _number(overrides.get(b, default), f"{source}: rules.primary_thresholds.{b}")
        for b in BASE_EMOTIONS
    }
    low = _number(rules.get("secondary_min", 0.3), f"{source}: rules.secondary_min")
    high = _number(rules.get("secondary_max", 0.7), f"{source}: rules.secondary_max")
    if low > high:
        raise TaxonomyError(f"{source}: rules.secondary_min ({low}) exceeds secondary_max ({high})")
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
        primary=primary,
        secondary=secondary,
        primary_thresholds=thresholds,
        secondary_min=low,
        secondary_max=high,
        secondary_factor=_number(
            rules.get("secondary_factor", 0.7), f"{source}: rules.secondary_factor"
        ),
        complex_rules=complex_rules,
        complex_min=_number(rules.get("complex_min", 0.3), f"{source}: rules.complex_min"),
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
