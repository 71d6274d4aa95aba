"""Writers of an :class:`~emotivoice.results.Analysis`: JSON, CSV, SRT and WebVTT."""

from emotivoice.export.writers import WRITERS, Writer, get_writer, write_outputs

__all__ = ["WRITERS", "Writer", "get_writer", "write_outputs"]
