"""Configuration: the one place that decides where Temporal is and how to reach it.

Two layers:

- `DevServerConfig`: `temporal-dev.yaml`, the settings of the embedded dev server and the
  defaults every client falls back to. Relative paths in it are relative to the file.
- `ClientSettings`: what a client (worker, CLI, tests) connects with, resolved with the
  precedence command-line flags > environment (or a Temporal env-config profile) > the YAML.

`connect` turns `ClientSettings` into a `temporalio.client.Client` with the pydantic data
converter, and fails fast with one readable line when nobody answers.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SecretBytes,
    SecretStr,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfigProfile
from temporalio.service import RPCError, TLSConfig

from coordinator.claude import ClaudeSettings
from coordinator.environment import CONFINE_VARIABLE, WorkerConfine, parse_worker_confine
from coordinator.hosts import DEFAULT_HOST_GRACE_S
from coordinator.visibility import SEARCH_ATTRIBUTES, SearchAttributeType

CONFIG_FILE_NAME = "temporal-dev.yaml"
PROJECT_CONFIG = Path(__file__).resolve().parents[1] / CONFIG_FILE_NAME

LogLevel = Literal["debug", "info", "warn", "error", "never"]
Port = Annotated[int, Field(ge=1, le=65535)]
# The dev server takes `--search-attribute KEY=Type` / `--dynamic-config-value KEY=JSON`.
SearchAttributeName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
HostId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")]
DynamicConfigKey = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A configuration problem, worded for the user (names the file and the key)."""


class TemporalUnreachableError(Exception):
    """No Temporal server answered. `str()` is one line, ready to print."""

    def __init__(self, address: str, namespace: str, reason: str) -> None:
        self.address = address
        self.namespace = namespace
        self.reason = reason
        super().__init__(
            f"cannot reach Temporal at {address} (namespace {namespace}): {reason}. "
            "Start one with 'coord server --detach' or set TEMPORAL_ADDRESS."
        )


# --------------------------------------------------------------------------- temporal-dev.yaml


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Make a path absolute against the YAML file's folder (passed as validation context)."""
    context = info.context if isinstance(info.context, dict) else {}
    base = context.get("base_dir") or Path.cwd()
    return Path(os.path.normpath(Path(base) / value.expanduser()))


ResolvedPath = Annotated[Path, AfterValidator(_resolve_path)]


