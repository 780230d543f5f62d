"""What a command runs against: real vendors or the built-in simulators, a Redis, and an applied feature repo.

Every command (demo, backfill, stream, health) starts from :func:`runtime`, so the rule "no key means simulator, no
``REDIS_URL`` means embedded Redis" lives in one place, and each command says so on stderr. The runtime also knows,
per vendor, which environment a run fetches from (:meth:`Runtime.environment`), so that a job can claim the data dir
for it before writing (:meth:`Runtime.claim_data_dir`) and a simulator's rows never land beside a real vendor's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from ingestion.config import Settings
from ingestion.errors import ConfigError, IngestionError
from ingestion.simulators.keys import POLYGON_SIM_KEY, UW_SIM_TOKEN
from ingestion.store.environment import Vendor, VendorEnvironment, claim
from ingestion.store.writable import require_writable


@dataclass(frozen=True)
class Runtime:
    """Resolved endpoints and credentials. ``settings.redis_url`` is always set here."""

    settings: Settings
    polygon_key: str
    uw_token: str
    simulated_polygon: bool
    simulated_uw: bool
    stack: Any = None

    def simulated(self, vendor: Vendor) -> bool:
        """Whether ``vendor`` ("polygon" or "uw") is the built-in simulator in this run."""
        return self.simulated_polygon if vendor == "polygon" else self.simulated_uw

    def unknown_symbols(self, symbols: list[str], vendor: Vendor = "polygon") -> list[str]:
        """Symbols the simulated market does not list, when ``vendor`` is simulated; else []."""
        if not self.simulated(vendor) or self.stack is None:
            return []
        return sorted(s for s in symbols if s != "*" and not self.stack.market.has_symbol(s))

    def environment(self, vendor: Vendor) -> VendorEnvironment:
        """Where this run's ``vendor`` data comes from: the simulator, or a real server (base URL, key fingerprint)."""
        s = self.settings
        base_url, key = (
            (s.polygon_base_url, self.polygon_key) if vendor == "polygon" else (s.uw_base_url, self.uw_token)
        )
        return VendorEnvironment.of(simulated=self.simulated(vendor), base_url=base_url, key=key)

    def claim_data_dir(self, *vendors: Vendor) -> None:
        """Call before fetching ``vendors``' data into the data dir: records this run's environment of each on first
        use, and raises a one-line :class:`ConfigError` when the data dir holds that vendor's data from another."""
        for vendor in vendors:
            claim(self.settings.offline_root, vendor, self.environment(vendor), accept=self.settings.accept_environment)

    @property
    def redis_url(self) -> str:
        assert self.settings.redis_url is not None  # runtime() always fills it in
        return self.settings.redis_url


def ensure_applied(s: Settings, redis_url: str, force: bool = False) -> None:
    """Run ``feast apply`` unless the registry the repo's yaml names already holds every feature view of the repo
    (or ``force``).

    The registry is asked, not a file looked for: it may be a SQL registry (or a file registry that CI applied).
    """
    from ingestion.datasets import FEATURE_DATASETS
    from ingestion.store.feast_repo import feast_cli, open_store

    if not force:
        registered = {v.name for v in open_store(s, redis_url).list_feature_views()}
        if registered >= {d.name for d in FEATURE_DATASETS}:
            return
    result = feast_cli(s, redis_url, "apply")
    if result.returncode != 0:
        raise IngestionError(f"feast apply failed: {result.stderr.strip().splitlines()[-1:]}")


def check_redis(url: str) -> None:
    """Fail fast, in one line, when a configured Redis does not answer (rather than a traceback from deep inside).

    The probe is the health check's; its message never shows the URL, which may hold a password.
    """
    from ingestion.ops.health import check_redis as probe

    result = probe(url)
    if not result.ok:
        raise ConfigError(f"{result.detail}, or unset REDIS_URL to use an embedded redis-server")


SIM_AS_OF_ENV = "INGESTION_SIM_AS_OF"


def sim_as_of() -> dt.date | None:
    """The built-in simulators' market clock from ``INGESTION_SIM_AS_OF=YYYY-MM-DD`` (unset or empty: no clock)."""
    from ingestion.jobs.args import parse_date

    raw = os.environ.get(SIM_AS_OF_ENV, "").strip()
    return parse_date(raw, SIM_AS_OF_ENV) if raw else None


@contextlib.contextmanager
def runtime(
    s: Settings,
    *,
    apply_repo: bool = True,
    replay: Any = None,
    announce: bool = True,
    seed: int = 7,
    vendors: bool = True,
) -> Iterator[Runtime]:
    """Resolve vendors (simulators for any vendor without a key), Redis (embedded when unset) and the registry.

    ``vendors=False`` is for commands that use only Redis and the registry (``materialize``): no simulator is
    started and the vendor URLs are left as configured.

    An unwritable data dir is refused first, in one line, before anything is started.
    """
    from ingestion.store.redis_server import redis_url_or_embedded

    require_writable(s.data_dir)

    with contextlib.ExitStack() as stack:
        sims = None
        need_sim = vendors and (not s.polygon_api_key or not s.uw_api_token)
        if need_sim:
            from ingestion.simulators.market import Market
            from ingestion.simulators.stack import SimulatorStack

            if replay is None:
                from ingestion.simulators.polygon_ws import Replay

                # A past session from 10:00 New York at a steady 5000 events/s, not the whole day in one burst.
                replay = Replay(start_minute=30, rate=5_000.0)
            from ingestion.simulators.unusual_whales import UWPlan

            # The keyless demo should not crawl at a real plan's 120 requests a minute; tests keep the real plan.
            fast = {UW_SIM_TOKEN: UWPlan("simulator", per_minute=6_000, per_day=1_000_000)}
            sims = stack.enter_context(
                SimulatorStack(Market(seed=seed, as_of=sim_as_of()), replay=replay, uw_tokens=fast)
            )
            urls = sims.env()
        polygon_url, ws_url, uw_url = s.polygon_base_url, s.polygon_ws_url, s.uw_base_url
        if sims is not None and not s.polygon_api_key:
            polygon_url, ws_url = urls["POLYGON_BASE_URL"], urls["POLYGON_WS_URL"]
        if sims is not None and not s.uw_api_token:
            uw_url = urls["UW_BASE_URL"]
        redis_url = stack.enter_context(redis_url_or_embedded(s.redis_url))
        if s.redis_url:
            check_redis(redis_url)
        if announce:
            if need_sim:
                missing = [
                    n for n, v in (("POLYGON_API_KEY", s.polygon_api_key), ("UW_API_TOKEN", s.uw_api_token)) if not v
                ]
                clock = f" (market clock {sims.market.as_of})" if sims is not None and sims.market.as_of else ""
                print(f"No {' / '.join(missing)}: using the built-in simulators{clock}.", file=sys.stderr)
            if not s.redis_url:
                from ingestion.http.redaction import redact_url

                # The URL carries the server's generated password: shown masked.
                print(f"No REDIS_URL: using an embedded redis-server ({redact_url(redis_url)}).", file=sys.stderr)
        resolved = replace(
            s, polygon_base_url=polygon_url, polygon_ws_url=ws_url, uw_base_url=uw_url, redis_url=redis_url
        )
        if apply_repo:
            ensure_applied(resolved, redis_url)
        yield Runtime(
            settings=resolved,
            polygon_key=s.polygon_api_key or POLYGON_SIM_KEY,
            uw_token=s.uw_api_token or UW_SIM_TOKEN,
            simulated_polygon=not s.polygon_api_key,
            simulated_uw=not s.uw_api_token,
            stack=sims,
        )
