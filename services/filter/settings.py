"""The filter's settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from services.filter.core import CALLER_NO_FIT_SIMILARITY, CALLER_TOOLS_CACHED, DENSE_WEIGHT
from switchboard.settings import PROJECT_ROOT, CommonSettings

# Where `make train` puts the encoder fine-tuned for routing (services/filter/train.py).
TRAINED_ENCODER = PROJECT_ROOT / "models" / "filter-encoder"
# Set on the dev halves with the trained encoder (docs/benchmarks.md): requests no tool serves fall
# below it, the legitimate requests of the dev suites all but never do. Another encoder needs its own.
NO_FIT_SIMILARITY = 0.50


class FilterSettings(CommonSettings):
    embedding_model: Path = Field(
        TRAINED_ENCODER,
        description="sentence-transformers model folder: the encoder `make train` fine-tuned, or any other.",
    )
    filter_examples: Path = Field(
        default_factory=lambda: Path(__file__).with_name("examples.yaml"),
        description="Example requests per tool (YAML: tool name → list of requests).",
    )
    filter_k: int = Field(15, ge=1, le=100, description="Candidates handed to the router per step.")
    filter_dense_weight: float = Field(
        DENSE_WEIGHT, ge=0.0, le=1.0, description="Weight of embedding similarity against BM25 in the fused score."
    )
    filter_min_similarity: float = Field(
        NO_FIT_SIMILARITY,
        ge=-1.0,
        le=1.0,
        description="Below this cosine similarity to every tool, no tool fits and the step asks back.",
    )
    filter_caller_min_similarity: float = Field(
        CALLER_NO_FIT_SIMILARITY,
        ge=-1.0,
        le=1.0,
        description="As filter_min_similarity, for tools a caller sends (the OpenAI-compatible endpoint): "
        "they have no example requests, so they are matched on their descriptions alone.",
    )
    filter_caller_tools_cached: int = Field(
        CALLER_TOOLS_CACHED,
        ge=1,
        description="Embeddings of callers' own tools kept (the OpenAI-compatible endpoint sends them); "
        "the least recently used go first.",
    )
    filter_refresh_seconds: float = Field(30.0, gt=0, description="How often the catalogue is checked for changes.")
    filter_threads: int = Field(
        1,
        ge=1,
        description="Threads the encoder and the scoring use. One request is a handful of tokens: more "
        "threads finish it no sooner, and spin the cores the rest of the pipeline needs.",
    )
