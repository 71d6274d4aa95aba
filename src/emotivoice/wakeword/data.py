"""``wakeword generate``: the training data of a phrase, made on this machine.

Positives are the phrase's spoken variants said by every offline voice at random rates and
pitches; negatives are confusable phrases, ordinary sentences said by the same voices, and real
speech from the shared data. Voices are split by speaker (the espeak-ng variant, the flite
voice): the voices of the test split never speak a training clip. Augmentation happens when
training windows are drawn (:mod:`emotivoice.wakeword.augment`).

The data set is a folder: ``clips.npz`` (the TTS audio, int16), ``clips.jsonl`` (one record per
clip), ``real_speech.json`` (the real recordings and their split) and ``data_card.json`` /
``data_card.md``. It is written to a temporary sibling and renamed into place, so a failed run
leaves nothing half-written.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import numpy as np

from emotivoice.audio import SAMPLE_RATE, load_audio
from emotivoice.errors import InvalidConfigError, InvalidPhraseError, NoTrainingDataError
from emotivoice.wakeword.corpora import SPLITS, RealSpeech, real_speech
from emotivoice.wakeword.files import atomic_folder
from emotivoice.wakeword.phrase import WakePhrase, confusable_phrases
from emotivoice.wakeword.tts import ENGINES, Voice, available_voices, synthesize

__all__ = [
    "DataCard",
    "GenerateOptions",
    "WakeDataset",
    "generate_dataset",
    "load_dataset",
]

logger = logging.getLogger(__name__)

Progress = Callable[[str, float], None]
KINDS = ("positive", "confusable", "sentence")
_TRIM_DB = 40.0  # silence below the peak by this much is trimmed from a clip's ends
_MARGIN_S = 0.05
_MAX_CLIP_S = 4.0
# Ordinary sentences (written for this project) said by the TTS voices as negatives.
SENTENCES = (
    "The weather is supposed to turn cold again by the weekend.",
    "Could you pass me the salt and the pepper, please?",
    "We parked the car behind the old library on Main Street.",
    "She said the meeting was moved to half past three.",
    "My brother never remembers where he left his keys.",
    "Turn left at the lights and keep going until the bridge.",
    "There are seven apples and two oranges in the basket.",
    "I think the train is running about ten minutes late.",
    "Harvest season keeps the farmers busy until November.",
    "Nobody answered the phone when I called this morning.",
    "Let's have dinner at the new place near the harbour.",
    "The children were playing football in the park all afternoon.",
    "Please remember to water the plants while I'm away.",
    "He has been working on that novel for nearly six years.",
    "A cup of tea would be lovely, thank you.",
    "The service was slow, but the food was worth the wait.",
    "Hey, how are you doing today?",
    "Jars of jam lined the shelves of the kitchen.",
    "Travis and Mavis arrived at the party together.",
    "Say hello to your parents for me.",
    "The museum is closed on Mondays and public holidays.",
    "I can't hear you over the noise of the traffic.",
    "Heavy rain is expected across the north tonight.",
    "Hey there, did you see the game last night?",
    "The invoice should arrive by the end of the month.",
    "Marvin fixed the heating before the winter came.",
    "What time does the pharmacy open tomorrow?",
    "They painted the fence a bright shade of green.",
    "Her voice carried all the way across the hall.",
    "Service announcements will follow after the news.",
)


@dataclass(frozen=True)
class GenerateOptions:
    """What ``generate`` makes.

    Attributes:
        positives: training positives (clips of the phrase); validation and test get
            ``val_positives`` and ``test_positives`` more, from their own voices.
        confusables: training clips of confusable phrases (val/test get a fifth as many each).
        sentences: training clips of ordinary sentences (val/test get a fifth as many each).
        val_positives: positives spoken by the validation voices.
        test_positives: positives spoken by the test voices.
        engines: the TTS engines to use (missing ones are skipped).
        rate: range of speaking rates (1.0: the voice's own).
        pitch: range of pitch factors.
        piper_share: the share of clips Piper speaks where installed (it is the slowest).
        val_speakers: share of the voices' speakers kept for validation.
        test_speakers: share kept for testing.
        seed: everything random follows from it.
        workers: TTS processes run at once.
    """

    positives: int = 3000
    confusables: int = 2400
    sentences: int = 600
    val_positives: int = 200
    test_positives: int = 400
    engines: tuple[str, ...] = ENGINES
    rate: tuple[float, float] = (0.75, 1.35)
    pitch: tuple[float, float] = (0.75, 1.3)
    piper_share: float = 0.15
    val_speakers: float = 0.1
    test_speakers: float = 0.15
    seed: int = 0
    workers: int = 2

    def __post_init__(self) -> None:
        if self.positives < 1:
            raise NoTrainingDataError("positives must be at least 1: training needs positives.")
        counts = (self.confusables, self.sentences, self.val_positives, self.test_positives)
        if min(counts) < 0:
            raise InvalidConfigError("Clip counts cannot be negative.")
        if not 0 <= self.piper_share <= 1 or not 0 < self.val_speakers + self.test_speakers < 1:
            raise InvalidConfigError("piper_share and the speaker shares must lie in [0, 1).")
        unknown = set(self.engines) - set(ENGINES)
        if unknown:
            raise InvalidConfigError(f"Unknown TTS engines {sorted(unknown)}; engines = {ENGINES}")
        if not (0.3 <= self.rate[0] <= self.rate[1] <= 3.0):
            raise InvalidConfigError("rate must be a range within [0.3, 3.0].")


@dataclass(frozen=True)
class Clip:
    """One TTS clip of a data set (its audio lives in ``clips.npz``)."""

    kind: str
    text: str
    voice: str
    speaker: str
    split: str
    rate: float
    pitch: float


@dataclass(frozen=True)
class DataCard:
    """What a data set holds: counts per source and split, voices, hours.

    Attributes:
        phrase: the wake phrase.
        clips: ``{split: {kind: count}}`` of the TTS clips.
        engines: ``{engine: clips}``.
        speakers: ``{split: [speaker, ...]}``: disjoint by construction.
        tts_hours: hours of TTS audio per split.
        real_speech_hours: hours of real speech per split.
        real_speech_clips: ``{split: {corpus: count}}``.
        confusable_phrases: the confusable texts used.
        options: the :class:`GenerateOptions` as a mapping.
    """

    phrase: str
    clips: dict[str, dict[str, int]]
    engines: dict[str, int]
    speakers: dict[str, list[str]]
    tts_hours: dict[str, float]
    real_speech_hours: dict[str, float]
    real_speech_clips: dict[str, dict[str, int]]
    confusable_phrases: list[str]
    options: dict[str, object] = field(default_factory=dict)

    def to_markdown(self) -> str:
        """The card as a short Markdown page."""
        lines = [
            f"# Data card: {self.phrase!r}",
            "",
            "| split | " + " | ".join(KINDS) + " | TTS h | real-speech h |",
        ]
        lines.append("| --- |" + " --- |" * (len(KINDS) + 2))
        for split in SPLITS:
            counts = " | ".join(str(self.clips.get(split, {}).get(k, 0)) for k in KINDS)
            lines.append(
                f"| {split} | {counts} | {self.tts_hours.get(split, 0):.3f} | "
                f"{self.real_speech_hours.get(split, 0):.3f} |"
            )
        lines += ["", "Engines: " + ", ".join(f"{k} {v}" for k, v in sorted(self.engines.items()))]
        for split in SPLITS:
            lines.append(
                f"\n{split} speakers ({len(self.speakers.get(split, []))}): "
                + ", ".join(self.speakers.get(split, []))
            )
        lines.append("\nReal speech: " + json.dumps(self.real_speech_clips))
        lines.append("\nConfusable phrases: " + ", ".join(self.confusable_phrases))
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class WakeDataset:
    """A generated data set in memory: the clips, their audio, the real recordings."""

    phrase: WakePhrase
    clips: tuple[Clip, ...]
    audio: tuple[np.ndarray, ...]
    real: tuple[RealSpeech, ...]
    card: DataCard

    def select(self, split: str, kind: str) -> list[np.ndarray]:
        """The audio of the clips of ``split`` and ``kind``."""
        return [
            a
            for c, a in zip(self.clips, self.audio, strict=True)
            if c.split == split and c.kind == kind
        ]


def split_speakers(voices: Sequence[Voice], options: GenerateOptions) -> dict[str, str]:
    """``{speaker: split}``: Piper's single voice trains; the rest are shuffled by the seed and
    cut by the shares, each engine on its own so that every split hears every engine."""
    rng = np.random.default_rng(options.seed)
    assignment: dict[str, str] = {}
    for engine in ENGINES:
        speakers = sorted({v.speaker for v in voices if v.engine == engine})
        if engine == "piper" or len(speakers) < 3:
            assignment.update(dict.fromkeys(speakers, "train"))
            continue
        order = [speakers[i] for i in rng.permutation(len(speakers))]
        n_test = max(1, round(options.test_speakers * len(order)))
        n_val = max(1, round(options.val_speakers * len(order)))
        for i, speaker in enumerate(order):
            assignment[speaker] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return assignment


def _trim(samples: np.ndarray) -> np.ndarray:
    """``samples`` without the silence at their ends (a margin kept), at most ``_MAX_CLIP_S``."""
    if samples.size == 0:
        return samples
    envelope = np.abs(samples)
    loud = np.flatnonzero(envelope > envelope.max() * 10 ** (-_TRIM_DB / 20))
    margin = int(_MARGIN_S * SAMPLE_RATE)
    start, end = max(loud[0] - margin, 0), min(loud[-1] + margin, len(samples))
    return samples[start : min(end, start + int(_MAX_CLIP_S * SAMPLE_RATE))]


def _plan(
    phrase: WakePhrase,
    confusables: list[str],
    voices: Sequence[Voice],
    split_of: dict[str, str],
    options: GenerateOptions,
) -> list[Clip]:
    """Which clip each job makes: (kind, text, voice, split, rate, pitch)."""
    rng = np.random.default_rng(options.seed + 1)
    by_split = {s: [v for v in voices if split_of[v.speaker] == s] for s in SPLITS}
    counts = {
        "train": (options.positives, options.confusables, options.sentences),
        "val": (options.val_positives, options.confusables // 5, options.sentences // 5),
        "test": (options.test_positives, options.confusables // 5, options.sentences // 5),
    }
    texts = {
        "positive": phrase.spoken_variants(),
        "confusable": confusables,
        "sentence": list(SENTENCES),
    }
    plan: list[Clip] = []
    for split in SPLITS:
        pool = by_split[split]
        if not pool:
            continue
        piper = [v for v in pool if v.engine == "piper"]
        others = [v for v in pool if v.engine != "piper"] or piper
        engines = sorted({v.engine for v in others})
        for kind, count in zip(KINDS, counts[split], strict=True):
            for _ in range(count):
                if piper and rng.random() < options.piper_share:
                    voice = piper[0]
                else:  # each engine equally often, then a voice of it
                    engine = engines[int(rng.integers(len(engines)))]
                    candidates = [v for v in others if v.engine == engine]
                    voice = candidates[int(rng.integers(len(candidates)))]
                text = texts[kind][int(rng.integers(len(texts[kind])))]
                plan.append(
                    Clip(
                        kind,
                        text,
                        voice.id,
                        voice.speaker,
                        split,
                        round(float(rng.uniform(*options.rate)), 3),
                        round(float(rng.uniform(*options.pitch)), 3),
                    )
                )
    return plan


def _synthesize_all(
    plan: list[Clip], voices: dict[str, Voice], options: GenerateOptions, progress: Progress | None
) -> list[np.ndarray]:
    def one(index: int) -> np.ndarray:
        clip = plan[index]
        rng = np.random.default_rng([options.seed, index])
        return _trim(synthesize(clip.text, voices[clip.voice], clip.rate, clip.pitch, rng))

    # espeak-ng and flite run as processes in the pool while Piper (in-process ONNX) runs here
    with ThreadPoolExecutor(max(1, options.workers)) as pool:
        futures = {
            i: pool.submit(one, i) for i, c in enumerate(plan) if not c.voice.startswith("piper:")
        }
        results = {i: one(i) for i, c in enumerate(plan) if c.voice.startswith("piper:")}
        for n, (i, future) in enumerate(futures.items()):
            results[i] = future.result()
            if progress and n % 200 == 0:
                progress("synthesising", n / len(futures))
    return [results[i] for i in range(len(plan))]


def _card(
    phrase: WakePhrase,
    plan: list[Clip],
    audio: list[np.ndarray],
    real: list[RealSpeech],
    real_seconds: dict[str, float],
    confusables: list[str],
    options: GenerateOptions,
) -> DataCard:
    clips: dict[str, dict[str, int]] = {
        s: dict(Counter(c.kind for c in plan if c.split == s)) for s in SPLITS
    }
    tts_hours = {
        s: round(
            sum(len(a) for c, a in zip(plan, audio, strict=True) if c.split == s)
            / SAMPLE_RATE
            / 3600,
            4,
        )
        for s in SPLITS
    }
    speakers = {s: sorted({c.speaker for c in plan if c.split == s}) for s in SPLITS}
    real_clips = {s: dict(Counter(r.corpus for r in real if r.split == s)) for s in SPLITS}
    return DataCard(
        phrase=phrase.text,
        clips=clips,
        engines=dict(Counter(c.voice.split(":")[0] for c in plan)),
        speakers=speakers,
        tts_hours=tts_hours,
        real_speech_hours={s: round(v / 3600, 4) for s, v in real_seconds.items()},
        real_speech_clips=real_clips,
        confusable_phrases=confusables,
        options={k: list(v) if isinstance(v, tuple) else v for k, v in asdict(options).items()},
    )


def generate_dataset(
    phrase: str | WakePhrase,
    output: Path,
    data_root: Path | None,
    options: GenerateOptions | None = None,
    progress: Progress | None = None,
) -> DataCard:
    """Generate the data set of ``phrase`` into the folder ``output``.

    Args:
        phrase: the wake phrase (checked: :class:`~emotivoice.errors.InvalidPhraseError`).
        output: the data set's folder (created; must not hold files already).
        data_root: the shared real-speech folder (``None``: no real speech, TTS negatives only).
        options: counts, voices, ranges, seed.
        progress: called with (stage, fraction done).

    Returns:
        The data card (also written as ``data_card.json`` and ``data_card.md``).

    Raises:
        InvalidPhraseError: the phrase cannot be trained, or no voice said it.
        NoTrainingDataError: no TTS voice is installed.
    """
    phrase = phrase if isinstance(phrase, WakePhrase) else WakePhrase.parse(phrase)
    options = options or GenerateOptions()
    voices = available_voices(tuple(options.engines))
    if not voices:
        raise NoTrainingDataError(
            "No offline TTS voice is installed to speak the positives: "
            "apt-get install espeak-ng flite"
        )
    split_of = split_speakers(voices, options)
    confusables = confusable_phrases(phrase)
    plan = _plan(phrase, confusables, voices, split_of, options)
    audio = _synthesize_all(plan, {v.id: v for v in voices}, options, progress)
    said = [
        a
        for c, a in zip(plan, audio, strict=True)
        if c.kind == "positive" and a.size > SAMPLE_RATE // 10
    ]
    if not said:
        raise InvalidPhraseError(f"No voice could say the wake phrase {phrase.text!r}.")
    real = real_speech(data_root) if data_root is not None else []
    real_seconds = dict.fromkeys(SPLITS, 0.0)
    records = []
    for item in real:
        seconds = _duration(item.path)
        real_seconds[item.split] += seconds
        records.append(
            {
                "path": str(item.path),
                "corpus": item.corpus,
                "speaker": item.speaker,
                "split": item.split,
                "seconds": round(seconds, 3),
            }
        )
    card = _card(phrase, plan, audio, real, real_seconds, confusables, options)
    with atomic_folder(output) as folder:
        offsets = np.cumsum([0] + [len(a) for a in audio])
        pcm = np.concatenate(audio) if audio else np.zeros(0, np.float32)
        np.savez(
            folder / "clips.npz",
            audio=(np.clip(pcm, -1, 1) * 32767).astype(np.int16),
            offsets=offsets,
        )
        (folder / "clips.jsonl").write_text("".join(json.dumps(asdict(c)) + "\n" for c in plan))
        (folder / "real_speech.json").write_text(json.dumps(records, indent=0))
        (folder / "data_card.json").write_text(json.dumps(asdict(card), indent=1))
        (folder / "data_card.md").write_text(card.to_markdown())
    logger.info("Generated %d clips for %r into %s", len(plan), phrase.text, output)
    return card


def _duration(path: Path) -> float:
    """Seconds of a recording from its container header (no decoding); 0 when unreadable."""
    try:
        with av.open(str(path)) as container:
            if container.duration is not None:
                return float(container.duration) / 1_000_000
            stream = container.streams.audio[0]
            if stream.duration is None or stream.time_base is None:
                return 0.0
            return float(stream.duration * stream.time_base)
    except (av.error.FFmpegError, IndexError, OSError):  # skipped again when it is read
        return 0.0


def load_dataset(folder: Path, splits: Sequence[str] = SPLITS) -> WakeDataset:
    """Read a generated data set (the clips of ``splits``; real speech is listed, not decoded).

    Raises:
        NoTrainingDataError: the folder is not a data set, or it holds no positives.
    """
    needed = [folder / n for n in ("clips.npz", "clips.jsonl", "data_card.json")]
    missing = [p.name for p in needed if not p.exists()]
    if missing:
        raise NoTrainingDataError(
            f"{folder} is not a wake-word data set (missing {', '.join(missing)}); "
            "make one with `emotivoice wakeword generate`."
        )
    arrays = np.load(folder / "clips.npz")
    pcm, offsets = arrays["audio"], arrays["offsets"]
    records = [
        json.loads(line) for line in (folder / "clips.jsonl").read_text().splitlines() if line
    ]
    clips, audio = [], []
    for i, record in enumerate(records):
        clip = Clip(**record)
        if clip.split in splits:
            clips.append(clip)
            audio.append(pcm[offsets[i] : offsets[i + 1]].astype(np.float32) / 32767)
    card_data = json.loads((folder / "data_card.json").read_text())
    card = DataCard(**card_data)
    if not any(c.kind == "positive" and c.split == "train" for c in clips) and "train" in splits:
        raise NoTrainingDataError(f"The data set in {folder} has no training positives.")
    real_path = folder / "real_speech.json"
    real = [
        RealSpeech(Path(r["path"]), r["corpus"], r["speaker"], r["split"])
        for r in (json.loads(real_path.read_text()) if real_path.exists() else [])
        if r["split"] in splits
    ]
    return WakeDataset(WakePhrase(card.phrase), tuple(clips), tuple(audio), tuple(real), card)


def load_real(items: Sequence[RealSpeech]) -> list[np.ndarray]:
    """Decode real recordings (unreadable ones are skipped with a warning)."""
    out = []
    for item in items:
        try:
            out.append(load_audio(item.path).samples)
        except Exception as error:
            logger.warning("Skipping %s: %s", item.path, error)
    return out
