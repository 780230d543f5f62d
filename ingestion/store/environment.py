"""Which vendor environment a data dir holds data of, so that a simulator's rows and a real vendor's never mix.

Without a key a command runs on the built-in simulators, and what they serve is synthetic: bars labelled
``polygon`` that no exchange ever printed. Coverage records which date ranges are done, not where their rows came
from, so a later run with a real key would find the ranges done, fetch nothing, and leave the synthetic rows in
place as if real. The same holds between two real servers (a staging mirror and the vendor).

So a data dir records, per vendor, the environment that first wrote it, in ``<data_dir>/environment.json`` (mode
0600)::

    {"polygon": {"kind": "real", "base_url": "https://api.polygon.io:443", "key_fingerprint": "3f9c...", ...},
     "uw": {"kind": "simulator", "base_url": "", "key_fingerprint": "...", ...}}

and a run whose environment for a vendor it is about to fetch from differs is refused with a :class:`ConfigError`
that says what to do. "Differs" means another *kind* (simulator against real) or, for real vendors, another base
URL (:func:`~ingestion.http.scope.base_url_identity`). A rotated key of the same vendor URL is the same environment:
the fingerprint (:func:`~ingestion.http.redaction.key_fingerprint`, never the key) is kept only to say which key
wrote last. The simulators listen on a new port each run, so their URL is not part of their identity.

``FEAST_ACCEPT_ENVIRONMENT=1`` (:attr:`~ingestion.config.Settings.accept_environment`) accepts a change on purpose
(say ``api.polygon.io`` to ``api.massive.com``, the same data): the run goes on and the record takes the new
environment, the previous one kept under ``replaced``. The rows already stored stay as they are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from ingestion.config import ACCEPT_ENVIRONMENT_VARIABLE
from ingestion.errors import ConfigError
from ingestion.http.redaction import key_fingerprint
from ingestion.http.scope import base_url_identity
from ingestion.store.objectstore import Root
from ingestion.store.records import read_record, update_record

Kind = Literal["simulator", "real"]
Vendor = Literal["polygon", "uw"]

RECORD_NAME = "environment.json"
_LABELS: dict[str, str] = {"polygon": "Polygon", "uw": "Unusual Whales"}


@dataclass(frozen=True)
class VendorEnvironment:
    """Where one vendor's data comes from: the built-in simulator, or a real server at ``base_url``."""

    kind: Kind
    base_url: str
    key_fingerprint: str

    @classmethod
    def of(cls, *, simulated: bool, base_url: str, key: str | None) -> VendorEnvironment:
        if simulated:
            return cls("simulator", "", key_fingerprint(key))
        return cls("real", base_url_identity(base_url), key_fingerprint(key))

    def same_source(self, other: VendorEnvironment) -> bool:
        """Whether rows of ``self`` and ``other`` may share a data dir: same kind and, when real, same server."""
        return self.kind == other.kind and (self.kind == "simulator" or self.base_url == other.base_url)

    def describe(self) -> str:
        return "the built-in simulator" if self.kind == "simulator" else self.base_url

    @classmethod
    def from_json(cls, raw: Any) -> VendorEnvironment | None:
        if not isinstance(raw, dict) or raw.get("kind") not in ("simulator", "real"):
            return None
        return cls(raw["kind"], str(raw.get("base_url", "")), str(raw.get("key_fingerprint", "")))


def record_path(data_dir: Root) -> Root:
    return data_dir / RECORD_NAME


def recorded(data_dir: Root) -> dict[str, VendorEnvironment]:
    """The environments a data dir records, per vendor (empty when none was recorded yet)."""
    raw = read_record(record_path(data_dir))
    out: dict[str, VendorEnvironment] = {}
    for vendor, entry in (raw or {}).items():
        env = VendorEnvironment.from_json(entry)
        if env is not None:
            out[vendor] = env
    return out


def claim(data_dir: Root, vendor: Vendor, env: VendorEnvironment, *, accept: bool = False) -> None:
    """Record ``env`` as ``vendor``'s environment of ``data_dir`` on first use; refuse another one later.

    Raises :class:`ConfigError` when the data dir holds ``vendor``'s data from another environment, unless
    ``accept``: then the record takes ``env``. Safe to call from several processes at once (the record is updated
    under a file lock, or by compare-and-swap on object storage).
    """

    def change(record: dict[str, Any]) -> None:
        previous = VendorEnvironment.from_json(record.get(vendor))
        entry: dict[str, Any] = {**asdict(env), "recorded_at": datetime.now(UTC).isoformat(timespec="seconds")}
        if previous is None:
            record[vendor] = entry
        elif previous.same_source(env):
            if previous.key_fingerprint != env.key_fingerprint:
                record[vendor] = {**record[vendor], "key_fingerprint": env.key_fingerprint}
        elif accept:
            replaced = {k: v for k, v in record[vendor].items() if k != "replaced"}  # one step back, not a chain
            record[vendor] = {**entry, "replaced": replaced}
        else:
            raise ConfigError(
                f"{data_dir} holds {_LABELS[vendor]} data from {previous.describe()}, and this run uses "
                f"{env.describe()}: set FEAST_DATA_DIR to another directory, or {ACCEPT_ENVIRONMENT_VARIABLE}=1 to "
                "make this environment the data dir's own (the rows already there stay)"
            )

    update_record(record_path(data_dir), change)


__all__ = ["Vendor", "VendorEnvironment", "claim", "record_path", "recorded"]
