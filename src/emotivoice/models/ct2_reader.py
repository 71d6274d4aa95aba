"""Read the variables of a CTranslate2 ``model.bin`` into numpy arrays.

The format is the one ``ctranslate2.specs.ModelSpec.save`` writes (binary versions 3–6):
``uint32 version``, spec name and revision, then each variable as (name, rank, dims, dtype id,
byte count, raw little-endian data) and finally (alias, target) name pairs. int8 weights come
with a ``<name>_scale`` variable and are dequantised here (``weight / scale`` per row).
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.typing import NDArray

from emotivoice.errors import ModelIntegrityError

logger = logging.getLogger(__name__)

# order of CTranslate2's DataType enum (include/ctranslate2/types.h)
_DTYPES: tuple[str, ...] = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
_MIN_VERSION, _MAX_VERSION = 3, 6


@dataclass(frozen=True)
class CT2Model:
    """The spec name, revision and variables (aliases resolved) of a CTranslate2 model."""

    spec: str
    revision: int
    variables: dict[str, NDArray[np.float32] | NDArray[np.int32]]


def _read(stream: BinaryIO, fmt: str) -> tuple[int, ...]:
    size = struct.calcsize("<" + fmt)
    raw = stream.read(size)
    if len(raw) != size:
        raise EOFError
    return struct.unpack("<" + fmt, raw)


def _string(stream: BinaryIO) -> str:
    (length,) = _read(stream, "H")
    raw = stream.read(length)
    if len(raw) != length:
        raise EOFError
    return raw[:-1].decode("utf-8")


def _array(
    raw: bytes, dtype: str, shape: tuple[int, ...]
) -> NDArray[np.float32] | NDArray[np.int32]:
    if dtype == "bfloat16":
        widened = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return widened.view(np.float32).reshape(shape)
    array = np.frombuffer(raw, dtype="<" + np.dtype(dtype).str[1:]).reshape(shape)
    if array.dtype.kind == "f":
        return array.astype(np.float32)
    return array.astype(np.int32)


def read_ct2_model(path: Path) -> CT2Model:
    """Parse ``model.bin`` (or a directory holding it) into float32 arrays.

    Raises:
        ModelIntegrityError: the file is not a CTranslate2 model or is truncated.
    """
    file = path / "model.bin" if path.is_dir() else path
    try:
        with file.open("rb") as stream:
            (version,) = _read(stream, "I")
            if not _MIN_VERSION <= version <= _MAX_VERSION:
                raise ModelIntegrityError(
                    f"{file} is not a CTranslate2 model this version can read "
                    f"(binary version {version}, expected {_MIN_VERSION}–{_MAX_VERSION})."
                )
            spec = _string(stream)
            (revision,) = _read(stream, "I")
            (count,) = _read(stream, "I")
            raw: dict[str, NDArray[np.float32] | NDArray[np.int32]] = {}
            for _ in range(count):
                name = _string(stream)
                (rank,) = _read(stream, "B")
                shape = _read(stream, "I" * rank) if rank else ()
                type_id, size = _read(stream, "BI")
                data = stream.read(size)
                if len(data) != size or type_id >= len(_DTYPES):
                    raise EOFError
                raw[name] = _array(data, _DTYPES[type_id], shape)
            (n_aliases,) = _read(stream, "I")
            aliases = [(_string(stream), _string(stream)) for _ in range(n_aliases)]
    except (EOFError, ValueError) as error:
        raise ModelIntegrityError(
            f"{file} is truncated or corrupt; delete it so that it is rebuilt ({error or 'EOF'})."
        ) from error
    variables = _dequantise(raw)
    for alias, target in aliases:
        variables[alias] = variables[target]
    logger.debug("Read %d variables of %s (rev %d) from %s", len(variables), spec, revision, file)
    return CT2Model(spec=spec, revision=revision, variables=variables)


def _dequantise(
    raw: dict[str, NDArray[np.float32] | NDArray[np.int32]],
) -> dict[str, NDArray[np.float32] | NDArray[np.int32]]:
    out = {}
    for name, value in raw.items():
        if name.endswith("_scale") and name[: -len("_scale")] in raw:
            continue
        scale = raw.get(name + "_scale")
        if scale is not None and value.dtype == np.int32 and value.ndim == 2:
            value = (value.astype(np.float32) / scale.reshape(-1, 1)).astype(np.float32)
        out[name] = value
    return out
