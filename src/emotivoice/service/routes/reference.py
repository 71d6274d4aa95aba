"""Reference data for clients: ``/emotions`` (the taxonomy), ``/languages``, ``/models``."""

from __future__ import annotations

from fastapi import APIRouter

from emotivoice.service.deps import SettingsDep
from emotivoice.service.routes import ERROR_RESPONSES
from emotivoice.service.schemas import (
    ComplexEmotion,
    EmotionTaxonomy,
    GranularLevels,
    Languages,
    Models,
)

__all__ = ["router"]

router = APIRouter(responses=ERROR_RESPONSES, tags=["reference"])


@router.get("/emotions")
def emotions() -> EmotionTaxonomy:
    """The emotion taxonomy: base emotions, dimensions, granular levels, thresholds, blends."""
    from emotivoice.emotion.dimensions import DIMENSIONS
    from emotivoice.emotion.labels import BASE_EMOTIONS
    from emotivoice.emotion.taxonomy import load_taxonomy

    t = load_taxonomy()
    return EmotionTaxonomy(
        base=list(BASE_EMOTIONS),
        dimensions=list(DIMENSIONS),
        granular={
            base: GranularLevels(by=rule.by, **rule.names)  # type: ignore[arg-type]
            for base, rule in t.granular.items()
        },
        levels=dict(t.levels),
        primary_min=dict(t.primary_min),
        secondary_min=t.secondary_min,
        blend_min=t.blend_min,
        complex=[ComplexEmotion(pair=sorted(p), name=n) for p, n in t.complex_rules.items()],
        granular_count=t.granular_count,
    )


@router.get("/languages")
def languages() -> Languages:
    from emotivoice.transcription import supported_languages

    return Languages(languages=supported_languages())


@router.get("/models")
def models(settings: SettingsDep) -> Models:
    from emotivoice.models.registry import model_info

    return Models(whisper=model_info(), emotion=settings.emotion_models)
