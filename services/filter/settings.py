"""The filter's settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from switchboard.settings import CommonSettings, default_embedding_path


class FilterSettings(CommonSettings):
    embedding_model: Path = Field(
        default_factory=default_embedding_path, description="sentence-transformers model folder."
    )
    filter_examples: Path = Field(
        default_factory=lambda: Path(__file__).with_name("examples.yaml"),
        description="Example requests per tool (YAML: tool name → list of requests).",
    )
    filter_k: int = Field(15, ge=1, le=100, description="Candidates handed to the router per step.")
    filter_refresh_seconds: float = Field(30.0, gt=0, description="How often the catalogue is checked for changes.")
