"""The assistant benchmark's code on one question and one interruption (the figures themselves
are in docs/benchmarks.md)."""

from __future__ import annotations

import math

import pytest


@pytest.mark.slow
def test_one_question_and_one_interruption() -> None:
    pytest.importorskip("cyllama")
    from emotivoice.assistant.llm import LocalModel
    from emotivoice.assistant.speech import default_speaker
    from emotivoice.evaluation.assistant import (
        STAGES,
        format_assistant_report,
        run_assistant_benchmark,
    )

    report = run_assistant_benchmark(
        LocalModel(),
        default_speaker("espeak-ng"),
        n_questions=1,
        interruptions=1,
        max_reply_tokens=40,
    )
    assert set(report.stages) == set(STAGES)
    p50s = [report.stages[stage][0] for stage in STAGES]
    assert all(v > 0 for v in p50s) and p50s == sorted(p50s)
    assert len(report.voice_to_voice_s) == 1
    assert report.batch_wer < 0.5 and report.stream_wer < 0.5  # "What is the capital of France?"
    assert report.interruptions_missed == 0
    stop, cancel = report.barge_in_stop, report.barge_in_cancel
    assert not math.isnan(stop[0]) and 0 < stop[0] <= cancel[0] < 2.0
    assert 0 <= report.generation_cancel[0] < 1.0  # llama.cpp aborts at once (ms, rounded)
    assert "voice_to_voice_s" in format_assistant_report(report)
