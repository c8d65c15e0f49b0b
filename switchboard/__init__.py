"""Code every Switchboard service shares: stream envelope and workers, settings, telemetry, stubs."""
