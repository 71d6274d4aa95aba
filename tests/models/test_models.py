"""Model registry: bundled weights are joined once, checked by sha256, and tampering is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from emotivoice.errors import InvalidConfigError, ModelIntegrityError, ModelNotFoundError
from emotivoice.models import available_models, load_model, model_info, resolve_whisper_model
from emotivoice.models.registry import BUNDLED_BASE_SHA256, sha256_file


@pytest.fixture()
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EMOTIVOICE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_available_models_lists_bundled_first() -> None:
    names = available_models()
    assert names[:2] == ["base", "tiny.en"]
    assert "large-v3" in names
    installed = {i.name for i in model_info() if i.installed}
    assert {"base", "tiny.en"} <= installed


def test_bundled_base_is_joined_and_verified(fresh_cache: Path) -> None:
    path = resolve_whisper_model("base")
    assert path.parent == fresh_cache
    assert sha256_file(path / "model.bin") == BUNDLED_BASE_SHA256
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        assert (path / name).is_file()
    assert resolve_whisper_model("base") == path  # second call reuses the joined file


def test_tampered_model_is_refused(fresh_cache: Path) -> None:
    model_bin = resolve_whisper_model("base") / "model.bin"
    with model_bin.open("r+b") as fh:
        fh.seek(1_000_000)
        byte = fh.read(1)
        fh.seek(1_000_000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelIntegrityError, match="corrupt or was modified"):
        resolve_whisper_model("base")
    with pytest.raises(ModelIntegrityError):
        load_model("base")


def test_unknown_model_names_the_choices() -> None:
    with pytest.raises(ModelNotFoundError, match=r"available models = .*'base'"):
        resolve_whisper_model("no-such-model")


def test_local_directory_must_be_ctranslate2(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not a CTranslate2"):
        resolve_whisper_model(str(tmp_path))


def test_local_ctranslate2_directory_is_accepted() -> None:
    base_dir = resolve_whisper_model("base")
    assert resolve_whisper_model(str(base_dir)) == base_dir


def test_hub_download_failure_is_clear(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Offline (the network is replaced by a refusing stub), a hub name fails with advice."""
    import faster_whisper.utils

    def offline(*args: object, **kwargs: object) -> str:
        raise OSError("network is unreachable")

    monkeypatch.setattr(faster_whisper.utils, "download_model", offline)
    monkeypatch.setenv("EMOTIVOICE_CACHE_DIR", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match=r"bundled models: base, tiny\.en"):
        resolve_whisper_model("small")


def test_unknown_device() -> None:
    with pytest.raises(InvalidConfigError, match="auto, cpu, cuda"):
        load_model("base", device="tpu")
