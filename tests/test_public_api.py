"""The public names of the restructure's moved modules still import (old paths warn)."""

from __future__ import annotations

import importlib
import sys

import pytest


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [
        ("emotivoice.service.client", "emotivoice.client.stream", "StreamClient"),
        ("emotivoice.service.http_client", "emotivoice.client.rest", "ServiceClient"),
    ],
)
def test_moved_client_modules_keep_a_deprecated_alias(old: str, new: str, name: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=new):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)


def test_top_level_names_and_the_streaming_package() -> None:
    import emotivoice
    import emotivoice.streaming

    for name in emotivoice.__all__:
        assert getattr(emotivoice, name) is not None, name
    from emotivoice.streaming.analyzer import StreamingAnalyzer

    assert emotivoice.streaming.StreamingAnalyzer is StreamingAnalyzer
    assert callable(emotivoice.explain)
    with pytest.raises(AttributeError):
        _ = emotivoice.streaming.NoSuchThing


def test_the_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import version

    import emotivoice

    assert emotivoice.__version__ == version("emotivoice")
