"""The local voice assistant: wake word → live transcription with emotion → local language
model → streamed speech, with barge-in and a per-turn latency trace.

The modules, in the order a turn flows through them: :mod:`~emotivoice.assistant.sources`
(audio in), :mod:`~emotivoice.assistant.listener` (wake stage, the engine's live analysis),
:mod:`~emotivoice.assistant.turns` (utterances, turns, traces), :mod:`~emotivoice.assistant.style`
(the reply style from the user's emotion), :mod:`~emotivoice.assistant.memory` (the prompt within
the context window), :mod:`~emotivoice.assistant.llm` (local GGUF model, OpenAI-compatible
client), :mod:`~emotivoice.assistant.sentences` (sentences cut from streamed tokens),
:mod:`~emotivoice.assistant.speech` (TTS and audio out), :mod:`~emotivoice.assistant.tools` (the
browser tool the model may call) and :mod:`~emotivoice.assistant.pipeline` (the
:class:`Assistant` that composes them). Library code: no service or web imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "Assistant",
    "AssistantOptions",
    "BrowserPolicy",
    "BrowserTool",
    "BufferSink",
    "ConversationMemory",
    "LanguageModel",
    "LatencyTrace",
    "LocalModel",
    "OpenAIChatModel",
    "ReplyStyle",
    "SentenceCutter",
    "StreamListener",
    "ToolAction",
    "Turn",
    "Utterance",
    "VoiceSpeaker",
    "WakeWordStage",
    "audio_chunks",
    "choose_style",
    "default_speaker",
    "local_model_path",
]

# Loaded on first use: importing the package loads no model code.
_LAZY = {
    "Assistant": "pipeline",
    "AssistantOptions": "pipeline",
    "BrowserPolicy": "tools",
    "BrowserTool": "tools",
    "BufferSink": "speech",
    "ConversationMemory": "memory",
    "LanguageModel": "llm",
    "LatencyTrace": "turns",
    "LocalModel": "llm",
    "OpenAIChatModel": "llm",
    "ReplyStyle": "style",
    "SentenceCutter": "sentences",
    "StreamListener": "listener",
    "ToolAction": "tools",
    "Turn": "turns",
    "Utterance": "turns",
    "VoiceSpeaker": "speech",
    "WakeWordStage": "listener",
    "audio_chunks": "sources",
    "choose_style": "style",
    "default_speaker": "speech",
    "local_model_path": "llm",
}

if TYPE_CHECKING:
    from emotivoice.assistant.listener import StreamListener, WakeWordStage
    from emotivoice.assistant.llm import (
        LanguageModel,
        LocalModel,
        OpenAIChatModel,
        local_model_path,
    )
    from emotivoice.assistant.memory import ConversationMemory
    from emotivoice.assistant.pipeline import Assistant, AssistantOptions
    from emotivoice.assistant.sentences import SentenceCutter
    from emotivoice.assistant.sources import audio_chunks
    from emotivoice.assistant.speech import BufferSink, VoiceSpeaker, default_speaker
    from emotivoice.assistant.style import ReplyStyle, choose_style
    from emotivoice.assistant.tools import BrowserPolicy, BrowserTool, ToolAction
    from emotivoice.assistant.turns import LatencyTrace, Turn, Utterance


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'emotivoice.assistant' has no attribute {name!r}")
    return getattr(importlib.import_module(f"emotivoice.assistant.{module}"), name)
