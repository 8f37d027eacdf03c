"""Reaching Temporal: `ClientSettings` resolved from command-line flags > environment (or a
Temporal env-config profile) > temporal-dev.yaml, and `connect`, which turns them into a
`temporalio.client.Client` with the pydantic data converter and fails fast with one readable
line when nobody answers."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretBytes, SecretStr
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfigProfile
from temporalio.service import RPCError, TLSConfig

from cli.config_file import load_config
from coordinator.environment import CONFINE_VARIABLE, parse_worker_confine
from coordinator.settings import ClientSettings, ConfigError, DevServerConfig

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


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
    resolved_address = address or prof.address or config.server.address
    api_key = prof.api_key or None
    return ClientSettings(
        address=resolved_address,
        namespace=namespace or prof.namespace or config.server.namespace,
        task_queue=task_queue or env.get("COORD_TASK_QUEUE") or config.client.task_queue,
        api_key=SecretStr(api_key) if api_key else None,
        **_tls_fields(prof, env, api_key),
        rpc_metadata=dict(prof.grpc_meta),
        ui_url=_ui_url(env, resolved_address, config),
        **_worker_fields(env, config),
        claude=config.claude,
    )


def _tls_fields(
    prof: ClientConfigProfile, env: Mapping[str, str], api_key: str | None
) -> dict[str, Any]:
    """The TLS settings: the profile's certificates, on when TEMPORAL_TLS (or the profile)
    says so, else when there is an API key or any certificate."""
    tls_env = _parse_bool("TEMPORAL_TLS", env.get("TEMPORAL_TLS"))
    tls_cfg = prof.tls
    cert_path, cert_data = _split_source(tls_cfg.client_cert if tls_cfg else None)
    key_path, key_data = _split_source(tls_cfg.client_private_key if tls_cfg else None)
    ca_path, ca_data = _split_source(tls_cfg.server_root_ca_cert if tls_cfg else None)
    explicit_tls = tls_env
    if explicit_tls is None and tls_cfg is not None and tls_cfg.disabled is not None:
        explicit_tls = not tls_cfg.disabled
    any_tls_material = any((cert_path, cert_data, key_path, key_data, ca_path, ca_data))
    # An API key (or certificates) implies TLS unless TLS is explicitly off.
    tls = explicit_tls if explicit_tls is not None else bool(api_key or any_tls_material)
    return {
        "tls": tls,
        "tls_cert_path": cert_path,
        "tls_key_path": key_path,
        "tls_ca_path": ca_path,
        "tls_cert_data": SecretBytes(cert_data) if cert_data else None,
        "tls_key_data": SecretBytes(key_data) if key_data else None,
        "tls_ca_data": SecretBytes(ca_data) if ca_data else None,
        "tls_server_name": tls_cfg.server_name if tls_cfg else None,
    }


def _ui_url(env: Mapping[str, str], address: str, config: DevServerConfig) -> str | None:
    """The Temporal Web UI of `address`: COORD_UI_URL, else the dev server's or Cloud's."""
    ui_url = env.get("COORD_UI_URL") or None
    if ui_url is None:
        if _same_endpoint(address, config.server.address):
            ui_url = config.server.ui_url  # the YAML's dev server: its UI is known
        elif _is_temporal_cloud(address):
            ui_url = "https://cloud.temporal.io"
    return ui_url.rstrip("/") if ui_url else None


def _worker_fields(env: Mapping[str, str], config: DevServerConfig) -> dict[str, Any]:
    """Where a worker keeps its clones and artifacts, who it is and what it may touch:
    COORD_* variables over temporal-dev.yaml's `worker:`."""
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
    return {
        "workspace_root": workspace_root,
        "artifacts_root": _env_path(env, "COORD_ARTIFACTS_ROOT") or config.worker.artifacts_root,
        "host_id": host_id,
        "shared_root": _env_path(env, "COORD_SHARED_ROOT")
        or config.worker.shared_root
        or workspace_root.parent / "shared",
        "host_grace_s": _seconds("COORD_HOST_GRACE", env.get("COORD_HOST_GRACE"))
        or config.worker.host_grace,
        "publish_to_remote": config.worker.publish_to_remote if publish is None else publish,
        "confine": confine,
    }


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
