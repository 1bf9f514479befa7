"""Node settings: ``<data-dir>/node.toml``, overridden by ``ALLIANCE_*`` environment variables."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from node.core.periodic import parse_schedule

CONFIG_FILE = "node.toml"
KEY_FILE = "node.key"
DATA_KEY_FILE = "data.key"  # field-encryption key: back it up apart from the database
VKEY_FILE = "node.vkey"
WITNESS_VKEY_FILE = "witness.vkey"
DEFAULT_LOGS = ("audit", "exchange")
REGISTRY_FILE = "registry.toml"
NODE_ID = re.compile(r"[A-Za-z0-9._:-]{1,200}")


def default_data_dir() -> Path:
    """``ALLIANCE_DATA_DIR`` if set, else the current directory."""
    return Path(os.environ.get("ALLIANCE_DATA_DIR") or ".")


class Peer(BaseModel):
    """Another brand's node whose logs this node witnesses and whose witness it asks."""

    node_id: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,200}$")
    vkey: str
    url: str | None = None
    region: str = Field(default="CN", pattern=r"^[A-Z]{2}$", description="ISO 3166 alpha-2 code of where it is hosted")


KIB = 1024


class BodyLimits(BaseModel):
    """The largest request body, in bytes, each family of routes accepts; larger ones get 413 before being read."""

    default: int = Field(
        default=8 * KIB, ge=KIB, description="every route not below: members, consents, me, purchases, features"
    )
    documents: int = Field(
        default=256 * KIB, ge=KIB, description="privacy notices and impact assessments (/v1/notices, /v1/pia)"
    )
    peer: int = Field(
        default=4096 * KIB,
        ge=KIB,
        description="signed node-to-node calls (/v1/peer/); a settlement statement of about 60,000 exchanges fits",
    )
    witness: int = Field(default=64 * KIB, ge=KIB, description="C2SP tlog-witness checkpoints (/v1/witness/)")
    bulk: int = Field(
        default=256 * KIB, ge=KIB, description="a till's batch of up to 1,000 purchases (/v1/purchases:batch)"
    )


ScheduleText = Annotated[str, AfterValidator(lambda text: parse_schedule(text).text)]


class Jobs(BaseModel):
    """When ``serve`` runs each daily duty: ``daily HH:MM`` in ``timezone``, ``every N m|h``, or ``off``."""

    timezone: str = Field(default="Asia/Shanghai", description="the zone of the daily times (IANA name)")
    points_expire: ScheduleText = Field(default="daily 01:00", description="expire what is left of lots past their day")
    rights_escalate: ScheduleText = Field(
        default="daily 02:00", description="escalate open rights requests past their deadline (audited)"
    )
    retention_purge: ScheduleText = Field(
        default="daily 03:00", description="delete records past their retention that no hold keeps (audited)"
    )
    witness_request: ScheduleText = Field(
        default="every 60m", description="have peers with a URL cosign each log's newest checkpoint"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Asia/Shanghai)") from exc
        return value

    def schedules(self) -> dict[str, str]:
        """Each duty's schedule text, by duty name."""
        return {k: v for k, v in self.model_dump().items() if k != "timezone"}


class RateLimits(BaseModel):
    """Budgets per minute (429 with Retry-After past them), kept in the serving process."""

    member_writes_per_minute: int = Field(
        default=60,
        ge=1,
        description="actions one member triggers that append audit events: consents, rights requests, scores, links",
    )
    failed_auth_per_minute: int = Field(
        default=10, ge=1, description="failed authentications with one presented credential before it must wait"
    )


