"""The batch path: many recordings, their segments analysed in batches (``--batch-size``).

:meth:`Analyzer.analyze <emotivoice.pipeline.Analyzer.analyze>` makes one segment after the
other: each is encoded, decoded with the previous segment's text as its prompt, and scored,
which keeps a CPU busy but leaves a GPU waiting. :class:`BatchAnalyzer` takes the segments of
many files in order, ``batch_size`` at a time, and runs each stage once per batch:

- Whisper's encoder over the batch's padded windows (one fitted to its longest segment), one
  call;
- language detection of the batch, one call (a segment unsure of its language keeps the
  language of the speech before it in its file, as in the unbatched path);
- the decoder over the batch, one call per language (as faster-whisper's
  ``BatchedInferencePipeline`` decodes: temperature 0, no previous text as prompt, no timestamp
  tokens), word times from one batched alignment;
- the emotion head's encoder prefix over the segments, then over their units, in padded
  batches (:class:`~emotivoice.emotion.batched.PrefixRunner`: the PyTorch twin on the
  emotion device when PyTorch is installed, numpy otherwise);
- the acoustic features (pYIN) in a process pool, submitted as soon as a file's segments are
  known, so the models wait for them only when the pool falls behind.

The stages overlap in a two-step pipeline: the Whisper stages of a batch (CTranslate2, which
runs its calls one after the other and releases the GIL) run on the calling thread while the
previous batch is finished on a thread of its own (its emotion, the wait for its features, its
segments, its units' emotion, its speakers), so the decoder waits for the emotion head or for
pYIN only when that thread falls behind (``seconds["finish"]``; with 16 cores the pYIN pool
does: docs/benchmarks.md, "GPU batch path"). Results are those of running the stages one after
the other: each batch's inputs are fixed before it is handed on, and the files' bookkeeping
(results, yielding in input order, failed files) stays on the calling thread.

Files are planned (decoded, VAD, diarization) in threads a few files ahead of the batches (with
``--device cuda`` the speaker encoder runs on the GPU too), and
each file's :class:`~emotivoice.results.Analysis` is yielded as soon as its last segment is
done, in input order. With features on, a script that uses it needs Python's
``if __name__ == "__main__":`` guard: the feature processes are spawned, and a spawned process
imports the main module.
What differs from the unbatched path is what batched decoding changes: no temperature fallback
and no previous-text prompt (the tests bound the transcripts' difference by WER and the emotion
probabilities by a tolerance).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emotivoice.audio import SAMPLE_RATE, Audio, AudioSource
from emotivoice.diarization import Diarization, SpeakerTurn
from emotivoice.emotion.batched import check_torch_device
from emotivoice.errors import EmotiVoiceError, InvalidConfigError
from emotivoice.features import AcousticFeatures, extract_features
from emotivoice.pipeline import Analyzer, SegmentResult, with_speaker
from emotivoice.results import Analysis
from emotivoice.segmentation import SpeechSpan
from emotivoice.transcription import LANGUAGE_CONFIDENCE, EncodedSegment, SegmentTranscript

__all__ = ["STAGES", "BatchAnalyzer", "FileResult"]

#: files decoded and planned ahead of the batches beyond those being planned (each holds its
#: decoded audio)
PLAN_AHEAD = 2
#: niceness of the feature processes (see :func:`_feature_process`)
FEATURE_NICENESS = 5
#: most threads planning files at once (decoding, VAD and the speaker encoder release the GIL)
MAX_PLANNERS = 4
#: transcribed batches left to the finishing thread while the next batch is transcribed
FINISHING_AHEAD = 1
#: the stages :attr:`BatchAnalyzer.seconds` times. On the thread that feeds Whisper: waiting
#: for a file's decoding, VAD and diarization (planned in threads ahead of the batches); the
#: encoder (with the log-mel of each segment); language detection; the decoder and word
#: alignment; waiting for the finishing thread; assembling a file's analysis. On the finishing
#: thread, beside the next batch's Whisper stages: the emotion prefix and head (segments and
#: units); waiting for the feature pool
STAGES = ("plan", "encode", "language", "decode", "finish", "assemble", "emotion", "features")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileResult:
    """One input of :meth:`BatchAnalyzer.analyze_many`: its analysis, or why it failed.

    Attributes:
        source: the input as given.
        analysis: the analysis (``None``: the input failed).
        error: why it failed.
        audio: the decoded recording (what explanations and reports cut segments from).
        spans: the exact sample span of each segment id.
    """

    source: AudioSource | Audio
    analysis: Analysis | None = None
    error: EmotiVoiceError | None = None
    audio: Audio | None = field(default=None, repr=False)
    spans: Mapping[int, SpeechSpan] = field(default_factory=dict, repr=False)


@dataclass(eq=False)
class _File:
    """A planned recording whose segments are on their way through the batches."""

    source: AudioSource | Audio
    audio: Audio
    turns: list[SpeakerTurn]
    diarization: Diarization | None
    started: float
    results: list[SegmentResult | None] = field(default_factory=list)
    running_language: str | None = None
    pending: int = 0


@dataclass(eq=False)
class _Job:
    """One segment of a file, waiting for its batch."""

    file: _File
    index: int
    samples: np.ndarray
    features: Future[AcousticFeatures] | None


@dataclass(eq=False)
class _Flow:
    """One :meth:`BatchAnalyzer.analyze_many` run: its files in input order (a failed one is
    done), the segments waiting for a batch, and the batches on the finishing thread."""

    finisher: ThreadPoolExecutor
    open_files: list[_File | FileResult] = field(default_factory=list)
    queue: list[_Job] = field(default_factory=list)
    finishing: deque[tuple[list[_Job], Future[list[SegmentResult]]]] = field(default_factory=deque)


class BatchAnalyzer:
    """Analyses many recordings with each model stage run over batches of segments.

    Args:
        analyzer: the loaded models and options (its transcription device is the batch's).
        batch_size: segments per batch (at least 1; 1 still takes the batched code path).
        feature_workers: processes computing acoustic features (0: one per CPU this process may
            use, less the planner threads on a machine of more than 8, at most 12; unused when
            features are off).
        planners: threads planning files ahead of the batches (0: a quarter of the CPUs, 1 to
            :data:`MAX_PLANNERS`).
    """

    def __init__(
        self,
        analyzer: Analyzer,
        batch_size: int = 8,
        feature_workers: int = 0,
        planners: int = 0,
    ) -> None:
        if batch_size < 1:
            raise InvalidConfigError(f"batch_size must be at least 1, got {batch_size}")
        if feature_workers < 0 or planners < 0:
            raise InvalidConfigError("feature_workers and planners must not be negative")
        self.analyzer = analyzer
        self.batch_size = batch_size
        #: wall seconds spent in each stage so far (where the time goes; the benchmarks read
        #: it). The stages of the two threads (:data:`STAGES`) overlap, so the sum exceeds
        #: the wall time; ``finish`` is how long the Whisper stages waited for the other thread
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        self.planners = planners or min(MAX_PLANNERS, max(1, cpus // 4))
        spare = cpus - self.planners if cpus > 8 else cpus
        self.feature_workers = feature_workers or min(12, max(1, spare))
        self._planning = _planning_analyzer(analyzer)

    def analyze_many(self, sources: Iterable[AudioSource | Audio]) -> Iterator[FileResult]:
        """Analyse ``sources`` (paths, bytes, file objects, or decoded :class:`Audio`: an
        array goes through ``analyzer.load(array, sample_rate=...)`` first), yielding one
        :class:`FileResult` each, in input order; a file that cannot be decoded is yielded
        with its error and the rest go on."""
        pool = None
        if self.analyzer.options.features:
            # spawn: the parent holds model threads that a forked child must not inherit
            context = multiprocessing.get_context("spawn")
            pool = ProcessPoolExecutor(
                self.feature_workers, mp_context=context, initializer=_feature_process
            )
        try:
            yield from self._run(sources, pool)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)

    def _run(
        self, sources: Iterable[AudioSource | Audio], pool: ProcessPoolExecutor | None
    ) -> Iterator[FileResult]:
        # files are decoded, VAD'ed and diarized in threads ahead of the batches (the models'
        # calls release the GIL), at most PLAN_AHEAD files beyond those being planned; each
        # batch is finished on its own thread while the next one is transcribed
        with (
            ThreadPoolExecutor(self.planners, thread_name_prefix="emotivoice-plan") as planner,
            ThreadPoolExecutor(1, thread_name_prefix="emotivoice-finish") as finisher,
        ):
            flow = _Flow(finisher)
            try:
                ahead: deque[tuple[AudioSource | Audio, Future[tuple[_File, list[_Job]]]]]
                ahead = deque()
                for source in sources:
                    ahead.append((source, planner.submit(self._plan, source, pool)))
                    if len(ahead) > PLAN_AHEAD + self.planners - 1:
                        yield from self._take(ahead.popleft(), flow)
                while ahead:
                    yield from self._take(ahead.popleft(), flow)
                while flow.queue:
                    yield from self._next_batch(flow)
                yield from self._settle(flow, keep=0)
            finally:  # a consumer that stops early leaves no batch to finish
                finisher.shutdown(cancel_futures=True)

    def _take(
        self,
        planned: tuple[AudioSource | Audio, Future[tuple[_File, list[_Job]]]],
        flow: _Flow,
    ) -> Iterator[FileResult]:
        """Queue a planned file's segments and transcribe every full batch."""
        source, future = planned
        try:
            with self._timed("plan"):  # the wait for the planner, not its whole work
                file, jobs = future.result()
        except EmotiVoiceError as error:
            flow.open_files.append(FileResult(source, error=error))
            yield from self._finished(flow.open_files)
            return
        flow.open_files.append(file)
        flow.queue.extend(jobs)
        while len(flow.queue) >= self.batch_size:
            yield from self._next_batch(flow)
        yield from self._finished(flow.open_files)

    def _next_batch(self, flow: _Flow) -> Iterator[FileResult]:
        """Transcribe the next batch here, hand it to the finishing thread, and take in what
        that thread has finished beyond the last :data:`FINISHING_AHEAD` batches."""
        jobs = flow.queue[: self.batch_size]
        del flow.queue[: self.batch_size]
        encoded, transcripts = self._transcribe(jobs)
        flow.finishing.append(
            (jobs, flow.finisher.submit(self._finish, jobs, encoded, transcripts))
        )
        yield from self._settle(flow, keep=FINISHING_AHEAD)

    def _settle(self, flow: _Flow, keep: int) -> Iterator[FileResult]:
        """Wait for the finishing thread until at most ``keep`` batches are left to it, store
        their segments in their files (on this thread: the files' bookkeeping has one owner),
        and yield the files that are done."""
        while len(flow.finishing) > keep:
            jobs, future = flow.finishing.popleft()
            with self._timed("finish"):  # the wait, not the thread's whole work
                results = future.result()
            for job, result in zip(jobs, results, strict=True):
                job.file.results[job.index] = result
                job.file.pending -= 1
            yield from self._finished(flow.open_files)

    @contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - started

    def _plan(
        self, source: AudioSource | Audio, pool: ProcessPoolExecutor | None
    ) -> tuple[_File, list[_Job]]:
        started = time.perf_counter()
        audio = source if isinstance(source, Audio) else self.analyzer.load(source)
        turns, diarization = self._planning.plan(audio)
        planned = _File(
            source,
            audio,
            turns,
            diarization,
            started,
            results=[None] * len(turns),
            running_language=self.analyzer.options.transcription.language,
            pending=len(turns),
        )
        jobs = []
        for index, turn in enumerate(turns):
            span = turn.span
            heard = audio.samples if turn.channel is None else audio.channels[turn.channel]  # type: ignore[index]
            samples = heard[span.start_sample : span.end_sample]
            features = pool.submit(extract_features, samples, SAMPLE_RATE) if pool else None
            jobs.append(_Job(planned, index, samples, features))
        return planned, jobs

    def _finished(self, open_files: list[_File | FileResult]) -> Iterator[FileResult]:
        """Yield the leading files whose segments are all done (input order is kept)."""
        while open_files and (isinstance(open_files[0], FileResult) or open_files[0].pending == 0):
            done = open_files.pop(0)
            if isinstance(done, FileResult):
                yield done
                continue
            segments = tuple(r.segment for r in done.results if r is not None)
            elapsed = time.perf_counter() - done.started
            with self._timed("assemble"):
                analysis = self.analyzer.assemble(done.audio, segments, elapsed)
            spans = {r.segment.id: r.span for r in done.results if r is not None}
            yield FileResult(done.source, analysis, audio=done.audio, spans=spans)

    def _languages(
        self, jobs: list[_Job], encoded: list[EncodedSegment]
    ) -> list[tuple[str, float]]:
        """Each segment's language, carried over from its file's preceding speech when unsure
        (the unbatched path's rule, in segment order)."""
        forced = self.analyzer.options.transcription.language
        if forced is not None:
            return [(forced, 1.0)] * len(jobs)
        out = []
        for job, ranked in zip(
            jobs, self.analyzer.transcriber.detect_languages(encoded), strict=True
        ):
            language, probability = ranked[0]
            running = job.file.running_language
            if probability < LANGUAGE_CONFIDENCE and running is not None:
                language, probability = running, dict(ranked).get(running, 0.0)
            job.file.running_language = language
            out.append((language, probability))
        return out

    def _transcribe(self, jobs: list[_Job]) -> tuple[list[EncodedSegment], list[SegmentTranscript]]:
        """A batch's Whisper stages: encoder, language detection, decoder (CTranslate2 runs its
        calls one after the other, so they stay on one thread, in batch order: a file's
        running language follows its segments)."""
        transcriber = self.analyzer.transcriber
        with self._timed("encode"):
            encoded = transcriber.encode_batch([job.samples for job in jobs])
        with self._timed("language"):
            languages = self._languages(jobs, encoded)
        with self._timed("decode"):
            transcripts = transcriber.transcribe_batch(
                encoded,
                [language for language, _ in languages],
                [probability for _, probability in languages],
                [job.file.turns[job.index].span.start for job in jobs],
            )
        return encoded, transcripts

    def _finish(
        self, jobs: list[_Job], encoded: list[EncodedSegment], transcripts: list[SegmentTranscript]
    ) -> list[SegmentResult]:
        """The rest of a transcribed batch, on the finishing thread: the emotion of its
        segments, their features, the segments themselves, their units' emotion, speakers."""
        analyzer, emotion = self.analyzer, self.analyzer.emotion
        spans = [job.file.turns[job.index].span for job in jobs]
        starts = [round(span.start, 3) for span in spans]
        scored: list[Any] = [None] * len(jobs)
        if emotion is not None:
            with self._timed("emotion"):
                scored = emotion.score_segments(
                    [(j.samples, e, t) for j, e, t in zip(jobs, encoded, starts, strict=True)]
                )
        with self._timed("features"):
            features = [job.features.result() if job.features else None for job in jobs]
        segments = [
            analyzer.make_segment(job.index, span, transcript, feature, score)
            for job, span, transcript, feature, score in zip(
                jobs, spans, transcripts, features, scored, strict=True
            )
        ]
        if emotion is not None:
            with self._timed("emotion"):
                units = emotion.score_units_of(
                    [
                        (job.samples, e, s.words, s.start, s.emotion)
                        for job, e, s in zip(jobs, encoded, segments, strict=True)
                        if s.emotion is not None
                    ]
                )
            with_units = iter(units)
            segments = [
                dataclasses.replace(s, units=next(with_units)) if s.emotion is not None else s
                for s in segments
            ]
        results = []
        for job, segment, e, span in zip(jobs, segments, encoded, spans, strict=True):
            result = SegmentResult(segment=segment, encoded=e, span=span)
            turn, diarization = job.file.turns[job.index], job.file.diarization
            if diarization is not None:
                result = with_speaker(result, turn, diarization)
            results.append(result)
        return results


def _feature_process() -> None:
    """A feature process yields the CPU to the thread feeding the models and to the planners
    (they keep the GPU busy; features are needed only when their batch is done), and runs BLAS
    on one thread (the pool is the parallelism: a thread per core in each would oversubscribe)."""
    from threadpoolctl import threadpool_limits

    with contextlib.suppress(OSError):
        os.nice(FEATURE_NICENESS)
    threadpool_limits(1)


def _planning_analyzer(analyzer: Analyzer) -> Analyzer:
    """The analyzer that plans the files: ``analyzer`` itself, or with Whisper on ``cuda`` a
    copy whose GE2E speaker encoder runs there too (when PyTorch sees the GPU)."""
    options = analyzer.options.diarization
    if analyzer.transcriber.device != "cuda" or options is None or options.backend != "ge2e":
        return analyzer
    try:
        check_torch_device("cuda")
    except InvalidConfigError as error:
        logger.info("The speaker encoder stays on the CPU: %s", error)
        return analyzer
    planning = copy.copy(analyzer)
    diarization = dataclasses.replace(options, device="cuda")
    planning.options = dataclasses.replace(analyzer.options, diarization=diarization)
    return planning
