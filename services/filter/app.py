"""The filter's index, kept current with the tool host's catalogue, and what it does with a step."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from services.filter.core import (
    CALLER_NO_FIT_SIMILARITY,
    CALLER_TOOLS_CACHED,
    DENSE_WEIGHT,
    Assessment,
    EmbeddingCache,
    Encoder,
    Ranked,
    ToolEntry,
    ToolIndex,
    catalogue_digest,
    dense_text,
    embed_query,
    no_tool_fits,
)
from switchboard.errors import ConfigurationError, UpstreamUnavailable
from switchboard.metrics import (
    FAILURE_MODES,
    RETRIEVAL_DECISIONS,
    RETRIEVAL_MARGIN,
    RETRIEVAL_TOP_SCORE,
    STEP_OUTCOMES,
    FailureMode,
    start_failure_modes,
    start_series,
    timed_call,
)
from switchboard.rpc import ToolHostClient
from switchboard.v1 import switchboard_pb2 as pb

log = logging.getLogger(__name__)
STAGE = "filter"


def entries(tools: Sequence[pb.ToolInfo]) -> list[ToolEntry]:
    return [
        ToolEntry(t.name, t.server, t.description, t.input_schema_json or "{}", t.confirmation_required) for t in tools
    ]


def caller_entries(tools: Sequence[pb.Candidate]) -> list[ToolEntry]:
    """A caller's tools (name, description, input schema) as the index knows a tool. They belong to no
    server of ours, and whether they change anything is not known, so none is marked as changing."""
    return [ToolEntry(t.tool, t.server, t.description, t.input_schema_json or "{}") for t in tools]


# What the filter makes of a step (`switchboard_retrieval_decisions_total`).
DECISION_CANDIDATES = "candidates"
DECISION_NO_TOOL_FITS = "no_tool_fits"


def observe_retrieval(ranked: Sequence[Ranked], fits: bool) -> None:
    """Count what the filter made of a step: the best candidate's similarity (the cosine the "no tool
    fits" threshold is compared with), how far the best fused score (the one candidates are ranked by)
    lies above the second's, and the decision."""
    if ranked:
        RETRIEVAL_TOP_SCORE.observe(max(r.dense for r in ranked))
    if len(ranked) > 1:
        first, second = sorted((r.score for r in ranked), reverse=True)[:2]
        RETRIEVAL_MARGIN.observe(first - second)
    RETRIEVAL_DECISIONS.labels(decision=DECISION_CANDIDATES if fits else DECISION_NO_TOOL_FITS).inc()


def candidates(ranked: list[Ranked]) -> list[pb.Candidate]:
    return [
        pb.Candidate(
            tool=r.tool.name,
            server=r.tool.server,
            score=r.score,
            description=r.tool.description,
            input_schema_json=r.tool.input_schema_json,
            similarity=r.dense,
        )
        for r in ranked
    ]


# Beside a trained encoder (services/filter/train.py): the requests it was trained on, by tool, and
# their embeddings, so the index can use them as example requests without embedding them again.
GENERATED_REQUESTS = "generated-requests.json"
GENERATED_VECTORS = "generated-requests.npy"


