"""``feature_repo/feature_store.yaml`` as Feast loads it, for given settings instead of this process's environment.

The yaml is the one configuration: Feast expands its ``${VAR}``s, and our config classes complete it from
``REDIS_URL`` and ``FEAST_DATA_DIR`` when it is loaded (:mod:`ingestion.store.feast_online`,
:mod:`ingestion.store.feast_registry`). A Feast child of ours gets this run's values in its environment
(:func:`feast_environment`). In process, a command may run for settings that are not the environment's (the
embedded Redis, a test's data dir), so :func:`repo_config` loads the same yaml the same way and hands the config
classes this run's values explicitly. Nothing is written.

Feast is imported only by the functions that need it: a command that merely starts a Feast child stays light.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ingestion.config import Settings

if TYPE_CHECKING:
    from feast.repo_config import RepoConfig

# The forms os.path.expandvars (Feast's expansion) takes: $NAME and ${NAME}; an unknown one stays as written.
_VARIABLE = re.compile(r"\$(\w+|\{[^}]*\})", re.ASCII)


def feast_environment(settings: Settings, redis_url: str | None = None) -> dict[str, str]:
    """The variables that point the repo's yaml at this run's data dir and Redis (``redis_url`` or the settings')."""
    env = {"FEAST_DATA_DIR": settings.store_url or str(settings.data_dir)}
    if settings.store_url:
        # The offline store is on object storage; the registry file and process state stay in the local folder.
        from ingestion.config import LOCAL_DIR_VARIABLE

        env[LOCAL_DIR_VARIABLE] = str(settings.data_dir)
    url = redis_url or settings.redis_url
    if url:
        env["REDIS_URL"] = url
    return env


def expand_variables(text: str, env: Mapping[str, str]) -> str:
    """``os.path.expandvars`` with ``env`` in place of ``os.environ``."""

    def value(match: re.Match[str]) -> str:
        return env.get(match.group(1).strip("{}"), match.group(0))

    return _VARIABLE.sub(value, text)


def pin_data_dir(raw: dict[str, Any], data_dir: Path) -> None:
    """Give a registry block on our data-dir store ``data_dir`` explicitly (else it reads ``FEAST_DATA_DIR``)."""
    from ingestion.store.feast_registry import STORE_TYPE

    registry = raw.get("registry")
    if isinstance(registry, dict) and registry.get("registry_store_type") == STORE_TYPE:
        registry.setdefault("data_dir", str(data_dir))


def pin_redis_url(raw: dict[str, Any], redis_url: str | None) -> None:
    """Give an online store block of our type ``redis_url`` explicitly (else it reads ``REDIS_URL``), unless the
    yaml names its Redis itself."""
    from ingestion.store.feast_online import TYPE_PATH

    online = raw.get("online_store")
    if not redis_url or not isinstance(online, dict) or online.get("type") != TYPE_PATH:
        return
    if not online.get("redis_url") and not online.get("connection_string"):
        online["redis_url"] = redis_url


def repo_config(
    settings: Settings, redis_url: str | None = None, *, yaml_name: str = "feature_store.yaml"
) -> RepoConfig:
    """The repo's ``feature_store.yaml`` (or another yaml of the repo, e.g. ``feature_store.spark.yaml``) loaded as
    Feast's ``load_repo_config`` does, for ``settings``."""
    from feast.repo_config import FeastConfigError, RepoConfig
    from pydantic import ValidationError

    path = settings.repo_path / yaml_name
    env = {**os.environ, **feast_environment(settings, redis_url)}
    raw = yaml.safe_load(expand_variables(path.read_text(), env))
    pin_data_dir(raw, settings.data_dir)
    pin_redis_url(raw, env.get("REDIS_URL"))
    try:
        config = RepoConfig(**raw)
    except ValidationError as exc:
        raise FeastConfigError(exc, str(path)) from exc  # type: ignore[no-untyped-call]
    config.repo_path = settings.repo_path
    return config


__all__ = ["expand_variables", "feast_environment", "pin_data_dir", "pin_redis_url", "repo_config"]
