"""Is the feature repo applied? Asked through Feast's registry API, whatever registry the repo's yaml names.

``health`` used to look for ``<data_dir>/registry.db``, so with a SQL registry it always said "no registry". The
probe loads the repo's configuration (:func:`ingestion.store.feast_config.repo_config`) and lists the feature views
through a ``FeatureStore`` on it: a file registry, a SQL one (PostgreSQL, SQLite) or any other type Feast knows.

One exception to "just open it": Feast's file registry writes an empty registry file when it opens a path that has
none, and a health check changes nothing, so a local registry file is looked for first. A SQL registry creates its
tables when opened, as every Feast client of it does; that is not ours to avoid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingestion.config import Settings

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

APPLY_HINT = "run `python -m ingestion apply` (or `feast apply` in the repo)"


@dataclass(frozen=True)
class RegistryProbe:
    ok: bool
    detail: str
    store: FeatureStore | None


def local_registry_file(config: RepoConfig) -> Path | None:
    """The file a file registry on the local disk keeps (ours in the data dir or Feast's own); None for a SQL,
    remote or object-store registry."""
    from ingestion.store.feast_registry import STORE_TYPE, registry_file

    registry: Any = config.registry
    if registry.registry_type != "file":
        return None
    if registry.registry_store_type == STORE_TYPE:
        return registry_file(registry)
    path = str(registry.path)
    if registry.registry_store_type is not None or "://" in path:
        return None  # s3://, gs://, a custom store: only Feast can tell
    # Feast's FileRegistryStore: a relative path is taken from the repo folder.
    return Path(path) if Path(path).is_absolute() else Path(config.repo_path or ".") / path


def describe_registry(config: RepoConfig) -> str:
    """Which registry, in words a log may hold: a SQL URL loses its password."""
    registry: Any = config.registry
    file = local_registry_file(config)
    if file is not None:
        return f"file registry {file}"
    if registry.registry_type == "sql":
        from sqlalchemy.engine import make_url

        try:
            where = make_url(str(registry.path)).render_as_string(hide_password=True)
        except Exception:  # an unparseable URL: say nothing of it rather than echo a secret
            where = "(unparseable URL)"
        return f"SQL registry {where}"
    return f"{registry.registry_type} registry"


def probe_registry(s: Settings, redis_url: str, expected: set[str]) -> RegistryProbe:
    """Are the feature views ``expected`` in the registry of the repo's yaml? The store is returned when the
    registry could be read, for the checks that read the online store through it."""
    from feast import FeatureStore

    from ingestion.store.feast_config import repo_config

    try:
        config = repo_config(s, redis_url)
    except Exception as exc:  # a broken yaml is the finding; its message may quote a value (a URL), so not echoed
        yaml_path = s.repo_path / "feature_store.yaml"
        return RegistryProbe(False, f"cannot load {yaml_path} ({type(exc).__name__}): run `feast plan` there", None)
    where = describe_registry(config)
    file = local_registry_file(config)
    if file is not None and not file.exists():
        return RegistryProbe(False, f"no registry at {file}: {APPLY_HINT}", None)
    try:
        store = FeatureStore(repo_path=str(s.repo_path), config=config)
        applied = {v.name for v in store.list_feature_views()}
    except Exception as exc:  # unreachable database, corrupt file: one line, no URL (it may hold a password)
        return RegistryProbe(False, f"cannot read the {where} ({type(exc).__name__}): is it reachable?", None)
    if not applied:
        return RegistryProbe(False, f"no feature views in the {where}: {APPLY_HINT}", store)
    missing = expected - applied
    if missing:
        return RegistryProbe(False, f"views not applied: {', '.join(sorted(missing))}; {APPLY_HINT}", store)
    return RegistryProbe(True, f"{len(expected)} feature views applied ({where})", store)


__all__ = ["RegistryProbe", "describe_registry", "local_registry_file", "probe_registry"]
