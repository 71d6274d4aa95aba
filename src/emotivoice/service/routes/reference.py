"""Reference data for clients: ``/emotions`` (the taxonomy), ``/languages``, ``/models``."""

from __future__ import annotations

from fastapi import APIRouter

from emotivoice.service.deps import SettingsDep
from emotivoice.service.routes import ERROR_RESPONSES
from emotivoice.service.schemas import ComplexEmotion, EmotionTaxonomy, Languages, Models

__all__ = ["router"]

router = APIRouter(responses=ERROR_RESPONSES, tags=["reference"])


@router.get("/emotions")
def emotions() -> EmotionTaxonomy:
    """The emotion taxonomy: base emotions, granular lists, thresholds, complex rules."""
    from emotivoice.emotion.labels import BASE_EMOTIONS
    from emotivoice.emotion.taxonomy import load_taxonomy

    t = load_taxonomy()
    return EmotionTaxonomy(
        base=list(BASE_EMOTIONS),
        primary={k: list(v) for k, v in t.primary.items()},
        secondary={k: list(v) for k, v in t.secondary.items()},
        primary_thresholds=dict(t.primary_thresholds),
        secondary_range=[t.secondary_min, t.secondary_max],
        secondary_factor=t.secondary_factor,
        complex=[ComplexEmotion(pair=sorted(p), name=n) for p, n in t.complex_rules.items()],
        complex_min=t.complex_min,
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
