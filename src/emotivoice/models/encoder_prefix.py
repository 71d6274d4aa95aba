"""The first layers of the Whisper encoder in numpy, on a segment's own log-mel frames.

The default emotion head reads layer 4 of the Whisper-base encoder (fine-tuned) run on the
segment's frames alone (no 30 s padding): across corpora the early layers carry more emotion
than the final one (``research/emotion_layer_study.py``), and four layers over the segment's own
positions cost a fraction of the full encoder pass over a 30 s window. CTranslate2 exposes
only the encoder's final output, so this small stack runs here, from the same ``model.bin``
weights, rounded to int8 per row (the linear layers) as CTranslate2's int8 runtime and the
training recipe's packed encoder do.

The arithmetic is the ``transformers`` ``WhisperEncoder``'s: two GELU convolutions (the second
with stride 2), sinusoidal positions, then pre-norm layers of self-attention and a GELU MLP.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from math import sqrt
from typing import Any

import numpy as np
from scipy.special import erf

__all__ = [
    "EncoderPrefix",
    "PrefixOutput",
    "adapted_encoder_prefix",
    "adapter_deltas",
    "load_encoder_prefix",
]

_LAYER_NORM_EPS = 1e-5
# CTranslate2 variables of each layer's linear layers and norms, under ``encoder/layer_N/``
LINEAR_LAYERS = {
    "qkv": "self_attention/linear_0",
    "out": "self_attention/linear_1",
    "fc1": "ffn/linear_0",
    "fc2": "ffn/linear_1",
}
NORM_LAYERS = {"ln1": "self_attention/layer_norm", "ln2": "ffn/layer_norm"}


def _gelu(x: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * x * (1.0 + erf(x / sqrt(2.0))), dtype=np.float32)


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return np.asarray((x - mean) / np.sqrt(var + _LAYER_NORM_EPS) * gamma + beta, np.float32)


def _int8_rows(weight: np.ndarray) -> np.ndarray:
    """Round a weight matrix to int8 per output row and back (CTranslate2's int8 scheme)."""
    flat = weight.reshape(weight.shape[0], -1)
    scale = 127.0 / np.maximum(np.abs(flat).max(axis=1), 1e-8)
    return (
        (np.round(flat * scale[:, None]) / scale[:, None]).reshape(weight.shape).astype(np.float32)
    )


def _conv1d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """(batch, in, frames) → (batch, out, frames // stride); kernel 3, padding 1."""
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1)))
    frames = (x.shape[-1] - 1) // stride + 1
    columns = np.concatenate(
        [padded[:, :, k : k + stride * (frames - 1) + 1 : stride] for k in range(3)], axis=1
    )  # (batch, 3 * in, frames), kernel offset major
    kernel = weight.transpose(0, 2, 1).reshape(weight.shape[0], -1)  # (out, 3 * in)
    return np.asarray(np.matmul(kernel, columns) + bias[:, None], np.float32)


@dataclass(frozen=True)
class PrefixOutput:
    """Outputs of the prefix: ``layers[n]`` is layer n's output (0 the input embedding)."""

    layers: tuple[np.ndarray, ...]  # each (batch, positions, d_model)
    attention: tuple[np.ndarray, ...]  # per layer (batch, positions, positions), mean over heads


