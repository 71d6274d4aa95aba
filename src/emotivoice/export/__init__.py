"""Writers of an :class:`~emotivoice.results.Analysis`: JSON, CSV, SRT, WebVTT and a PDF report."""

from emotivoice.export.writers import (
    EXPORT_FORMATS,
    WRITERS,
    Writer,
    get_writer,
    write_export,
    write_outputs,
)

__all__ = ["EXPORT_FORMATS", "WRITERS", "Writer", "get_writer", "write_export", "write_outputs"]
