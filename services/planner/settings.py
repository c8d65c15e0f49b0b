"""The planner's settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from switchboard.settings import CommonSettings, default_llm_path


class PlannerSettings(CommonSettings):
    planner_model: Path = Field(default_factory=default_llm_path, description="GGUF file of the planner's model.")
    planner_threads: int = Field(0, ge=0, description="llama.cpp threads; 0 means one per core.")
