"""Hyper-parameters of the emotion recipe: :class:`TrainConfig` (its defaults made the
shipped model)."""

from __future__ import annotations

from dataclasses import dataclass

from emotivoice.emotion.torch_head import HeadArchitecture
from emotivoice.errors import InvalidConfigError

_ARCHITECTURE = HeadArchitecture()  # the shipped head's shape (the defaults below)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of the recipe (the defaults made the shipped model)."""

    epochs: int = 10
    # More epochs than ``epochs`` when a small training set would get fewer optimiser steps than
    # this (0: off). One fit on RAVDESS alone (1,038 clips) takes 33 steps an epoch, 330 in all:
    # at 40 epochs (1,320 steps) six of six seeds scored higher on nEMO, and so did both soups
    # of three (model card). The recipe's calibration and final fits make more steps already.
    min_steps: int = 1300
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    dropout: float = _ARCHITECTURE.dropout
    label_smoothing: float = 0.1
    attention_dim: int = _ARCHITECTURE.attention_dim
    hidden_dim: int = _ARCHITECTURE.hidden_dim  # 0: linear on the pooled statistics
    augment_copies: int = 3
    pooling: str = _ARCHITECTURE.pooling  # or "attentive" (attentive statistics pooling)
    layer_norm: bool = _ARCHITECTURE.layer_norm
    batch_norm: bool = (
        _ARCHITECTURE.batch_norm
    )  # standardise the pooled statistics (running mean/var)
    train_on_augmented: bool = True
    seed: int = 0
    # A uniform weight-averaged "soup" of this many fits (:func:`fit_head`): its members share
    # ``seed`` (augmented copies and initialisation) and differ in batch order, dropout and
    # masking; ``member`` numbers them (0 is the plain recipe's fit). Averaging the weights
    # helps as an ensemble of the members does, at one member's inference cost (model card).
    soup: int = 3
    member: int = 0
    # Which encoder states the head reads (see :func:`extract_states`): "prefix4" is layer 4 of
    # the encoder run on the segment's own frames; the early layers carry more emotion than the
    # final one across corpora (research/emotion_layer_study.py), and fine-tuning four layers
    # beat three (model card); "final" is the pipeline's own pass.
    tap: str = _ARCHITECTURE.tap
    # Fine-tuning of that encoder prefix with the head: LoRA rank of its linear layers (0 keeps
    # the encoder frozen and trains the head alone on precomputed states), LoRA scale α, the
    # adapters' learning rate, whether its layer norms are tuned too, and SpecAugment-style
    # masking of one mel band and one span of frames per training example.
    adapter_rank: int = _ARCHITECTURE.adapter_rank
    adapter_alpha: float = _ARCHITECTURE.adapter_alpha
    adapter_learning_rate: float = 1e-3
    adapter_norms: bool = _ARCHITECTURE.adapter_norms
    spec_augment: bool = True
    # Batches of similar lengths (less padding, faster on a GPU): each epoch's shuffled order is
    # cut into runs of this many batches, each run sorted by length; 0: plain shuffled batches.
    length_buckets: int = 16
    # Regularisers of the fine-tuned path, for recordings unlike the training corpora: a random
    # smooth equaliser of up to this many dB on each example's log-mel (microphone and room
    # colouring, :func:`channel_eq`; 0: off), and mixup of the pooled statistics of example
    # pairs with a Beta(α, α) weight (Zhang et al. 2018; α 0: off).
    channel_eq_db: float = 0.0
    mixup_alpha: float = 0.0

    @property
    def architecture(self) -> HeadArchitecture:
        """The shape of the head module these settings train."""
        return HeadArchitecture.from_config(self)

    def __post_init__(self) -> None:
        from emotivoice.emotion.head import prefix_layers

        if self.soup < 1:
            raise InvalidConfigError(f"soup is a number of fits (1 or more), not {self.soup}")
        if self.min_steps < 0:
            raise InvalidConfigError(
                f"min_steps is 0 (off) or a number of steps, not {self.min_steps}"
            )
        if self.adapter_rank and not prefix_layers(self.tap):
            raise InvalidConfigError(
                f"adapter_rank > 0 fine-tunes an encoder prefix: use a prefixN tap, not {self.tap}"
            )
