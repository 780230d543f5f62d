"""Settings from the environment, read when asked and never at import.

Every command calls :func:`settings` at the moment it needs configuration, so a test or a notebook can change an
environment variable and see the change without re-importing anything. Secrets are kept out of ``repr`` so that a
logged or printed ``Settings`` never shows a key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingestion.store.objectstore import Root

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REPO_PATH = PROJECT_ROOT / "feature_repo"
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"

POLYGON_DEFAULT_BASE_URL = "https://api.polygon.io"
POLYGON_DEFAULT_WS_URL = "wss://socket.polygon.io/stocks"
UW_DEFAULT_BASE_URL = "https://api.unusualwhales.com"
# Where Feast looks with no REDIS_URL (plain `feast`, a training job): Feast's own default. Our commands start an
# embedded server instead and hand its URL to Feast.
DEFAULT_REDIS_URL = "redis://localhost:6379/0"
ACCEPT_ENVIRONMENT_VARIABLE = "FEAST_ACCEPT_ENVIRONMENT"
PUBLICATION_DELAYS_VARIABLE = "FEAST_PUBLICATION_DELAYS"
LOCAL_DIR_VARIABLE = "FEAST_LOCAL_DIR"
"""With ``FEAST_DATA_DIR=s3://bucket/prefix``: the local folder for what stays on this machine (the Feast file
registry, process state); default the project's ``data/`` folder."""
"""``dataset=duration,...`` (``ohlcv_daily=30m,ohlcv_minute=20s``; units s, m, h, d): publication delays that
replace a dataset's default (:mod:`ingestion.publication`)."""


@dataclass(frozen=True)
class Settings:
    """Everything the commands need to know about their surroundings.

    ``polygon_api_key`` and ``uw_api_token`` are None when unset: the commands then use the built-in simulators.
    """

    polygon_api_key: str | None = field(default=None, repr=False)
    uw_api_token: str | None = field(default=None, repr=False)
    polygon_base_url: str = POLYGON_DEFAULT_BASE_URL
    polygon_ws_url: str = POLYGON_DEFAULT_WS_URL
    uw_base_url: str = UW_DEFAULT_BASE_URL
    redis_url: str | None = field(default=None, repr=False)
    data_dir: Path = DEFAULT_DATA_DIR
    repo_path: Path = DEFAULT_REPO_PATH
    accept_environment: bool = False
    """``FEAST_ACCEPT_ENVIRONMENT=1``: let this run change the vendor environment the data dir records (see
    :mod:`ingestion.store.environment`)."""
    publication_delays: Mapping[str, timedelta] = field(default_factory=dict)
    """Per-dataset publication delays from ``FEAST_PUBLICATION_DELAYS`` (see :func:`publication_delays`)."""
    store_url: str | None = None
    """``FEAST_DATA_DIR`` when it is an object-store URL (``s3://bucket/prefix``): the offline store (part files,
    quarantine, coverage, watermarks) lives there, and ``data_dir`` is the local folder (``FEAST_LOCAL_DIR``)."""

    @property
    def offline_root(self) -> Root:
        """Where the offline store lives: ``data_dir``, or the object-store URL of ``FEAST_DATA_DIR``."""
        from ingestion.store.objectstore import ObjectRoot

        return ObjectRoot(self.store_url) if self.store_url else self.data_dir

    @property
    def state_root(self) -> Root:
        """Coverage and watermarks: ``state_dir``, or ``state/`` under the object-store URL."""
        return self.offline_root / "state"

    @property
    def offline_dir(self) -> Path:
        """Parquet part files, one folder per dataset."""
        return self.data_dir / "offline"

    @property
    def registry_path(self) -> Path:
        """The file registry of the repo's default ``feature_store.yaml`` (a SQL registry, if the yaml names one,
        has no file here)."""
        return self.data_dir / "registry.db"

    @property
    def state_dir(self) -> Path:
        """Watermarks and job state."""
        return self.data_dir / "state"

    @property
    def has_vendor_keys(self) -> bool:
        return bool(self.polygon_api_key) or bool(self.uw_api_token)


