"""What a step is told about earlier work, and what a session remembers, within a token budget.

A small model's context window is small and every token costs time, so nothing is passed whole: each
earlier result is summarised, the most relevant (the latest) first, and cut off at a budget. Token
counts are estimated from characters: JSON packs about 2.8 characters into a token, prose about 3.5.
Pure logic: the worker keeps sessions in Redis.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from switchboard.extract import extract_paths
from switchboard.paths import is_path_key

CHARS_PER_TOKEN_JSON = 2.8
CHARS_PER_TOKEN_PROSE = 3.5
# A step's context: earlier results and the session's history.
STEP_CONTEXT_TOKENS = 400
# Text handed on for a parameter such as `content` (a summary to save, the body of an e-mail).
CARRIED_TEXT_TOKENS = 1200
# What a session keeps of its turns before the oldest are folded into its summary.
SESSION_TOKENS = 1500
SESSION_SUMMARY_TOKENS = 300
# Keys whose string values are bulk text, not names of things.
TEXT_KEYS = ("text", "content", "transcript", "body", "summary", "minutes", "answer", "task", "sentence", "snippet")


def estimate_tokens(text: str) -> int:
    """Tokens `text` will take, by its kind: JSON is denser in tokens than prose."""
    stripped = text.lstrip()
    per_token = CHARS_PER_TOKEN_JSON if stripped[:1] in ("{", "[") else CHARS_PER_TOKEN_PROSE
    return int(len(text) / per_token + 0.999)


def clip_to_tokens(text: str, tokens: int) -> str:
    """`text` cut (at a word where possible) so that it fits in `tokens`."""
    if estimate_tokens(text) <= tokens:
        return text
    per_token = CHARS_PER_TOKEN_JSON if text.lstrip()[:1] in ("{", "[") else CHARS_PER_TOKEN_PROSE
    limit = max(1, int(tokens * per_token) - 1)
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut) + "…"


def lines_left_out(lines: list[str], tokens: int) -> int:
    """How many of `lines` `fit_lines` leaves out (a first line too long for the budget is cut, not
    left out)."""
    return len(lines) - len(_fitted(lines, tokens))


def fit_lines(lines: list[str], tokens: int) -> str:
    """As many of `lines` as fit in `tokens`, in the given order (most important first)."""
    return "\n".join(_fitted(lines, tokens))


def _fitted(lines: list[str], tokens: int) -> list[str]:
    kept: list[str] = []
    used = 0
    for line in lines:
        cost = estimate_tokens(line) + 1
        if used + cost > tokens:
            if not kept:
                kept.append(clip_to_tokens(line, tokens))
            break
        kept.append(line)
        used += cost
    return kept


def listed_paths(content: Any) -> list[str]:
    """The paths of the things a result lists (the matches of a search, the entries of a folder)."""
    if isinstance(content, list):
        found = [str(item["path"]) for item in content if isinstance(item, dict) and item.get("path")]
        if found and len(found) == len(content):
            return found
        return []
    if isinstance(content, dict):
        for value in content.values():
            if isinstance(value, list) and value:
                found = listed_paths(value)
                if found:
                    return found
    return []


def mentioned_paths(value: Any) -> list[str]:
    """Paths named by path-like keys anywhere in a result or in arguments, in order, without repeats."""
    found: list[str] = []

    def walk(item: Any) -> None:
        if isinstance(item, dict):
            for key, inner in item.items():
                if is_path_key(key) and isinstance(inner, str) and inner:
                    if inner not in found:
                        found.append(inner)
                elif key != "undo":
                    walk(inner)
        elif isinstance(item, list):
            for inner in item:
                walk(inner)

    walk(value)
    return found


def result_text(content: Any) -> str:
    """The bulk text a result carries (an extracted document, a transcript, the items it found), or ''."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        for key in TEXT_KEYS:
            value = content.get(key)
            if isinstance(value, str) and value.strip():
                return value
        for value in content.values():
            if isinstance(value, dict | list):
                inner = result_text(value)
                if inner:
                    return inner
        return ""
    if isinstance(content, list) and content:
        if all(isinstance(item, str) for item in content):
            return "\n".join(f"- {item}" for item in content)
        if all(isinstance(item, dict) for item in content):
            # Records that carry text (action items, commitments, search hits): one line each.
            lines = [result_text(item) for item in content]
            return "\n".join(f"- {line}" for line in lines if line)
    return ""


