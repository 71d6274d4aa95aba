"""The recipe's inputs: speech-cropped clips and the encoder states (or log-mel frames) a head
learns from, for each clip and its augmented copies."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emotivoice.audio import SAMPLE_RATE
from emotivoice.emotion.labels import BASE_EMOTIONS
from emotivoice.errors import InvalidConfigError
from emotivoice.training.augment import augment
from emotivoice.training.config import TrainConfig
from emotivoice.training.corpora import LabeledClip

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Clip:
    """A speech-cropped 16 kHz waveform with its label."""

    samples: np.ndarray
    emotion: str
    speaker: str
    corpus: str


@dataclass
class StateSet:
    """The head's inputs for clips (and their augmented copies), with labels and groups.

    ``states`` are encoder states ``(positions, features)``, or, to fine-tune the encoder
    prefix (``TrainConfig.adapter_rank``), the clips' own log-mel frames ``(frames, n_mels)``;
    then ``variables`` holds the Whisper encoder's CTranslate2 variables that the prefix starts
    from.
    """

    states: list[np.ndarray]
    labels: np.ndarray
    speakers: np.ndarray
    corpora: np.ndarray
    augmented: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    variables: Mapping[str, Any] | None = None

    def select(self, mask: np.ndarray) -> StateSet:
        index = np.flatnonzero(mask)
        return StateSet(
            [self.states[i] for i in index],
            self.labels[index],
            self.speakers[index],
            self.corpora[index],
            self.augmented[index],
            self.variables,
        )


def crop_to_speech(samples: np.ndarray) -> np.ndarray:
    """The span from the first to the last speech the pipeline's VAD finds (with its padding)."""
    from emotivoice.segmentation import VadOptions, detect_speech

    spans = detect_speech(samples, VadOptions())
    return samples[spans[0].start_sample : spans[-1].end_sample] if spans else samples


def prepare_clips(labeled: Sequence[LabeledClip]) -> list[Clip]:
    """Decode, resample and speech-crop labelled recordings (unreadable ones are skipped)."""
    from emotivoice.audio import load_audio
    from emotivoice.errors import AudioError

    clips = []
    for item in labeled:
        try:
            samples = crop_to_speech(load_audio(item.path).samples)
        except AudioError as error:
            logger.warning("Skipping %s: %s", item.path, error.message)
            continue
        clips.append(Clip(samples, item.emotion, item.speaker, item.corpus))
    return clips


def encoder_taps(encoder: Any, mel: Any) -> list[Any]:
    """Input embedding, each layer's output and the final normalised output of the encoder.

    Works on any number of mel frames (no 30 s check), so that a prefix of the encoder can run
    on a segment's own frames.
    """
    import torch

    x = torch.nn.functional.gelu(encoder.conv1(mel))
    x = torch.nn.functional.gelu(encoder.conv2(x)).permute(0, 2, 1)
    x = x + encoder.embed_positions.weight[: x.shape[1]]
    taps = [x]
    for layer in encoder.layers:
        x = layer(x, None)
        x = x[0] if isinstance(x, tuple) else x
        taps.append(x)
    taps.append(encoder.layer_norm(x))
    return taps


def extract_states(
    encoder: Any,
    filters: np.ndarray,
    waves: Sequence[np.ndarray],
    device: str = "cpu",
    batch_size: int = 16,
    taps: Sequence[str] = ("final",),
) -> dict[str, list[np.ndarray]]:
    """Encoder states of each wave (float16, speech positions), for each requested tap.

    ``final``: what the pipeline computes (faster-whisper padding, 30 s window, last layer);
    ``layerN``: output of layer N in that same pass; ``prefixN``: output of layer N when the
    encoder runs on the segment's own frames only (no 30 s padding); ``prefixA+B``: the outputs
    of layers A and B of that pass side by side (positions × 2·d_model); ``mel``: the log-mel
    frames of the speech positions themselves, ``(2·positions, n_mels)``, what a fine-tuned
    prefix reads.
    """
    import torch

    from emotivoice.models.torch_whisper import log_mel, speech_positions

    bank = torch.from_numpy(filters).to(device)
    out: dict[str, list[np.ndarray]] = {tap: [] for tap in taps}
    use_half = device.startswith("cuda")
    for start in range(0, len(waves), batch_size):
        chunk = [w[: 30 * SAMPLE_RATE] for w in waves[start : start + batch_size]]
        keeps = [speech_positions(len(w)) for w in chunk]
        with torch.no_grad():  # the log-mel in float32, as the pipeline computes it
            mels = torch.cat([log_mel(torch.from_numpy(w), bank, "features") for w in chunk])
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=use_half):
            if any(not t.startswith(("prefix", "mel")) for t in taps):
                padded = encoder_taps(encoder, mels)
            for tap in taps:
                for i, keep in enumerate(keeps):
                    if tap == "mel":
                        state = mels[i, :, : 2 * keep].T
                    elif tap == "final":
                        state = padded[-1][i, :keep]
                    elif tap.startswith("layer"):
                        state = padded[int(tap[5:])][i, :keep]
                    else:
                        own = encoder_taps(encoder, mels[i : i + 1, :, : 2 * keep])
                        state = torch.cat([own[int(n)][0] for n in tap[6:].split("+")], -1)
                    out[tap].append(state.float().cpu().numpy().astype(np.float16))
    return out


def build_state_set(
    encoder: Any,
    filters: np.ndarray,
    clips: Sequence[Clip],
    config: TrainConfig,
    device: str = "cpu",
    variables: Mapping[str, Any] | None = None,
) -> StateSet:
    """The head's inputs for every clip and ``config.augment_copies`` copies of it.

    With a frozen encoder, its states (``config.tap``); to fine-tune the prefix
    (``config.adapter_rank``), the clips' log-mel frames and the encoder's CTranslate2
    ``variables`` (:func:`encoder_variables`; ``encoder`` is then unused).
    """
    if not config.adapter_rank:
        return build_state_sets(encoder, filters, clips, config, device, (config.tap,))[config.tap]
    if variables is None:
        raise InvalidConfigError("Fine-tuning the encoder prefix needs its variables")
    data = build_state_sets(encoder, filters, clips, config, device, ("mel",))["mel"]
    return dataclasses.replace(data, variables=variables)


def build_state_sets(
    encoder: Any,
    filters: np.ndarray,
    clips: Sequence[Clip],
    config: TrainConfig,
    device: str,
    taps: Sequence[str],
) -> dict[str, StateSet]:
    """States of every clip and its augmented copies for several taps from one encoder pass."""
    rng = np.random.default_rng(config.seed)
    waves, labels, speakers, corpora, augmented = [], [], [], [], []
    for clip in clips:
        copies = [clip.samples] + [augment(clip.samples, rng) for _ in range(config.augment_copies)]
        for i, wave in enumerate(copies):
            waves.append(wave)
            labels.append(BASE_EMOTIONS.index(clip.emotion))
            speakers.append(clip.speaker)
            corpora.append(clip.corpus)
            augmented.append(i > 0)
    states = extract_states(encoder, filters, waves, device, taps=taps)
    meta = (np.array(labels), np.array(speakers), np.array(corpora), np.array(augmented))
    return {tap: StateSet(states[tap], *meta) for tap in taps}