# Defaults mirror the project's temporal-dev.yaml (a test checks they agree): workflows upsert
# these attributes, and upserting an unregistered one fails the workflow task.
_DEFAULT_DYNAMIC_CONFIG: dict[str, JsonValue] = {
    "history.transferProcessorMaxPollRPS": 200,
    "frontend.enableUpdateWorkflowExecution": True,
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class ServerSection(_Section):
    ip: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    port: Port = 7233
    ui_port: Port | None = 8233  # None: port + 1000, like the dev server itself
    headless: bool = False
    db_file: ResolvedPath | None = Path(".temporal/coord.db")  # None: in memory, lost on stop
    namespace: Annotated[str, Field(min_length=1)] = "default"
    log_level: LogLevel = "warn"
    state_dir: ResolvedPath = Path(".temporal")
    search_attributes: dict[SearchAttributeName, SearchAttributeType] = Field(
        default_factory=SEARCH_ATTRIBUTES.copy
    )
    dynamic_config: dict[DynamicConfigKey, JsonValue] = Field(
        default_factory=_DEFAULT_DYNAMIC_CONFIG.copy
    )

    @model_validator(mode="after")
    def _distinct_ports(self) -> ServerSection:
        if not self.headless and self.effective_ui_port == self.port:
            raise ValueError(f"ui_port {self.effective_ui_port} is the gRPC port; pick another")
        return self

    @property
    def effective_ui_port(self) -> int:
        return self.ui_port if self.ui_port is not None else self.port + 1000

    @property
    def address(self) -> str:
        """Where clients connect: a wildcard bind address is reached through loopback."""
        return _host_port(_client_host(self.ip), self.port)

    @property
    def ui_url(self) -> str | None:
        if self.headless:
            return None
        return f"http://{_host_port(_client_host(self.ip), self.effective_ui_port)}"


class ClientSection(_Section):
    task_queue: Annotated[str, Field(min_length=1)] = "coordinator"


class WorkerSection(_Section):
    workspace_root: ResolvedPath = Path(".coord/workspaces")
    artifacts_root: ResolvedPath = Path(".coord/artifacts")
    state_dir: ResolvedPath = Path(".coord")  # pid and log files of `coord worker --detach`
    # Several workers (coordinator/hosts.py): this worker's host id (default: hostname and a
    # hash of the workspace root), where execution branches are published when the
    # repository has no remote to push to (default: `shared` beside the workspace root; on
    # several machines a path every worker mounts), and how long an execution waits for a
    # silent worker before it moves to another one.
    host_id: HostId | None = None
    shared_root: ResolvedPath | None = None
    host_grace: Annotated[float, Field(gt=0)] = DEFAULT_HOST_GRACE_S
    publish_to_remote: bool = True
    # Plan commands in the bubblewrap jail when bwrap works here (auto), or never (off).
    confine: WorkerConfine = "auto"


class DevServerConfig(_Section):
    """`temporal-dev.yaml`, validated, with every path absolute."""

    server: ServerSection
    client: ClientSection
    worker: WorkerSection
    claude: ClaudeSettings = Field(default_factory=ClaudeSettings)

    @model_validator(mode="before")
    @classmethod
    def _sections_default(cls, data: Any) -> Any:
        # A missing section is validated from {} so its paths resolve against the file too.
        if isinstance(data, dict):
            return {key: {} for key in ("server", "client", "worker", "claude")} | {
                k: ({} if v is None else v) for k, v in data.items()
            }
        return data

    @classmethod
    def defaults(cls, base_dir: Path | None = None) -> DevServerConfig:
        return cls.model_validate({}, context={"base_dir": base_dir or Path.cwd()})


def _client_host(ip: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(ip, ip)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def find_config(start: Path | None = None) -> Path | None:
    """`$COORD_CONFIG`, else the nearest temporal-dev.yaml up from `start` (default: the
    working directory), else the project's own copy, else None."""
    if env := os.environ.get("COORD_CONFIG"):
        return Path(env).expanduser().absolute()
    here = (start or Path.cwd()).absolute()
    for folder in (here, *here.parents):
        if (candidate := folder / CONFIG_FILE_NAME).is_file():
            return candidate
    return PROJECT_CONFIG if PROJECT_CONFIG.is_file() else None


def load_config(path: Path | None = None) -> DevServerConfig:
    """Load and validate temporal-dev.yaml (found with `find_config` when `path` is None);
    the built-in defaults when there is none. Raises ConfigError naming file, line and key."""
    if path is None:
        path = find_config()
        if path is None:
            return DevServerConfig.defaults()
    path = path.expanduser().absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from exc
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # PyYAML's constructors raise these for odd scalars (e.g. a date like 2024-13-45).
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with sections server, client, worker")
    try:
        return DevServerConfig.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as exc:
        raise ConfigError(_describe_errors(path, text, exc)) from exc


def _describe_errors(path: Path, text: str, exc: ValidationError) -> str:
    """One line per problem: `file:line: server.port: message`."""
    try:
        root: yaml.Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        root = None
    lines = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        line = _line_of(root, loc)
        where = f"{path}:{line}" if line else str(path)
        lines.append(f"{where}: {'.'.join(loc) or '(top level)'}: {error['msg']}")
    return "\n".join(lines)


def _line_of(node: yaml.Node | None, loc: list[str]) -> int | None:
    """The 1-based line of the deepest YAML node on `loc` that exists."""
    line = None
    for key in loc:
        if not isinstance(node, yaml.MappingNode):
            break
        for key_node, value_node in node.value:
            if key_node.value == key:
                line = key_node.start_mark.line + 1
                node = value_node
                break
        else:
            break
    return line


# --------------------------------------------------------------------------- client settings


class ClientSettings(BaseModel):
    """Everything a client needs to reach Temporal and find its files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str
    namespace: str
    task_queue: str
    api_key: SecretStr | None = None
    tls: bool = False
    tls_cert_path: Path | None = None
    tls_key_path: Path | None = None
    tls_ca_path: Path | None = None
    # Inline PEM data from an env-config profile or TEMPORAL_TLS_*_DATA (paths win).
    tls_cert_data: SecretBytes | None = None
    tls_key_data: SecretBytes | None = None
    tls_ca_data: SecretBytes | None = None
    tls_server_name: str | None = None
    rpc_metadata: dict[str, str] = Field(default_factory=dict)
    ui_url: str | None = None  # Web UI base, e.g. http://127.0.0.1:8233
    workspace_root: Path
    artifacts_root: Path
    # Several workers (temporal-dev.yaml `worker:`; coordinator/hosts.py).
    host_id: str | None = None
    shared_root: Path | None = None
    host_grace_s: float = DEFAULT_HOST_GRACE_S
    publish_to_remote: bool = True
    confine: WorkerConfine = "auto"
    # The worker's Claude agent loop: models, prices, limits (temporal-dev.yaml `claude:`).
    claude: ClaudeSettings = Field(default_factory=ClaudeSettings)


def resolve_client_settings(
    *,
    address: str | None = None,
    namespace: str | None = None,
    task_queue: str | None = None,
    profile: str | None = None,
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> ClientSettings:
    """Resolve client settings: explicit arguments (CLI flags) > environment, or a Temporal
    env-config profile (read only when `profile`, TEMPORAL_PROFILE or TEMPORAL_CONFIG_FILE is
    given, so a stray ~/.config/temporalio file never redirects the local demo) >
    temporal-dev.yaml."""
    env = dict(os.environ if environ is None else environ)
    config = load_config(config_path)
    prof = _load_profile(profile, env)
    tls_env = _parse_bool("TEMPORAL_TLS", env.get("TEMPORAL_TLS"))

    resolved_address = address or prof.address or config.server.address
    resolved_namespace = namespace or prof.namespace or config.server.namespace
    api_key = prof.api_key or None

    tls_cfg = prof.tls
    cert_path, cert_data = _split_source(tls_cfg.client_cert if tls_cfg else None)
    key_path, key_data = _split_source(tls_cfg.client_private_key if tls_cfg else None)
    ca_path, ca_data = _split_source(tls_cfg.server_root_ca_cert if tls_cfg else None)
    server_name = tls_cfg.server_name if tls_cfg else None
    explicit_tls = tls_env
    if explicit_tls is None and tls_cfg is not None and tls_cfg.disabled is not None:
        explicit_tls = not tls_cfg.disabled
    any_tls_material = any((cert_path, cert_data, key_path, key_data, ca_path, ca_data))
    # An API key (or certificates) implies TLS unless TLS is explicitly off.
    tls = explicit_tls if explicit_tls is not None else bool(api_key or any_tls_material)

    ui_url = env.get("COORD_UI_URL") or None
    if ui_url is None:
        if _same_endpoint(resolved_address, config.server.address):
            ui_url = config.server.ui_url  # the YAML's dev server: its UI is known
        elif _is_temporal_cloud(resolved_address):
            ui_url = "https://cloud.temporal.io"

    workspace_root = _env_path(env, "COORD_WORKSPACE_ROOT") or config.worker.workspace_root
    host_id = env.get("COORD_HOST_ID") or config.worker.host_id
    if host_id is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", host_id):
        raise ConfigError(f"COORD_HOST_ID={host_id!r}: use 1-100 of A-Z a-z 0-9 _ . -")
    publish = _parse_bool("COORD_PUBLISH_TO_REMOTE", env.get("COORD_PUBLISH_TO_REMOTE"))
    confine = config.worker.confine
    if env.get(CONFINE_VARIABLE, "").strip():
        try:
            confine = parse_worker_confine(env[CONFINE_VARIABLE])
        except ValueError as err:
            raise ConfigError(str(err)) from err
    return ClientSettings(
        address=resolved_address,
        namespace=resolved_namespace,
        task_queue=task_queue or env.get("COORD_TASK_QUEUE") or config.client.task_queue,
        api_key=SecretStr(api_key) if api_key else None,
        tls=tls,
        tls_cert_path=cert_path,
        tls_key_path=key_path,
        tls_ca_path=ca_path,
        tls_cert_data=SecretBytes(cert_data) if cert_data else None,
        tls_key_data=SecretBytes(key_data) if key_data else None,
        tls_ca_data=SecretBytes(ca_data) if ca_data else None,
        tls_server_name=server_name,
        rpc_metadata=dict(prof.grpc_meta),
        ui_url=ui_url.rstrip("/") if ui_url else None,
        workspace_root=workspace_root,
        artifacts_root=_env_path(env, "COORD_ARTIFACTS_ROOT") or config.worker.artifacts_root,
        host_id=host_id,
        shared_root=_env_path(env, "COORD_SHARED_ROOT")
        or config.worker.shared_root
        or workspace_root.parent / "shared",
        host_grace_s=_seconds("COORD_HOST_GRACE", env.get("COORD_HOST_GRACE"))
        or config.worker.host_grace,
        publish_to_remote=config.worker.publish_to_remote if publish is None else publish,
        confine=confine,
        claude=config.claude,
    )


def _load_profile(profile: str | None, env: dict[str, str]) -> ClientConfigProfile:
    """The SDK's env-config: a TOML profile (when asked for) with TEMPORAL_* env overrides."""
    config_file = env.get("TEMPORAL_CONFIG_FILE")
    if config_file and not Path(config_file).expanduser().is_file():
        raise ConfigError(f"TEMPORAL_CONFIG_FILE={config_file}: no such file")
    use_file = bool(profile or env.get("TEMPORAL_PROFILE") or config_file)
    try:
        return ClientConfigProfile.load(
            profile=profile, disable_file=not use_file, override_env_vars=env
        )
    except Exception as exc:  # the bridge raises its own ConfigError type
        source = config_file or "the default Temporal config file"
        raise ConfigError(f"Temporal client config ({source}): {exc}") from exc


def _split_source(source: Path | str | bytes | None) -> tuple[Path | None, bytes | None]:
    if isinstance(source, Path):
        return source.expanduser(), None
    if isinstance(source, str):
        return None, source.encode()
    return None, source


def _parse_bool(name: str, value: str | None) -> bool | None:
    if value is None or not value.strip():
        return None
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise ConfigError(f"{name}={value!r}: expected true or false")


def _seconds(name: str, value: str | None) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigError(f"{name}={value!r}: expected a number of seconds above 0")
    return seconds


def _env_path(env: Mapping[str, str], name: str) -> Path | None:
    value = env.get(name)
    return Path(value).expanduser().absolute() if value else None


_LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]"}


def _same_endpoint(a: str, b: str) -> bool:
    """host:port equality that treats the loopback spellings as one host."""
    (host_a, _, port_a), (host_b, _, port_b) = a.rpartition(":"), b.rpartition(":")
    if port_a != port_b:
        return False
    return host_a == host_b or (host_a in _LOOPBACK and host_b in _LOOPBACK)


def _is_temporal_cloud(address: str) -> bool:
    host = address.rsplit(":", 1)[0]
    return host.endswith((".tmprl.cloud", ".api.temporal.io"))


# --------------------------------------------------------------------------- connecting


async def connect(settings: ClientSettings, *, timeout: float = 10.0) -> Client:
    """A client with the pydantic data converter. Raises TemporalUnreachableError (one line)
    when nobody answers within `timeout` seconds, and ConfigError for unreadable TLS files."""
    tls = _tls_config(settings)
    try:
        return await asyncio.wait_for(
            Client.connect(
                settings.address,
                namespace=settings.namespace,
                api_key=settings.api_key.get_secret_value() if settings.api_key else None,
                tls=tls,
                rpc_metadata=settings.rpc_metadata,
                data_converter=pydantic_data_converter,
                # Bounds each TCP attempt; wait_for bounds the SDK's internal retries.
                connect_timeout=timedelta(seconds=min(5.0, timeout)),
            ),
            timeout,
        )
    except TimeoutError:
        reason = f"no answer within {timeout:g} s"
    except Exception as exc:  # bridge RuntimeError, RPCError, bad TLS material...
        reason = short_reason(exc)
    raise TemporalUnreachableError(settings.address, settings.namespace, reason)


def _tls_config(settings: ClientSettings) -> bool | TLSConfig:
    if not settings.tls:
        return False  # explicit False: an API key alone must not switch TLS back on

    def material(path: Path | None, data: SecretBytes | None, what: str) -> bytes | None:
        if path is not None:
            try:
                return path.read_bytes()
            except OSError as exc:
                raise ConfigError(f"TLS {what} {path}: {exc.strerror or exc}") from exc
        return data.get_secret_value() if data is not None else None

    cert = material(settings.tls_cert_path, settings.tls_cert_data, "client certificate")
    key = material(settings.tls_key_path, settings.tls_key_data, "client key")
    ca = material(settings.tls_ca_path, settings.tls_ca_data, "server CA certificate")
    if not any((cert, key, ca, settings.tls_server_name)):
        return True
    return TLSConfig(
        domain=settings.tls_server_name,
        server_root_ca_cert=ca,
        client_cert=cert,
        client_private_key=key,
    )


def short_reason(exc: BaseException) -> str:
    """Boil an SDK/bridge connection error down to a few words for one line of output."""
    if isinstance(exc, RPCError):
        return f"{exc.status.name.lower()}: {exc.message}".strip().rstrip(".")
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "dns error" in text:
        return "cannot resolve the host name"
    if match := re.search(r'message: "([^"]+)"', text):
        return match.group(1).lower()
    if "timed out" in text.lower() or "timeout" in text.lower():
        return "connection timed out"
    text = text.removeprefix("Failed client connect: ")
    return text if len(text) <= 160 else text[:157] + "..."


def execution_ui_url(
    settings: ClientSettings, workflow_id: str, run_id: str | None = None
) -> str | None:
    """The Web UI page of one execution, or None when the UI is unknown."""
    if not settings.ui_url:
        return None
    url = (
        f"{settings.ui_url}/namespaces/{quote(settings.namespace, safe='')}"
        f"/workflows/{quote(workflow_id, safe='')}"
    )
    return f"{url}/{quote(run_id, safe='')}" if run_id else url
