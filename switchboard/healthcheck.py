"""A container health check: `python -m switchboard.healthcheck HOST:PORT`.

Exits 0 when the gRPC server at HOST:PORT answers SERVING on `grpc.health.v1`, and 1 otherwise, after
printing one line that says which. Docker reserves exit code 2 in health checks, so a usage error
exits 1 too.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from switchboard.status import HEALTH_TIMEOUT_SECONDS, grpc_healthy

EXIT_SERVING = 0
EXIT_NOT_SERVING = 1
USAGE = "usage: python -m switchboard.healthcheck HOST:PORT"


def is_host_port(addr: str) -> bool:
    """True for `host:port` with a host and a numeric port (`[::1]:7315` included)."""
    host, sep, port = addr.rpartition(":")
    return bool(host) and bool(sep) and port.isdigit()


def check_serving(addr: str) -> tuple[int, str]:
    """The exit code and the one line to print for the server at `addr`."""
    if grpc_healthy(addr):
        return EXIT_SERVING, f"{addr}: SERVING"
    return EXIT_NOT_SERVING, (
        f"{addr}: not SERVING (connection refused, no answer within {HEALTH_TIMEOUT_SECONDS:g}s, "
        "or the service reports NOT_SERVING)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Check the address given on the command line; return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or not is_host_port(args[0]):
        print(USAGE, file=sys.stderr)
        return EXIT_NOT_SERVING
    code, line = check_serving(args[0])
    print(line, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