def _nonempty(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def _store_url(env: Mapping[str, str]) -> str | None:
    from ingestion.store.objectstore import is_object_url

    value = _nonempty(env, "FEAST_DATA_DIR")
    return value.rstrip("/") if value and is_object_url(value) else None


def _local_dir(env: Mapping[str, str]) -> Path:
    value = _nonempty(env, "FEAST_DATA_DIR")
    if _store_url(env):
        value = _nonempty(env, LOCAL_DIR_VARIABLE)
    return Path(value or DEFAULT_DATA_DIR).expanduser().resolve()


def _flag(env: Mapping[str, str], name: str) -> bool:
    return (_nonempty(env, name) or "").lower() in ("1", "true", "yes")


def settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from ``env`` (default: the process environment) now."""
    env = os.environ if env is None else env
    return Settings(
        polygon_api_key=_nonempty(env, "POLYGON_API_KEY", "MASSIVE_API_KEY"),
        uw_api_token=_nonempty(env, "UW_API_TOKEN"),
        polygon_base_url=_nonempty(env, "POLYGON_BASE_URL") or POLYGON_DEFAULT_BASE_URL,
        polygon_ws_url=_nonempty(env, "POLYGON_WS_URL") or POLYGON_DEFAULT_WS_URL,
        uw_base_url=_nonempty(env, "UW_BASE_URL") or UW_DEFAULT_BASE_URL,
        redis_url=_nonempty(env, "REDIS_URL"),
        data_dir=_local_dir(env),
        store_url=_store_url(env),
        repo_path=Path(_nonempty(env, "FEAST_REPO_PATH") or DEFAULT_REPO_PATH).expanduser().resolve(),
        accept_environment=_flag(env, ACCEPT_ENVIRONMENT_VARIABLE),
        publication_delays=publication_delays(env),
    )


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def publication_delays(env: Mapping[str, str] | None = None) -> dict[str, timedelta]:
    """``FEAST_PUBLICATION_DELAYS`` as ``{dataset: delay}``, read now (default: the process environment).

    Raises :class:`~ingestion.errors.ConfigError` naming the bad entry: an unknown dataset, a missing ``=``, or a
    duration that is not a non-negative number with a unit (``s``, ``m``, ``h``, ``d``). A wrong delay is a lookahead
    bug, so nothing is guessed.
    """
    from ingestion.errors import ConfigError

    env = os.environ if env is None else env
    out: dict[str, timedelta] = {}
    for entry in (_nonempty(env, PUBLICATION_DELAYS_VARIABLE) or "").split(","):
        if not entry.strip():
            continue
        name, sep, text = (part.strip() for part in entry.partition("="))
        match = _DURATION.match(text.lower())
        if not sep or not name or match is None:
            raise ConfigError(
                f"{PUBLICATION_DELAYS_VARIABLE}: {entry.strip()!r} is not dataset=duration (e.g. ohlcv_daily=15m)"
            )
        out[name] = timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    if not out:
        # Nothing to check: the dataset table imports pyarrow and pandas, which a command like ``apply`` otherwise
        # never loads in its own process.
        return out
    from ingestion.datasets import DATASETS

    unknown = sorted(set(out) - set(DATASETS))
    if unknown:
        raise ConfigError(f"{PUBLICATION_DELAYS_VARIABLE}: no dataset named {', '.join(unknown)}")
    return out


def feast_connection_string(redis_url: str) -> str:
    """Feast's ``host:port,db=N,...`` connection string for a ``REDIS_URL`` (see :mod:`ingestion.store.redis_conn`).

    Feast's Redis online store does not take URLs; it splits a comma list of ``host:port`` and ``key=value``.
    """
    from ingestion.store.redis_conn import feast_online_store, parse_redis_url

    return str(feast_online_store(parse_redis_url(redis_url))["connection_string"])
