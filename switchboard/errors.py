"""Named errors shared by all services. Each stage maps them to a gRPC status or a step outcome."""

from __future__ import annotations


class SwitchboardError(Exception):
    """Base of every error Switchboard raises on purpose."""


class ConfigurationError(SwitchboardError):
    """A setting is missing or points at something that does not exist."""


class MalformedMessage(SwitchboardError):
    """A stream entry or request body could not be parsed."""


class NotFound(SwitchboardError):
    """A run, step or tool that was asked for does not exist."""


class InvalidRequest(SwitchboardError):
    """A request is well-formed but cannot be carried out as asked."""


class Unauthorized(SwitchboardError):
    """A request lacks valid credentials or a call lacks a valid approval."""


class UpstreamUnavailable(SwitchboardError):
    """A service this one depends on did not answer."""
