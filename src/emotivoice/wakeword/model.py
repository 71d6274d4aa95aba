"""The student: a small streaming network on log-mel frames, in PyTorch (training only).

Depthwise-separable 1-D convolutions over time (mel bands as channels): a strided stem, six
residual blocks with growing dilation, then max- and mean-pooling over the window and one
logit. About 43 k parameters and 2 M multiply-adds per 1.5 s window; run every 80 ms that is a
small fraction of one core. Inference uses the exported ONNX file, never this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emotivoice.extras import import_extra
from emotivoice.wakeword.features import N_MELS

__all__ = ["ModelShape", "build_model", "count_parameters"]

MAX_PARAMETERS = 250_000


@dataclass(frozen=True)
class ModelShape:
    """The network's size.

    Attributes:
        channels: width of every block.
        kernel: temporal kernel of the depthwise convolutions.
        dilations: one residual block per entry (its dilation).
        stem_stride: frames between the stem's outputs.
        stride_block: index of the block that halves the time axis.
        dropout: before the output layer.
    """

    channels: int = 64
    kernel: int = 9
    dilations: tuple[int, ...] = (1, 2, 1, 2, 4, 8)
    stem_stride: int = 3
    stride_block: int = 2
    dropout: float = 0.1


def build_model(shape: ModelShape | None = None) -> Any:
    """The untrained :class:`torch.nn.Module` of ``shape``: ``(batch, frames, N_MELS)`` log-mel
    in, ``(batch,)`` logits out. Needs the ``torch`` extra."""
    torch = import_extra("torch", "torch", "Training a wake-word model")
    nn = torch.nn
    size = shape or ModelShape()

    class Block(nn.Module):  # type: ignore[name-defined]
        def __init__(self, channels: int, kernel: int, dilation: int, stride: int) -> None:
            super().__init__()
            pad = (kernel - 1) * dilation // 2
            self.depthwise = nn.Conv1d(
                channels, channels, kernel, stride, pad, dilation, groups=channels, bias=False
            )
            self.norm1 = nn.BatchNorm1d(channels)
            self.pointwise = nn.Conv1d(channels, channels, 1, bias=False)
            self.norm2 = nn.BatchNorm1d(channels)
            self.stride = stride

        def forward(self, x: Any) -> Any:
            y = torch.relu(self.norm1(self.depthwise(x)))
            y = self.norm2(self.pointwise(y))
            skip = x if self.stride == 1 else x[:, :, :: self.stride][:, :, : y.shape[2]]
            return torch.relu(y + skip)

    class WakeNet(nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            c = size.channels
            self.stem = nn.Sequential(
                nn.Conv1d(N_MELS, c, 5, size.stem_stride, 2, bias=False),
                nn.BatchNorm1d(c),
                nn.ReLU(),
            )
            self.blocks = nn.Sequential(
                *[
                    Block(c, size.kernel, d, 2 if i == size.stride_block else 1)
                    for i, d in enumerate(size.dilations)
                ]
            )
            self.dropout = nn.Dropout(size.dropout)
            self.out = nn.Linear(2 * c, 1)

        def forward(self, mel: Any) -> Any:
            x = self.blocks(self.stem(mel.transpose(1, 2)))
            pooled = torch.cat([x.amax(dim=2), x.mean(dim=2)], dim=1)
            return self.out(self.dropout(pooled)).squeeze(1)

    return WakeNet()


def count_parameters(model: Any) -> int:
    """Trainable parameters of ``model``."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))