class NodeSettings(BaseSettings):
    """Everything a node needs to run; defaults suit one node on one machine."""

    model_config = SettingsConfigDict(env_prefix="ALLIANCE_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    node_id: str = Field(description="The node's name: its key name and the prefix of its log origins.")
    display_name: str = ""
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite file in data_dir")
    key_file: str = KEY_FILE
    region: str = Field(
        default="CN",
        pattern=r"^[A-Z]{2}$",
        description="ISO 3166 alpha-2 code of where the node and its data are hosted",
    )
    allowed_regions: list[Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]] = Field(
        default_factory=lambda: ["CN"],
        description="regions personal information may be sent to (still subject to consent and mechanisms)",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8470, ge=1, le=65535)
    sqlite_synchronous: str = "FULL"
    sqlite_busy_timeout: float = Field(default=30.0, gt=0, description="seconds a writer waits for SQLite's lock")
    peers: list[Peer] = Field(default_factory=list)
    registry_file: str = Field(default=REGISTRY_FILE, description="the alliance registry, relative to data_dir")
    points_per_yuan: int = Field(default=1, ge=0, le=1000, description="points a member earns per yuan spent")
    points_expiry_months: int = Field(default=24, ge=1, le=120, description="lifetime of newly earned points")
    recovery_interval: float = Field(
        default=5.0, gt=0, description="seconds between retries of unfinished exchanges while serving"
    )
    exchange_batch_max: int = Field(
        default=64, ge=1, le=512, description="most exchanges (credits and cancels) sent to one node in one peer call"
    )
    exchange_batch_linger_ms: float = Field(
        default=2.0,
        ge=0,
        le=100,
        description="how long a batch waits for exchanges already under way before it is sent (never when alone)",
    )
    session_minutes: int = Field(
        default=30, ge=1, le=720, description="how long a console or privacy-centre session lasts after sign-in"
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="serve's log lines: readable text, or one JSON object per line"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", description="the level of the node's own loggers (other libraries log warnings and up)"
    )
    metrics: bool = Field(
        default=True, description="serve /metrics (Prometheus) on the API port; it holds counts, never personal data"
    )
    chain_rpc_url: str | None = Field(default=None, description="EVM JSON-RPC URL; anchoring is off without it")
    chain_anchor_address: str | None = Field(default=None, description="the alliance's Anchor contract")
    chain_settlement_address: str | None = Field(default=None, description="the alliance's Settlement contract")
    chain_account: str | None = Field(default=None, description="this node's account on the chain (unlocked there)")
    chain_key_file: str | None = Field(
        default=None, description="hex private key signing this node's transactions locally (relative to data_dir)"
    )
    cross_brand_epsilon: float = Field(
        default=3.0, gt=0, le=20, description="as a partner in a cross-brand run: the most epsilon one run may spend"
    )
    cross_brand_delta: float = Field(default=1e-5, gt=0, le=1e-3, description="as a partner: the delta of its spends")
    cross_brand_max_rounds: int = Field(default=5, ge=1, le=50, description="as a partner: the most rounds of a run")
    psi_max_points: int = Field(
        default=2_000_000, ge=1000, description="the most points another node may send in one PSI run"
    )
    anchor_every_entries: int = Field(default=1000, ge=1, description="anchor a log after this many new entries")
    anchor_every_seconds: float = Field(default=600.0, gt=0, description="or after this long with any new entry")
    body_limits: BodyLimits = Field(
        default_factory=BodyLimits,
        description=(
            "request body caps in bytes by route family (default 8 KiB, documents 256 KiB, peer 4 MiB, witness"
            " 64 KiB); a [body_limits] table in node.toml or ALLIANCE_BODY_LIMITS='{\"peer\": 8388608}'"
        ),
    )
    jobs: Jobs = Field(
        default_factory=Jobs,
        description="the schedules of serve's daily duties; a [jobs] table in node.toml (serve --no-jobs: none)",
    )
    rate_limits: RateLimits = Field(
        default_factory=RateLimits,
        description="per minute: 60 audited actions per member, 10 failed authentications per credential; a"
        " [rate_limits] table in node.toml",
    )

    @field_validator("node_id")
    @classmethod
    def _node_id_is_a_key_name(cls, v: str) -> str:
        # It names the node's key and prefixes its log origins (`<node_id>/<log>`): no '/' so that
        # one peer's origins can never fall under another's, no spaces or '+' (note key names).
        if not NODE_ID.fullmatch(v):
            raise ValueError(
                "node_id must be 1-200 letters, digits, '.', '_', ':' or '-', e.g. airline.alliance.example"
            )
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments first, then the environment, then ``node.toml`` in the data directory."""
        data_dir = Path(init_settings.init_kwargs.get("data_dir") or default_data_dir())  # type: ignore[attr-defined]
        toml = TomlConfigSettingsSource(settings_cls, toml_file=data_dir / CONFIG_FILE)
        return init_settings, env_settings, toml

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _any_case(cls, value: object, info: ValidationInfo) -> object:
        """``json``/``JSON``, ``info``/``INFO``, ``warn``: what the command line's logging also accepts."""
        if not isinstance(value, str):
            return value
        if info.field_name == "log_format":
            return value.strip().lower()
        level = value.strip().upper()
        return {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(level, level)

    @property
    def db_url(self) -> str:
        """The database URL, defaulting to ``sqlite:///<data_dir>/node.db``."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'node.db').resolve()}"

    @property
    def registry_path(self) -> Path:
        """Where the alliance registry is read from."""
        return self.data_dir / self.registry_file

    @property
    def key_path(self) -> Path:
        """Where the node's private key lives."""
        return self.data_dir / self.key_file

    def origin(self, log: str) -> str:
        """The checkpoint origin of this node's log ``log``."""
        return f"{self.node_id}/{log}"


def load_settings(data_dir: Path, **overrides: object) -> NodeSettings:
    """Load the settings of the node in ``data_dir``; a clear error if it was never initialised."""
    if not (data_dir / CONFIG_FILE).exists() and "node_id" not in overrides:
        if (data_dir / KEY_FILE).exists():  # a node whose config was lost: init writes a fresh one for its key
            raise FileNotFoundError(
                f"{data_dir / CONFIG_FILE} is missing but this node's key is there: restore node.toml from a backup,"
                f" or run `alliance-node init --node-id <the key's node id> --data-dir {data_dir}` (with"
                " --database-url if the database is not node.db here) to write a fresh one (default settings)"
                " for the existing key and its database"
            )
        raise FileNotFoundError(
            f"{data_dir / CONFIG_FILE} does not exist: run `alliance-node init --data-dir {data_dir}`"
        )
    return NodeSettings(data_dir=data_dir, **overrides)  # type: ignore[arg-type]


def write_config(settings: NodeSettings) -> None:
    """Write ``node.toml`` readable by the node's user only (it may hold a database password)."""
    path = settings.data_dir / CONFIG_FILE
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(render_toml(settings))
    os.replace(tmp, path)  # never a half-written config


def render_toml(settings: NodeSettings) -> str:
    """Render the persistent part of ``settings`` as TOML (strings are JSON-quoted, valid TOML)."""
    lines = [
        "# Alliance node configuration. ALLIANCE_<FIELD> environment variables override these.",
        f"node_id = {json.dumps(settings.node_id)}",
        f"display_name = {json.dumps(settings.display_name)}",
        f"region = {json.dumps(settings.region)}",
        f"allowed_regions = {json.dumps(settings.allowed_regions)}",
        f"host = {json.dumps(settings.host)}",
        f"port = {settings.port}",
        f"key_file = {json.dumps(settings.key_file)}",
        f"sqlite_synchronous = {json.dumps(settings.sqlite_synchronous)}",
        f"sqlite_busy_timeout = {settings.sqlite_busy_timeout}",
        f"registry_file = {json.dumps(settings.registry_file)}",
        f"points_per_yuan = {settings.points_per_yuan}",
        f"points_expiry_months = {settings.points_expiry_months}",
        f"recovery_interval = {settings.recovery_interval}",
    ]
    for key, default in (("log_format", "text"), ("log_level", "INFO")):
        if getattr(settings, key) != default:
            lines.append(f"{key} = {json.dumps(getattr(settings, key))}")
    if not settings.metrics:
        lines.append("metrics = false")
    if settings.database_url:
        lines.append(f"database_url = {json.dumps(settings.database_url)}")
    for key in ("chain_rpc_url", "chain_anchor_address", "chain_settlement_address", "chain_account", "chain_key_file"):
        if getattr(settings, key):
            lines.append(f"{key} = {json.dumps(getattr(settings, key))}")
    if settings.chain_rpc_url:
        lines.append(f"anchor_every_entries = {settings.anchor_every_entries}")
        lines.append(f"anchor_every_seconds = {settings.anchor_every_seconds}")
    if settings.body_limits != BodyLimits():  # a table: after every top-level key, before [[peers]]
        lines += ["", "[body_limits]", *(f"{k} = {v}" for k, v in settings.body_limits.model_dump().items())]
    if settings.jobs != Jobs():
        lines += ["", "[jobs]", *(f"{k} = {json.dumps(v)}" for k, v in settings.jobs.model_dump().items())]
    if settings.rate_limits != RateLimits():
        lines += ["", "[rate_limits]", *(f"{k} = {v}" for k, v in settings.rate_limits.model_dump().items())]
    for peer in settings.peers:
        lines += ["", "[[peers]]", f"node_id = {json.dumps(peer.node_id)}", f"vkey = {json.dumps(peer.vkey)}"]
        if peer.url:
            lines.append(f"url = {json.dumps(peer.url)}")
        lines.append(f"region = {json.dumps(peer.region)}")
    return "\n".join(lines) + "\n"
