"""The gateway's settings."""

from __future__ import annotations

from switchboard.settings import CommonSettings


class GatewaySettings(CommonSettings):
    """The gateway needs only the common settings (its HTTP port and how many runs are kept among them)."""
