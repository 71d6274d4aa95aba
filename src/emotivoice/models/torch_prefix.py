"""PyTorch twin of :mod:`emotivoice.models.encoder_prefix`, with LoRA adapters to fine-tune it.

The emotion recipe fine-tunes the first layers of the Whisper encoder together with its head:
the pretrained weights stay frozen (rounded to int8 per row, as the numpy runtime and
CTranslate2 use them) and each linear layer learns a low-rank update ``ΔW = (α / r) · B A``
(LoRA, Hu et al. 2021); the layer norms may be tuned too. The head file then carries only the
small ``A``, ``B`` and norm arrays (``prefix.layers.N.*``), and the numpy runtime adds ``ΔW``
to its weights once at load.

Batches of segments of different lengths are zero-padded: padded positions are masked out of
the attention keys, and padding the log-mel with zeros equals the convolutions' own zero
padding, so every real position gets what the segment alone would get.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from emotivoice.models.encoder_prefix import LINEAR_LAYERS, NORM_LAYERS, EncoderPrefix, _int8_rows


class LoraLinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update (``rank`` 0: none)."""

    weight: torch.Tensor
    bias: torch.Tensor

    def __init__(self, weight: np.ndarray, bias: np.ndarray, rank: int, alpha: float) -> None:
        super().__init__()
        # frozen weights are rebuilt from the Whisper model, not saved with the head
        self.register_buffer("weight", torch.from_numpy(weight.copy()), persistent=False)
        self.register_buffer("bias", torch.from_numpy(bias.copy()), persistent=False)
        self.scale = alpha / rank if rank else 0.0
        if rank:
            out_dim, in_dim = weight.shape
            self.a = nn.Parameter(torch.randn(rank, in_dim) / math.sqrt(in_dim))
            self.b = nn.Parameter(torch.zeros(out_dim, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x @ self.weight.T + self.bias
        if self.scale:
            y = y + (x @ self.a.T) @ self.b.T * self.scale
        return y


def _layer_variable(get: Callable[[str], np.ndarray], layer: int, name: str) -> np.ndarray:
    return get(f"layer_{layer}/{name}")


class _Layer(nn.Module):
    """One pre-norm encoder layer: self-attention, then a GELU MLP."""

    def __init__(
        self,
        get: Callable[[str], np.ndarray],
        rank: int,
        alpha: float,
        train_norms: bool,
    ) -> None:
        super().__init__()

        def linear(name: str) -> LoraLinear:
            source = LINEAR_LAYERS[name]
            return LoraLinear(
                _int8_rows(get(f"{source}/weight")), get(f"{source}/bias"), rank, alpha
            )

        def norm(name: str) -> nn.LayerNorm:
            gamma, beta = get(f"{NORM_LAYERS[name]}/gamma"), get(f"{NORM_LAYERS[name]}/beta")
            layer = nn.LayerNorm(len(gamma))
            with torch.no_grad():
                layer.weight.copy_(torch.from_numpy(gamma))
                layer.bias.copy_(torch.from_numpy(beta))
            layer.requires_grad_(train_norms)
            return layer

        self.qkv, self.out, self.fc1, self.fc2 = (linear(n) for n in ("qkv", "out", "fc1", "fc2"))
        self.ln1, self.ln2 = norm("ln1"), norm("ln2")

    def forward(self, x: torch.Tensor, n_heads: int, keys: torch.Tensor | None) -> torch.Tensor:
        batch, n, d = x.shape
        q, k, v = (
            self.qkv(self.ln1(x)).view(batch, n, 3, n_heads, d // n_heads).permute(2, 0, 3, 1, 4)
        )
        mixed = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=keys)
        x = x + self.out(mixed.transpose(1, 2).reshape(batch, n, d))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.ln2(x))))


class TorchEncoderPrefix(nn.Module):
    """The convolutional front end and the first ``n_layers`` Whisper encoder layers."""

    conv1_weight: torch.Tensor
    conv1_bias: torch.Tensor
    conv2_weight: torch.Tensor
    conv2_bias: torch.Tensor
    positions: torch.Tensor

    def __init__(
        self,
        variables: Mapping[str, Any],
        n_layers: int,
        rank: int = 0,
        alpha: float = 16.0,
        train_norms: bool = False,
    ) -> None:
        super().__init__()

        def get(name: str) -> np.ndarray:
            return np.asarray(variables[f"encoder/{name}"], dtype=np.float32)

        self.n_heads = int(np.asarray(variables["encoder/num_heads"]))
        # frozen weights are rebuilt from the Whisper model, not saved with the head
        for name in ("conv1/weight", "conv1/bias", "conv2/weight", "conv2/bias"):
            tensor = torch.from_numpy(get(name))
            self.register_buffer(name.replace("/", "_"), tensor, persistent=False)
        positions = torch.from_numpy(get("position_encodings/encodings"))
        self.register_buffer("positions", positions, persistent=False)
        self.layers = nn.ModuleList(
            _Layer(functools.partial(_layer_variable, get, i), rank, alpha, train_norms)
            for i in range(n_layers)
        )

    @classmethod
    def from_prefix(cls, prefix: EncoderPrefix, n_layers: int | None = None) -> TorchEncoderPrefix:
        """The same network as a numpy :class:`EncoderPrefix`, with its exact weights (a
        fine-tuned head's adapted ones included): for fast batched inference (explanations)."""
        n_layers = n_layers or len(prefix.layers)
        variables: dict[str, Any] = {"encoder/num_heads": np.asarray(prefix.n_heads)}
        for conv, (weight, bias) in zip(("conv1", "conv2"), prefix.conv, strict=True):
            variables[f"encoder/{conv}/weight"], variables[f"encoder/{conv}/bias"] = weight, bias
        variables["encoder/position_encodings/encodings"] = prefix.positions
        for i, w in enumerate(prefix.layers[:n_layers]):
            for name, source in LINEAR_LAYERS.items():
                variables[f"encoder/layer_{i}/{source}/weight"] = w[name].T
                variables[f"encoder/layer_{i}/{source}/bias"] = w[name + "_b"]
            for name, source in NORM_LAYERS.items():
                gamma, beta = w[name]
                variables[f"encoder/layer_{i}/{source}/gamma"] = gamma
                variables[f"encoder/layer_{i}/{source}/beta"] = beta
        module = cls(variables, n_layers)
        with torch.no_grad():  # the constructor rounds to int8; adapted weights are not
            for layer, w in zip(module.layers, prefix.layers, strict=False):
                for name in LINEAR_LAYERS:
                    getattr(layer, name).weight.copy_(
                        torch.from_numpy(np.ascontiguousarray(w[name].T))
                    )
        return module.eval()

    @property
    def d_model(self) -> int:
        return int(self.positions.shape[1])

    def forward(self, mel: torch.Tensor, mask: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Outputs of the embedding (0) and each layer for log-mel ``(batch, n_mels, frames)``.

        ``mask`` ``(batch, frames // 2)``: the positions of each segment (``None``: all).
        """
        gelu = nn.functional.gelu
        x = gelu(nn.functional.conv1d(mel, self.conv1_weight, self.conv1_bias, padding=1))
        x = gelu(nn.functional.conv1d(x, self.conv2_weight, self.conv2_bias, stride=2, padding=1))
        x = x.permute(0, 2, 1) + self.positions[: x.shape[-1]]
        keys = None if mask is None else mask[:, None, None, :]
        outputs = [x]
        for layer in self.layers:
            x = layer(x, self.n_heads, keys)
            outputs.append(x)
        return outputs