def first_sentences(text: str, chars: int) -> str:
    """The start of `text` up to about `chars` characters, ending at a sentence where one ends nearby."""
    flat = " ".join(text.split())
    if len(flat) <= chars:
        return flat
    cut = flat[:chars]
    stop = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
    return (cut[: stop + 1] if stop > chars // 3 else cut.rstrip()) + ("" if stop > chars // 3 else "…")


@dataclass(frozen=True)
class TurnMemory:
    """What a session keeps of one finished turn."""

    text: str
    outcome: str
    calls: list[str]  # "tool(arguments)" of each step that was routed
    subjects: list[str]  # the paths the turn was about, most relevant first
    gist: str = ""  # a line of what came out of it
    # The words of a step that ended with required values open (its tool was named): the next turn
    # may be only those values ("tomorrow at 3pm"), and is then read together with them.
    open_intent: str = ""

    def line(self) -> str:
        """The turn as one context line (without tool names, which a small model would copy)."""
        about = f", about {', '.join(self.subjects[:3])}" if self.subjects else ""
        gist = f" → {self.gist}" if self.gist else ""
        return f"Earlier request: {self.text} ({self.outcome}{about}){gist}"


@dataclass
class SessionMemory:
    """A session's history: recent turns whole, older ones folded into a short summary."""

    turns: list[TurnMemory] = field(default_factory=list)
    summary: str = ""

    @property
    def empty(self) -> bool:
        return not self.turns and not self.summary

    def subjects(self) -> list[str]:
        """What "it"/"that" most likely means: the latest turn's subjects, then older ones."""
        found: list[str] = []
        for turn in reversed(self.turns):
            for path in turn.subjects:
                if path not in found:
                    found.append(path)
        found.extend(p for p in extract_paths(self.summary) if p not in found)
        return found

    def context_lines(self) -> list[str]:
        """The history as context lines, latest first, the summary last."""
        lines = [turn.line() for turn in reversed(self.turns)]
        if self.summary:
            lines.append(f"Earlier in this session: {self.summary}")
        return lines

    def latest_text(self) -> str:
        """The latest turn's gist: text a follow-up ("save that") can carry on."""
        return self.turns[-1].gist if self.turns else ""

    def remember(self, turn: TurnMemory, budget: int = SESSION_TOKENS) -> int:
        """Add a finished turn; fold the oldest turns into the summary while the history is over budget.
        Returns how many turns were folded (evicted from the history kept whole)."""
        self.turns.append(turn)
        folded_turns = 0
        while len(self.turns) > 1 and self.tokens() > budget:
            folded_turns += 1
            oldest = self.turns.pop(0)
            folded = (
                f"{oldest.text} ({oldest.outcome}{'; ' + ', '.join(oldest.subjects[:2]) if oldest.subjects else ''})"
            )
            summary = f"{self.summary}; {folded}" if self.summary else folded
            # Keep the newest part of the summary (older history matters least), within a quarter of
            # the budget, so the summary never crowds out the turns themselves.
            summary_tokens = min(SESSION_SUMMARY_TOKENS, budget // 4)
            if estimate_tokens(summary) > summary_tokens:
                keep = int(summary_tokens * CHARS_PER_TOKEN_JSON)
                summary = "…" + summary[-keep:]
            self.summary = summary
        return folded_turns

    def tokens(self) -> int:
        return estimate_tokens(self.to_json())

    def to_json(self) -> str:
        return json.dumps({"summary": self.summary, "turns": [asdict(t) for t in self.turns]})

    @classmethod
    def from_json(cls, raw: str | bytes | None) -> SessionMemory:
        if not raw:
            return cls()
        data = json.loads(raw)
        return cls(turns=[TurnMemory(**t) for t in data.get("turns", [])], summary=data.get("summary", ""))


def common_folder(paths: list[str]) -> str:
    """The folder a set of paths shares ('' when they share none), for resolving bare file names.

    A path whose last part has an extension is taken to be a file, so its folder counts.
    """
    folders = []
    for path in paths:
        if not path.startswith(("/", "~")):
            continue
        last = path.rstrip("/").rsplit("/", 1)[-1]
        folders.append(path.rstrip("/").rsplit("/", 1)[0] if "." in last.strip(".") else path.rstrip("/"))
    if not folders:
        return ""
    try:
        shared = os.path.commonpath(folders)
    except ValueError:  # "~/…" and "/…" mixed: no common folder can be named
        return ""
    return "" if shared in ("", "/", "~") else shared
