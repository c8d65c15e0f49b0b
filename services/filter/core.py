"""The embedding pre-filter: a tool index built once, and the top-K tools for a step.

Each tool is embedded once, from its name and description, when the index is built (not per request,
the reference implementation's 1.3 s mistake); a step costs one embedding and one matrix product.
The encoder is passed in, so this module stays free of model loading.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Encoder = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class ToolEntry:
    """What the index knows of a tool."""

    name: str
    server: str
    description: str
    input_schema_json: str = "{}"


@dataclass(frozen=True)
class Ranked:
    tool: ToolEntry
    score: float


def tool_document(tool: ToolEntry) -> str:
    """The text a tool is embedded as: its name in words, then its description."""
    words = tool.name.replace(".", " ").replace("_", " ")
    return f"{words}. {tool.description}"


def catalogue_digest(tools: Sequence[ToolEntry]) -> str:
    """A fingerprint of a catalogue, to tell when the index must be rebuilt."""
    payload = json.dumps(sorted((t.name, t.description, t.input_schema_json) for t in tools))
    return hashlib.sha256(payload.encode()).hexdigest()


class ToolIndex:
    """Normalised tool embeddings; ranking is cosine similarity."""

    def __init__(self, encode: Encoder, tools: Sequence[ToolEntry]) -> None:
        if not tools:
            raise ValueError("cannot build a tool index from an empty catalogue")
        self.encode = encode
        self.tools = list(tools)
        self.digest = catalogue_digest(self.tools)
        self.matrix = _normalise(encode([tool_document(t) for t in self.tools]))

    def rank(self, text: str, k: int) -> list[Ranked]:
        """The `k` tools closest to `text`, best first."""
        query = _normalise(self.encode([text]))[0]
        scores = self.matrix @ query
        order = np.argsort(-scores, kind="stable")[: max(1, k)]
        return [Ranked(self.tools[i], float(scores[i])) for i in order]


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
