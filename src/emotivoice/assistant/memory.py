"""Conversation memory bounded by the model's context window.

Every turn is kept in :attr:`ConversationMemory.history`; the prompt of a new turn takes the
system message, then as many of the most recent turns as fit, then the new user message. The
turns may fill the context window less the reply's room, and at most ``history_tokens``: the
local runtime reads the whole prompt again each turn (no cache of the previous turn's keys and
values), so every remembered token delays the first token of the reply (measured on the shared
2-core CPU: with the whole window, 30 turns made the voice-to-voice time grow from 2 s to 20 s;
capped at 384 tokens, p50 5.0 s against 2.2-2.7 s for the first turns). When
the budget is full the **oldest turns are dropped** from the prompt (whole turns, never half of
one), not summarised: a 135M model summarises poorly, and a summary costs a second generation
before every reply. A reply the user interrupted is kept with the words generated before the
cut and the marker ``[interrupted by the user]``, so the model knows it was not heard out.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from emotivoice.assistant.llm import Message
from emotivoice.assistant.style import ReplyStyle
from emotivoice.assistant.turns import Utterance

__all__ = [
    "CUT_MARKER",
    "DEFAULT_HISTORY_TOKENS",
    "ConversationMemory",
    "Exchange",
    "system_message",
]

CUT_MARKER = "[interrupted by the user]"
DEFAULT_HISTORY_TOKENS = 192  # about the last two short exchanges
_MESSAGE_OVERHEAD_TOKENS = 4  # role and separators a chat template adds around each message


def system_message(persona: str, style: ReplyStyle, utterance: Utterance) -> str:
    """The system message of a turn: the persona, the reply style's instruction and how the
    user spoke, as one line of structured fields (JSON) measured by the engine."""
    lines = [persona, f"Reply style ({style.name}): {style.instruction}"]
    fields = utterance.voice_fields()
    if fields:
        lines.append(f"voice: {json.dumps(fields, separators=(',', ':'))}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Exchange:
    """One remembered turn: what the user said and the reply."""

    user: str
    reply: str
    cut: bool = False

    def messages(self) -> list[Message]:
        reply = f"{self.reply} {CUT_MARKER}".strip() if self.cut else self.reply
        return [{"role": "user", "content": self.user}, {"role": "assistant", "content": reply}]


class ConversationMemory:
    """The turns so far, and prompts that fit the context window.

    Args:
        context_tokens: the model's window (prompt and reply).
        reply_tokens: tokens kept free for the reply.
        count_tokens: the model's token counter.
        history_tokens: the most the remembered turns may take of a prompt.
    """

    def __init__(
        self,
        context_tokens: int,
        reply_tokens: int,
        count_tokens: Callable[[str], int],
        history_tokens: int = DEFAULT_HISTORY_TOKENS,
    ) -> None:
        self.history_tokens = history_tokens
        self.context_tokens = context_tokens
        self.reply_tokens = reply_tokens
        self.count_tokens = count_tokens
        self.history: list[Exchange] = []
        self.dropped = 0  # turns left out of the last prompt

    def _cost(self, messages: list[Message]) -> int:
        return sum(self.count_tokens(m["content"]) + _MESSAGE_OVERHEAD_TOKENS for m in messages)

    def prompt(self, system: str, user: str) -> list[Message]:
        """System message, the most recent turns that fit, the new user message."""
        head: list[Message] = [{"role": "system", "content": system}]
        tail: list[Message] = [{"role": "user", "content": user}]
        room = self.context_tokens - self.reply_tokens - self._cost(head + tail)
        budget = min(room, self.history_tokens)
        kept: list[Message] = []
        self.dropped = len(self.history)
        for exchange in reversed(self.history):
            messages = exchange.messages()
            cost = self._cost(messages)
            if cost > budget:
                break
            kept = messages + kept
            budget -= cost
            self.dropped -= 1
        return head + kept + tail

    def add(self, user: str, reply: str, cut: bool = False) -> None:
        """Remember a finished (or cut) turn."""
        self.history.append(Exchange(user, reply, cut))
