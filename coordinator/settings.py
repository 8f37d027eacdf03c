"""Configuration, as data: `temporal-dev.yaml` (`DevServerConfig`: the embedded dev server
and the defaults every client falls back to; relative paths in it are relative to the file)
and `ClientSettings` (what a client connects with).

Pure: reading the file and the environment and connecting live with the faces
(cli/config_file.py, cli/temporal_client.py)."""

from __future__ import annotations

import os
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

from coordinator.claude import ClaudeSettings
from coordinator.environment import WorkerConfine
from coordinator.hosts import DEFAULT_HOST_GRACE_S
from coordinator.visibility import SEARCH_ATTRIBUTES, SearchAttributeType

LogLevel = Literal["debug", "info", "warn", "error", "never"]
Port = Annotated[int, Field(ge=1, le=65535)]
# The dev server takes `--search-attribute KEY=Type` / `--dynamic-config-value KEY=JSON`.
SearchAttributeName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
HostId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")]
DynamicConfigKey = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")]


class ConfigError(ValueError):
    """A configuration problem, worded for the user (names the file and the key)."""


# --------------------------------------------------------------------------- temporal-dev.yaml


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Make a path absolute against the YAML file's folder (passed as validation context)."""
    context = info.context if isinstance(info.context, dict) else {}
    base = context.get("base_dir")
    value = value.expanduser()
    if base is None and not value.is_absolute():
        raise ValueError(f"{value}: a relative path needs the folder it is relative to")
    return Path(os.path.normpath(Path(base or "/") / value))


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
    def defaults(cls, base_dir: Path) -> DevServerConfig:
        """The built-in settings, their relative paths made absolute against `base_dir`."""
        return cls.model_validate({}, context={"base_dir": base_dir})


def _client_host(ip: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(ip, ip)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_config(text: str, path: Path) -> DevServerConfig:
    """Validate the text of temporal-dev.yaml read from `path` (absolute; relative paths in it
    are made absolute against its folder). Raises ConfigError naming file, line and key."""
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