def load_generated(encoder_dir: Path) -> tuple[dict[str, list[str]], dict[str, np.ndarray]]:
    """The generated example requests kept beside an encoder, by tool, and their embeddings by text
    (as `dense_text` gives it); nothing for an encoder that has none (the base model, for one)."""
    texts_path, vectors_path = encoder_dir / GENERATED_REQUESTS, encoder_dir / GENERATED_VECTORS
    if not texts_path.is_file() or not vectors_path.is_file():
        return {}, {}
    try:
        records = json.loads(texts_path.read_text(encoding="utf-8"))["requests"]
        texts, tools = [str(r["text"]) for r in records], [str(r["tool"]) for r in records]
        vectors = np.load(vectors_path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(f"cannot read the generated requests beside {encoder_dir}: {exc}") from exc
    if len(texts) != len(vectors):
        raise ConfigurationError(f"{texts_path} and {vectors_path} do not match; run `make train` again")
    examples: dict[str, list[str]] = {}
    for text, tool in zip(texts, tools, strict=True):
        examples.setdefault(tool, []).append(text)
    return examples, {dense_text(t): v for t, v in zip(texts, vectors, strict=True)}


def merge_examples(*sources: dict[str, list[str]]) -> dict[str, list[str]]:
    merged: dict[str, list[str]] = {}
    for source in sources:
        for tool, texts in source.items():
            merged.setdefault(tool, []).extend(texts)
    return merged


def load_examples(path: Path) -> dict[str, list[str]]:
    """Example requests per tool; a missing file means none (the descriptions still work)."""
    if not path.exists():
        log.warning("no example requests at %s; ranking on descriptions only", path)
        return {}
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{path} must map tool names to lists of example requests")
    return {str(tool): [str(example) for example in examples or []] for tool, examples in raw.items()}


class ToolFilter:
    def __init__(
        self,
        encode: Encoder,
        toolhost: ToolHostClient,
        k: int,
        examples: dict[str, list[str]] | None = None,
        min_similarity: float = -1.0,
        dense_weight: float = DENSE_WEIGHT,
        known_vectors: dict[str, np.ndarray] | None = None,
        caller_tools_cached: int = CALLER_TOOLS_CACHED,
        caller_min_similarity: float = CALLER_NO_FIT_SIMILARITY,
    ) -> None:
        self.encode = encode
        self.toolhost = toolhost
        self.k = k
        self.examples = examples or {}
        self.min_similarity = min_similarity
        self.dense_weight = dense_weight
        self.known_vectors = known_vectors or {}
        self.index: ToolIndex | None = None
        self.caller_vectors = EmbeddingCache(caller_tools_cached)
        self.caller_min_similarity = caller_min_similarity
        start_failure_modes(STAGE, [FailureMode.NO_TOOL_FITS])
        start_series(RETRIEVAL_DECISIONS, ({"decision": d} for d in (DECISION_CANDIDATES, DECISION_NO_TOOL_FITS)))

    def _build(self, tools: list[ToolEntry]) -> ToolIndex:
        return ToolIndex(self.encode, tools, self.examples, self.dense_weight, known_vectors=self.known_vectors)

    async def build(self) -> None:
        """Wait for the catalogue and build the index from it."""
        tools = entries(await self.toolhost.wait_for_tools())
        self.index = await asyncio.to_thread(self._build, tools)
        log.info("tool index built: %d tools, %d example requests", len(tools), sum(map(len, self.examples.values())))

    async def refresh_forever(self, every_seconds: float) -> None:
        """Rebuild the index whenever the catalogue changes."""
        while True:
            await asyncio.sleep(every_seconds)
            try:
                tools = entries(await self.toolhost.list_tools())
            except UpstreamUnavailable as exc:
                log.warning("catalogue refresh skipped: %s", exc)
                continue
            if tools and (self.index is None or catalogue_digest(tools, self.examples) != self.index.digest):
                self.index = await asyncio.to_thread(self._build, tools)
                log.info("tool index rebuilt: %d tools", len(tools))

    async def rank(self, text: str, k: int | None = None) -> list[Ranked]:
        return (await self.assess(text, k)).ranked

    async def assess(self, text: str, k: int | None = None) -> Assessment:
        """The candidates for `text`, best first, and its change intent; no candidates when no tool is
        similar enough to it ("no tool fits": the router then asks what the person wants instead of
        calling something unrelated)."""
        if self.index is None:
            raise UpstreamUnavailable("the tool index is not built yet")
        assessment = await timed_call(STAGE, self.index.assess, text, k or self.k)
        return self._unless_nothing_fits(assessment, self.min_similarity)

    async def assess_tools(self, text: str, tools: Sequence[ToolEntry], k: int | None = None) -> Assessment:
        """As `assess`, over `tools` (a caller's own) instead of the catalogue: the same encoder and
        the same fused score. The tools carry no example requests, so only their names and
        descriptions are compared with the words, and "no tool fits" has a threshold of its own,
        `caller_min_similarity` (see `CALLER_NO_FIT_SIMILARITY`). Their embeddings are cached by name
        and description. The change intent is the catalogue's probe on the words (0 before the
        catalogue's index is built): it reads the request, whatever tools it is ranked against."""

        def assess() -> Assessment:
            query = embed_query(self.encode, text)
            known = self.caller_vectors.vectors(self.encode, tools)
            index = ToolIndex(self.encode, tools, dense_weight=self.dense_weight, known_vectors=known)
            ranked = index.assess(text, k or self.k, query).ranked
            catalogue = self.index
            return Assessment(ranked, catalogue.change_probe(query) if catalogue is not None else 0.0)

        return self._unless_nothing_fits(await timed_call(STAGE, assess), self.caller_min_similarity)

    def _unless_nothing_fits(self, assessment: Assessment, min_similarity: float) -> Assessment:
        """`assessment`, or no candidates when not one is closer to the words than `min_similarity`
        ("no tool fits": the router then asks what the person wants instead of calling something
        unrelated)."""
        fits = not no_tool_fits(assessment.ranked, min_similarity)
        observe_retrieval(assessment.ranked, fits)
        if not fits:
            FAILURE_MODES.labels(stage=STAGE, mode=FailureMode.NO_TOOL_FITS).inc()
            STEP_OUTCOMES.labels(stage=STAGE, outcome="no_tool_fits").inc()
            return Assessment([], assessment.change_intent)
        STEP_OUTCOMES.labels(stage=STAGE, outcome="ranked").inc()
        return assessment
