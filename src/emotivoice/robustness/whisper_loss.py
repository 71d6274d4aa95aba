"""The attacked model's side: targets as Whisper tokens, batched teacher-forced losses.

Every attack step runs one teacher-forced forward pass: the log-mel of each (perturbed)
utterance as the fast runtime computes it (``pad="features"``: 160 samples of padding, zero
feature frames up to 30 s), the prompt ``<|startoftranscript|> <|en|> <|transcribe|>
<|notimestamps|>`` (English-only models: ``<|startoftranscript|> <|notimestamps|>``), then the
target tokens, predicting the target tokens and ``<|endoftext|>``.

The same pass also tells whether greedy decoding already yields the target: greedy decoding
produces the target exactly when, with the decoder's token suppression applied, the arg-max at
every teacher-forced position is the next target token. No separate decode is needed to check
success, which keeps the per-step cost at one forward and one backward pass.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from emotivoice.errors import InvalidTargetError
from emotivoice.metrics import normalize_text

if TYPE_CHECKING:
    import torch

    from emotivoice.models.torch_whisper import TorchWhisper

__all__ = ["TeacherForced", "TokenBatch", "target_token_ids", "validate_target"]

_ALLOWED_CATEGORIES = ("L", "N", "P", "Zs")  # letters, digits, punctuation, spaces
_MAX_TARGET_TOKENS = 200  # the decoder holds 448 positions; leave room for the prompt


def validate_target(text: str) -> str:
    """The target stripped, or :class:`InvalidTargetError` saying what is wrong with it."""
    stripped = " ".join(text.split())
    if not stripped:
        raise InvalidTargetError("The target transcript is empty; give the phrase to inject.")
    bad = sorted(
        {c for c in stripped if not unicodedata.category(c).startswith(_ALLOWED_CATEGORIES)}
    )
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise InvalidTargetError(
            f"The target {stripped!r} contains characters Whisper does not transcribe ({shown}); "
            "use letters, digits, spaces and punctuation only."
        )
    if not any(c.isalnum() for c in normalize_text(stripped)):
        raise InvalidTargetError(
            f"The target {stripped!r} has no words once normalised; success could not be judged."
        )
    return stripped


def _as_spoken(text: str) -> str:
    """Sentence case for all-capitals targets (LibriSpeech style), as Whisper would write it."""
    if text.isupper():
        text = text.lower()
        text = text[0].upper() + text[1:]
    return text


def target_token_ids(model: TorchWhisper, text: str) -> tuple[int, ...]:
    """Token ids Whisper should emit for ``text`` (validated; end-of-text not included)."""
    spoken = _as_spoken(validate_target(text))
    ids = tuple(int(i) for i in model.tokenizer.encode(" " + spoken, add_special_tokens=False).ids)
    if len(ids) > _MAX_TARGET_TOKENS:
        raise InvalidTargetError(
            f"The target is {len(ids)} tokens long; at most {_MAX_TARGET_TOKENS} fit one window."
        )
    suppressed = set(model.suppress_ids)
    blocked = [model.tokenizer.decode([i]) for i in ids if i in suppressed]
    if blocked:
        raise InvalidTargetError(
            f"Whisper never emits {blocked!r} (suppressed tokens); rephrase the target."
        )
    return ids


@dataclass(frozen=True, eq=False)
class TokenBatch:
    """Decoder inputs and labels for a batch of token sequences, padded on the right."""

    decoder_input_ids: torch.Tensor  # (batch, prompt + longest)
    labels: torch.Tensor  # (batch, longest + 1), -100 where padded
    prompt_length: int

    @property
    def valid(self) -> torch.Tensor:
        return self.labels >= 0


def token_batch(
    model: TorchWhisper, sequences: Sequence[Sequence[int]], language: str
) -> TokenBatch:
    """Prompt + tokens as decoder input, tokens + end-of-text as labels."""
    import torch

    prompt = model.prompt(language)
    eot = model.token_id("<|endoftext|>")
    longest = max(len(s) for s in sequences)
    inputs = torch.full((len(sequences), len(prompt) + longest), eot, dtype=torch.long)
    labels = torch.full((len(sequences), longest + 1), -100, dtype=torch.long)
    for row, seq in enumerate(sequences):
        inputs[row, : len(prompt) + len(seq)] = torch.tensor([*prompt, *seq])
        labels[row, : len(seq) + 1] = torch.tensor([*seq, eot])
    return TokenBatch(inputs.to(model.device), labels.to(model.device), len(prompt))


@dataclass(frozen=True, eq=False)
class TeacherForced:
    """Per-example results of one teacher-forced pass."""

    loss: torch.Tensor  # (batch,) summed cross-entropy of the labels
    matches: torch.Tensor  # (batch,) bool: greedy decoding would yield exactly the labels


class TeacherForcing:
    """Runs the teacher-forced pass of a fixed batch of token sequences over changing audio."""

    def __init__(self, model: TorchWhisper, tokens: TokenBatch) -> None:
        import torch

        self.model = model
        self.tokens = tokens
        vocab = model.config.vocab_size
        bias = torch.zeros(vocab, device=model.device)
        timestamp_begin = model.token_id("<|notimestamps|>") + 1
        bias[list(model.suppress_ids)] = -torch.inf
        bias[timestamp_begin - 1 :] = -torch.inf
        first = bias.clone()
        blank = model.tokenizer.encode(" ", add_special_tokens=False).ids
        first[[*blank, model.token_id("<|endoftext|>"), *model.suppress_ids_begin]] = -torch.inf
        self._bias = bias
        self._first_bias = first

    def features(self, audio: Sequence[torch.Tensor]) -> torch.Tensor:
        """Log-mel features (batch, 80, 3000) of utterances of different lengths."""
        import torch

        return torch.cat([self.model.log_mel(a, pad="features") for a in audio])

    def __call__(self, features: torch.Tensor) -> TeacherForced:
        import torch

        tokens = self.tokens
        repeat = features.shape[0] // tokens.labels.shape[0]  # several rooms per example
        inputs = tokens.decoder_input_ids.repeat_interleave(repeat, 0)
        labels = tokens.labels.repeat_interleave(repeat, 0)
        logits = self.model.model(input_features=features, decoder_input_ids=inputs).logits
        start = tokens.prompt_length - 1
        logits = logits[:, start : start + labels.shape[1]].float()
        bias = self._bias.expand_as(logits).clone()
        bias[:, 0] = self._first_bias
        logits = logits + bias
        valid = labels >= 0
        log_probs = logits.log_softmax(-1)
        picked = log_probs.gather(-1, labels.clamp(min=0)[..., None])[..., 0]
        loss = -torch.where(valid, picked, torch.zeros_like(picked)).sum(-1)
        matches = ((logits.argmax(-1) == labels) | ~valid).all(-1)
        loss = loss.reshape(-1, repeat).mean(-1)
        matches = matches.reshape(-1, repeat).all(-1)
        return TeacherForced(loss=loss, matches=matches)


def greedy_transcripts(
    model: TorchWhisper, audio: Sequence[torch.Tensor], language: str
) -> list[str]:
    """Greedy transcripts of utterances (the fast runtime's features), one at a time."""
    import torch

    texts = []
    with torch.no_grad():
        for samples in audio:
            states = model.encode(model.log_mel(samples, pad="features"))
            texts.append(model.greedy_decode(states, language).text)
    return texts
