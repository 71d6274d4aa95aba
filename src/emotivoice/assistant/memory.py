"""Conversation memory bounded by the model's context window.

Every turn is kept in :attr:`ConversationMemory.history`; the prompt of a new turn takes the
persona, then as many of the most recent turns as fit, then the turn's context (reply style and
voice fields) and the new user message. The turns may fill the context window less the
reply's room, and at most ``history_tokens``: every prompt token the model has to read delays
the first token of the reply (measured on the shared 2-core CPU, before the local model kept
its cache: with the whole window as history, 30 turns made the voice-to-voice time grow from
2 s to 20 s). The local model keeps the previous prompt's keys and values and reads only where
a new prompt differs, so the beginning is kept stable: when the turns outgrow the budget, the
**oldest turns are dropped** (whole turns, never half of one) down to half the budget at once,
and the prompts after that begin the same way. Turns are dropped, not summarised: a 135M model
summarises poorly, and a summary costs a second generation before a reply. A reply the user
interrupted is kept with the words generated before the cut and the marker
``[interrupted by the user]``, so the model knows it was not heard out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emotivoice.assistant.llm import Message
from emotivoice.assistant.style import ReplyStyle
from emotivoice.assistant.turns import Utterance

__all__ = [
    "CUT_MARKER",
    "DEFAULT_HISTORY_TOKENS",
    "ConversationMemory",
    "Exchange",
    "turn_context",
    "voice_line",
]

CUT_MARKER = "[interrupted by the user]"
DEFAULT_HISTORY_TOKENS = 192  # about the last two short exchanges
_MESSAGE_OVERHEAD_TOKENS = 4  # role and separators a chat template adds around each message


def turn_context(style: ReplyStyle, utterance: Utterance) -> str:
    """What the model is told about this turn, as a system message just before the question:
    the reply style's instruction and how the user spoke, one line of structured fields
    (:func:`voice_line`) measured by the engine. (After the history, not in the persona at the
    top: the prompt's beginning stays the same from turn to turn, and the local model reads
    only what changed.)
    """
    lines = [f"Reply style ({style.name}): {style.instruction}"]
    fields = utterance.voice_fields()
    if fields:
        lines.append(voice_line(fields))
    return "\n".join(lines)


def voice_line(fields: dict[str, Any]) -> str:
    """The voice fields as one line of ``name value`` pairs (``uncertain`` alone when true),
    fractions without their leading zero: ``voice: emotion angry, confidence .8, arousal .9,
    ...``. Every prompt token is read before the reply's first token, and this form takes 37
    of SmolLM2's tokens where compact JSON took 51."""
    pairs = [
        name if value is True else f"{name} {_number(value)}" for name, value in fields.items()
    ]
    return "voice: " + ", ".join(pairs)


def _number(value: object) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text[1:] if text.startswith("0.") else text


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
        self.dropped = 0  # the oldest turns, left out of the prompts

    def _cost(self, messages: list[Message]) -> int:
        return sum(self.count_tokens(m["content"]) + _MESSAGE_OVERHEAD_TOKENS for m in messages)

    def prompt(
        self,
        system: str,
        user: str,
        context: str | None = None,
        examples: list[Message] | None = None,
    ) -> list[Message]:
        """The persona (``system``) and its ``examples`` (fixed exchanges that show a format,
        such as the browser tool's calls), the remembered turns that fit, the turn's
        ``context`` (a system message) and the new user message.

        When the turns outgrow the budget, the oldest are dropped until they fill at most half
        of it (the newest is kept if it fits alone): the turns kept then stay the same for the
        next few prompts, whose beginning the local model does not read again.
        """
        head = _head(system, examples)
        tail: list[Message] = [{"role": "system", "content": context}] if context else []
        tail.append({"role": "user", "content": user})
        return head + self._kept(self._cost(head + tail)) + tail

    def prefix(self, system: str, examples: list[Message] | None = None) -> list[Message]:
        """The beginning of the next turn's :meth:`prompt`: the persona, its examples and the
        remembered turns, without the turn's context and message (not known until the user has
        spoken). A model reads it ahead of time (:meth:`LocalModel.prefill
        <emotivoice.assistant.llm.LocalModel.prefill>`) while the user speaks."""
        head = _head(system, examples)
        return head + self._kept(self._cost(head))

    def _kept(self, fixed_cost: int) -> list[Message]:
        """The remembered turns' messages that fit beside ``fixed_cost`` tokens of persona and
        turn, after dropping the oldest turns that do not (the rule of :meth:`prompt`)."""
        room = self.context_tokens - self.reply_tokens - fixed_cost
        budget = min(room, self.history_tokens)
        costs = [self._cost(e.messages()) for e in self.history]
        if sum(costs[self.dropped :]) > budget:
            newest = len(costs) - 1
            while self.dropped <= newest and (
                sum(costs[self.dropped :]) > budget
                or (self.dropped < newest and sum(costs[self.dropped :]) > budget // 2)
            ):
                self.dropped += 1
        return [m for e in self.history[self.dropped :] for m in e.messages()]

    def add(self, user: str, reply: str, cut: bool = False) -> None:
        """Remember a finished (or cut) turn."""
        self.history.append(Exchange(user, reply, cut))


def _head(system: str, examples: list[Message] | None) -> list[Message]:
    return [{"role": "system", "content": system}, *(examples or [])]
