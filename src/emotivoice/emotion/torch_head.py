"""The emotion head as a PyTorch module: what the recipe trains and what gradient explanations
run (its numpy twin for inference is :class:`emotivoice.emotion.head.EmotionHead`)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from emotivoice.emotion.labels import BASE_EMOTIONS


@dataclass(frozen=True)
class HeadArchitecture:
    """The shape of a head module, as the recipe's ``TrainConfig`` sets it and a head file's
    metadata records it (see :class:`emotivoice.training.config.TrainConfig` for each field).
    The defaults are the shipped head's."""

    tap: str = "prefix4"
    pooling: str = "mean_std"
    layer_norm: bool = False
    batch_norm: bool = True
    attention_dim: int = 128
    hidden_dim: int = 0
    dropout: float = 0.3
    adapter_rank: int = 16
    adapter_alpha: float = 16.0
    adapter_norms: bool = True

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | Any) -> HeadArchitecture:
        """The architecture fields of a config object or of a head file's stored config."""
        fields = dataclasses.fields(cls)
        if isinstance(config, Mapping):  # an older head file may lack later fields
            return cls(**{f.name: config.get(f.name, f.default) for f in fields})
        return cls(**{f.name: getattr(config, f.name) for f in fields})


@functools.lru_cache(maxsize=2)
def encoder_variables(model: str = "base") -> Mapping[str, Any]:
    """The encoder's CTranslate2 variables of a Whisper model (what a fine-tuned prefix starts
    from), read once per process; treat them as read-only."""
    from emotivoice.models.ct2_reader import read_ct2_model
    from emotivoice.models.registry import resolve_whisper_model

    variables = read_ct2_model(resolve_whisper_model(model)).variables
    return {k: v for k, v in variables.items() if k.startswith("encoder/")}


def head_module(
    d_model: int, config: HeadArchitecture, variables: Mapping[str, Any] | None = None
) -> Any:
    """The head as a torch module over states of width ``d_model``.

    Given the encoder's ``variables``, the module starts with the encoder prefix of the head's
    tap (:class:`~emotivoice.models.torch_prefix.TorchEncoderPrefix`, with LoRA adapters of
    ``config.adapter_rank``) and reads log-mel frames ``(batch, frames, n_mels)`` with a frame
    mask instead of states.
    """
    import torch
    from torch import nn

    from emotivoice.emotion.head import prefix_layers

    layers = prefix_layers(config.tap)
    prefix = None
    if variables is not None:
        from emotivoice.models.torch_prefix import TorchEncoderPrefix

        prefix = TorchEncoderPrefix(
            variables,
            max(layers),
            config.adapter_rank,
            config.adapter_alpha,
            config.adapter_norms and config.adapter_rank > 0,
        )
        d_model = prefix.d_model * len(layers)

    class AttentiveStatsHead(nn.Module):  # mirrored in numpy by emotion.head.EmotionHead
        def __init__(self) -> None:
            super().__init__()
            self.prefix = prefix
            self.norm = nn.LayerNorm(d_model)
            self.attention = nn.Linear(d_model, config.attention_dim)
            self.score = nn.Linear(config.attention_dim, 1)
            self.hidden = nn.Linear(2 * d_model, max(config.hidden_dim, 1))
            self.out = nn.Linear(config.hidden_dim or 2 * d_model, len(BASE_EMOTIONS))
            self.dropout = nn.Dropout(config.dropout)
            self.standardise = nn.BatchNorm1d(2 * d_model, affine=False)

        def forward(
            self,
            x: torch.Tensor,
            mask: torch.Tensor,
            mix: tuple[torch.Tensor, float] | None = None,
        ) -> torch.Tensor:
            """Logits; ``mix`` ``(partners, λ)`` mixes each example's pooled statistics with
            its partner's (training only)."""
            if self.prefix is not None:  # log-mel frames → the tapped layers' states
                mask = mask[:, ::2]
                taps = self.prefix(x.transpose(1, 2), mask)
                x = torch.cat([taps[n] for n in layers], dim=-1).float()
            h = self.norm(x) if config.layer_norm else x
            if config.pooling == "attentive":
                e = self.score(torch.tanh(self.attention(h))).squeeze(-1)
            else:
                e = torch.zeros(mask.shape, device=x.device)
            w = torch.softmax(e.masked_fill(~mask, -1e4), dim=-1).unsqueeze(-1)
            mean = (w * h).sum(1)
            std = ((w * h * h).sum(1) - mean**2).clamp_min(1e-6).sqrt()
            z = torch.cat([mean, std], dim=-1)
            z = self.standardise(z) if config.batch_norm else z
            if mix is not None:
                z = mix[1] * z + (1 - mix[1]) * z[mix[0]]
            z = self.dropout(z)
            if config.hidden_dim:
                z = self.dropout(torch.nn.functional.gelu(self.hidden(z)))
            return self.out(z)

    return AttentiveStatsHead()


def state_arrays(module: Any) -> dict[str, np.ndarray]:
    """The trained arrays of a head module (the frozen encoder weights are not among them)."""
    return {k: v.detach().float().cpu().numpy() for k, v in module.state_dict().items()}


def module_from_arrays(
    arrays: Mapping[str, np.ndarray],
    config: HeadArchitecture,
    d_model: int,
    variables: Mapping[str, Any] | None = None,
    strict: bool = True,
) -> Any:
    """The head module (eval mode, on the CPU) holding exported ``arrays``, with the LoRA rank
    they carry: a soup's stacked factors make a rank ``soup·r`` adapter of the same α (see
    :func:`emotivoice.training.fit.soup_arrays`)."""
    import torch

    ranks = {
        np.shape(v)[0] for k, v in arrays.items() if k.startswith("prefix.") and k.endswith(".a")
    }
    if ranks:
        config = dataclasses.replace(config, adapter_rank=max(ranks))
    module = head_module(d_model, config, variables)
    state = {k: torch.from_numpy(np.asarray(v)) for k, v in arrays.items()}
    module.load_state_dict(state, strict=strict)
    return module.eval()
