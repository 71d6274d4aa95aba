"""Emotion recognition: base emotions per segment, taxonomy, file distribution and timeline."""

from emotivoice.emotion.backends import (
    EmotionAnalyzer,
    EmotionOptions,
    EmotionScores,
    FileEmotion,
    TimelinePoint,
)
from emotivoice.emotion.labels import BASE_EMOTIONS
from emotivoice.emotion.taxonomy import (
    ComplexEmotion,
    GranularEmotion,
    Taxonomy,
    TaxonomyError,
    load_taxonomy,
)

__all__ = [
    "BASE_EMOTIONS",
    "ComplexEmotion",
    "EmotionAnalyzer",
    "EmotionOptions",
    "EmotionScores",
    "FileEmotion",
    "GranularEmotion",
    "Taxonomy",
    "TaxonomyError",
    "TimelinePoint",
    "load_taxonomy",
]