class EncoderPrefix:
    """The convolutional front end and the first ``n_layers`` layers of a Whisper encoder."""

    def __init__(self, variables: dict[str, Any], n_layers: int) -> None:
        def get(name: str) -> np.ndarray:
            return np.asarray(variables[f"encoder/{name}"], dtype=np.float32)

        self.n_heads = int(np.asarray(variables["encoder/num_heads"]))
        self.conv = [(get(f"{c}/weight"), get(f"{c}/bias")) for c in ("conv1", "conv2")]
        self.positions = get("position_encodings/encodings")
        self.layers: list[dict[str, Any]] = []
        for i in range(n_layers):
            w: dict[str, Any] = {}
            for name, source in LINEAR_LAYERS.items():
                w[name] = _int8_rows(get(f"layer_{i}/{source}/weight")).T.copy()
                w[name + "_b"] = get(f"layer_{i}/{source}/bias")
            for name, source in NORM_LAYERS.items():
                w[name] = (get(f"layer_{i}/{source}/gamma"), get(f"layer_{i}/{source}/beta"))
            self.layers.append(w)
        self.d_model = self.positions.shape[1]

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every weight as a flat name → array mapping (:meth:`from_arrays` reads it back)."""
        arrays = {"n_heads": np.asarray(self.n_heads), "positions": self.positions}
        for c, (weight, bias) in enumerate(self.conv):
            arrays[f"conv{c}.weight"], arrays[f"conv{c}.bias"] = weight, bias
        for i, w in enumerate(self.layers):
            for name in LINEAR_LAYERS:
                arrays[f"layer{i}.{name}"], arrays[f"layer{i}.{name}_b"] = w[name], w[name + "_b"]
            for name in NORM_LAYERS:
                arrays[f"layer{i}.{name}.gamma"], arrays[f"layer{i}.{name}.beta"] = w[name]
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> EncoderPrefix:
        """The prefix :meth:`to_arrays` wrote (weights already rounded and adapted)."""
        prefix = cls.__new__(cls)
        prefix.n_heads = int(arrays["n_heads"])
        prefix.positions = np.asarray(arrays["positions"], np.float32)
        prefix.conv = [
            (np.asarray(arrays[f"conv{c}.weight"]), np.asarray(arrays[f"conv{c}.bias"]))
            for c in range(2)
        ]
        prefix.layers = []
        n_layers = sum(1 for key in arrays if key.endswith(".qkv"))
        for i in range(n_layers):
            w: dict[str, Any] = {}
            for name in LINEAR_LAYERS:
                w[name] = np.asarray(arrays[f"layer{i}.{name}"])
                w[name + "_b"] = np.asarray(arrays[f"layer{i}.{name}_b"])
            for name in NORM_LAYERS:
                w[name] = (
                    np.asarray(arrays[f"layer{i}.{name}.gamma"]),
                    np.asarray(arrays[f"layer{i}.{name}.beta"]),
                )
            prefix.layers.append(w)
        prefix.d_model = prefix.positions.shape[1]
        return prefix

    def adapted(self, deltas: Mapping[str, np.ndarray]) -> EncoderPrefix:
        """A copy with a fine-tuned head's changes: weight updates added, norms replaced.

        ``deltas`` maps CTranslate2 variable names to updates (see :func:`adapter_deltas`).
        """
        twin = copy.copy(self)
        twin.layers = []
        for i, layer in enumerate(self.layers):
            w = dict(layer)
            for name, source in LINEAR_LAYERS.items():
                delta = deltas.get(f"encoder/layer_{i}/{source}/weight")
                if delta is not None:
                    w[name] = (w[name] + delta.T).astype(np.float32)
            for name, source in NORM_LAYERS.items():
                gamma = deltas.get(f"encoder/layer_{i}/{source}/gamma")
                beta = deltas.get(f"encoder/layer_{i}/{source}/beta")
                if gamma is not None and beta is not None:
                    w[name] = (gamma, beta)
            twin.layers.append(w)
        return twin

    def _attention(self, x: np.ndarray, w: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        batch, n, d = x.shape
        head_dim = d // self.n_heads
        qkv = x @ w["qkv"] + w["qkv_b"]  # (batch, n, 3d); CT2 stores the key bias as zeros
        q, k, v = (
            qkv[..., i * d : (i + 1) * d]
            .reshape(batch, n, self.n_heads, head_dim)
            .transpose(0, 2, 1, 3)
            for i in range(3)
        )
        scores = (q / sqrt(head_dim)) @ k.transpose(0, 1, 3, 2)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        weights = scores / scores.sum(-1, keepdims=True)
        mixed = (weights @ v).transpose(0, 2, 1, 3).reshape(batch, n, d)
        return mixed @ w["out"] + w["out_b"], weights.mean(1)

    def __call__(
        self, mel: np.ndarray, n_layers: int | None = None, threads: int | None = 1
    ) -> PrefixOutput:
        """Run on log-mel ``(batch, n_mels, frames)`` (or ``(n_mels, frames)``), frames ≤ 3000.

        ``threads`` caps the BLAS threads for the call (``None``: BLAS's own default). One
        thread is the default: beside the pipeline's CTranslate2 threads, and on a shared
        machine, a multi-threaded OpenBLAS spins and is up to several times slower (measured:
        2.4 s against 4.1 s for the 15 reference utterances' segments).
        """
        from threadpoolctl import threadpool_limits

        with threadpool_limits(threads, user_api="blas"):
            return self._forward(mel, n_layers)

    def _forward(self, mel: np.ndarray, n_layers: int | None) -> PrefixOutput:
        x = np.asarray(mel, dtype=np.float32)
        x = x[None] if x.ndim == 2 else x
        for (weight, bias), stride in zip(self.conv, (1, 2), strict=True):
            x = _gelu(_conv1d(x, weight, bias, stride))
        x = x.transpose(0, 2, 1) + self.positions[: x.shape[-1]]
        outputs, attention = [x], []
        for w in self.layers[: n_layers or len(self.layers)]:
            mixed, weights = self._attention(_layer_norm(x, *w["ln1"]), w)
            x = x + mixed
            hidden = _gelu(_layer_norm(x, *w["ln2"]) @ w["fc1"] + w["fc1_b"])
            x = (x + hidden @ w["fc2"] + w["fc2_b"]).astype(np.float32)
            outputs.append(x)
            attention.append(weights)
        return PrefixOutput(tuple(outputs), tuple(attention))


def adapter_deltas(arrays: Mapping[str, np.ndarray], alpha: float) -> dict[str, np.ndarray]:
    """CTranslate2 variable name → a fine-tuned emotion head's change to it.

    ``arrays`` hold the head's ``prefix.layers.N.NAME.PARAM`` arrays (from
    :class:`emotivoice.models.torch_prefix.TorchEncoderPrefix`): the LoRA factors ``a`` and
    ``b`` of each adapted linear layer, whose update is ``α / rank · b @ a``, and the tuned
    ``ln1``/``ln2`` norms (``weight``, ``bias``), which replace the pretrained ones.
    """
    out: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        parts = key.split(".")  # prefix, layers, N, name, param
        if len(parts) != 5 or parts[:2] != ["prefix", "layers"]:
            continue
        layer, name, param = int(parts[2]), parts[3], parts[4]
        base = f"encoder/layer_{layer}"
        if name in LINEAR_LAYERS and param == "b":
            a = np.asarray(arrays[f"prefix.layers.{layer}.{name}.a"], np.float32)
            update = np.asarray(value, np.float32) @ a * (alpha / a.shape[0])
            out[f"{base}/{LINEAR_LAYERS[name]}/weight"] = update
        elif name in NORM_LAYERS:
            field = "gamma" if param == "weight" else "beta"
            out[f"{base}/{NORM_LAYERS[name]}/{field}"] = np.asarray(value, np.float32)
    return out


_lock = threading.Lock()


@cache
def _load(model: str, n_layers: int) -> EncoderPrefix:
    from emotivoice.models.ct2_reader import read_ct2_model
    from emotivoice.models.registry import resolve_whisper_model

    variables = read_ct2_model(resolve_whisper_model(model)).variables
    return EncoderPrefix(variables, n_layers)


def load_encoder_prefix(model: str = "base", n_layers: int = 3) -> EncoderPrefix:
    """The first ``n_layers`` encoder layers of a Whisper model, loaded once per process."""
    with _lock:
        return _load(model, n_layers)


_CACHE_FORMAT = 1


def adapted_encoder_prefix(
    model: str, n_layers: int, adapters: Mapping[str, np.ndarray], alpha: float
) -> EncoderPrefix:
    """A head's encoder prefix: the first ``n_layers`` with its fine-tuning applied.

    Building it reads the whole Whisper ``model.bin``, rounds the layers to int8 and adds the
    LoRA updates: about 0.9 s, paid by every cold ``emotivoice analyze``. The result is kept in
    the model cache (``prefix-<key>.npz``, about 50 MB for four base layers), keyed by the model
    file, the adapters and this format, and read back in a few tens of milliseconds; a cache
    that cannot be written or read is rebuilt silently.

    Args:
        model: Whisper model name or directory.
        n_layers: encoder layers to run.
        adapters: the head's ``prefix.layers.N.*`` arrays (see :func:`adapter_deltas`).
        alpha: the head's LoRA scale.
    """
    import hashlib
    import os
    import tempfile

    from emotivoice.models.registry import cache_dir, resolve_whisper_model

    source = resolve_whisper_model(model) / "model.bin"
    stat = source.stat()
    digest = hashlib.sha256(
        f"{_CACHE_FORMAT}|{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{n_layers}|{alpha}".encode()
    )
    for key in sorted(adapters):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(adapters[key]).tobytes())
    path = cache_dir() / f"prefix-{digest.hexdigest()[:24]}.npz"
    try:
        with np.load(path) as arrays:
            return EncoderPrefix.from_arrays(dict(arrays))
    except (OSError, ValueError, KeyError):
        pass
    prefix = load_encoder_prefix(model, n_layers)
    deltas = adapter_deltas(adapters, alpha)
    prefix = prefix.adapted(deltas) if deltas else prefix
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as tmp:
            np.savez(tmp, **prefix.to_arrays())  # type: ignore[arg-type]  # numpy stub: kwargs
        os.replace(tmp.name, path)
    except OSError as error:
        logging.getLogger(__name__).debug("Encoder prefix not cached: %s", error)
    return prefix
