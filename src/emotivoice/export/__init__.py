"""Writers of an :class:`~emotivoice.results.Analysis`: JSON, CSV, SRT, WebVTT and a PDF report."""

from emotivoice.export.subtitles import Cue, SubtitleOptions, subtitle_cues
from emotivoice.export.writers import (
    EXPORT_FORMATS,
    WRITERS,
    Writer,
    get_writer,
    write_export,
    write_outputs,
)

__all__ = [
    "EXPORT_FORMATS",
    "WRITERS",
    "Cue",
    "SubtitleOptions",
    "Writer",
    "get_writer",
    "subtitle_cues",
    "write_export",
    "write_outputs",
]
