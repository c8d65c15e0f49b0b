"""The gateway's own rules for what it accepts at the edge."""

from __future__ import annotations

# The longest request the API accepts, in characters.
MAX_TEXT_CHARS = 4000
