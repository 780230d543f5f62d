"""What the online store needs from the registry, resolved once per registry version: layouts, TTLs, vector plans.

Reading feature views from Feast's registry deserializes protobuf (and runs typeguard) on every call: a millisecond
per request is more than the Redis round trip. A :class:`Catalog` resolves a view or service once and keeps it until
the registry's cached copy changes (``cached_registry_proto_created``, refreshed after ``feast apply`` at the
registry's ``cache_ttl_seconds``), or, for a registry without that stamp, for :data:`FALLBACK_TTL_S` seconds.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from ingestion.store.online.fast_read import FastPlan, FastView
from ingestion.store.online.layout import (
    PlannedView,
    Segment,
    ServicePlan,
    ViewLayout,
    alias,
    feature_field,
    names_header,
    null_segment,
    segment_field,
    ts_field,
    view_name_entry,
)

if TYPE_CHECKING:
    from feast import FeatureService, FeatureView
    from feast.value_type import ValueType

FALLBACK_TTL_S = 30.0


def view_ttl_us(fv: Any) -> int | None:
    """A feature view's ttl in microseconds, None when unbounded (the unit every TTL comparison here uses)."""
    ttl = getattr(fv, "ttl", None)
    # Feast and our offline join both read a zero or missing ttl as unbounded.
    return int(ttl.total_seconds() * 1_000_000) if ttl else None


class Catalog:
    """Layouts, TTLs and vector plans of one project's registry, cached per registry version."""

    def __init__(self, registry: Any, project: str) -> None:
        self.registry = registry
        self.project = project
        self._lock = threading.Lock()
        self._stamp: object = None
        self._fetched = 0.0
        self._views: dict[str, Any] = {}
        self._services: dict[str, FeatureService] | None = None
        self._layouts: dict[str, ViewLayout] = {}
        self._plans: dict[tuple[str, tuple[tuple[str, str, tuple[str, ...]], ...]], ServicePlan] = {}
        self._fast: dict[tuple[str, tuple[tuple[str, str, tuple[str, ...]], ...]], FastPlan | None] = {}

    def _fresh(self) -> None:
        """Drop everything resolved when the registry's cached copy changed since."""
        stamp = getattr(self.registry, "cached_registry_proto_created", None)
        now = time.monotonic()
        stale = stamp != self._stamp if stamp is not None else now - self._fetched > FALLBACK_TTL_S
        if stale:
            with self._lock:
                self._stamp, self._fetched = stamp, now
                self._views, self._services, self._layouts, self._plans, self._fast = {}, None, {}, {}, {}

    def view(self, name: str) -> Any:
        """The registry's feature view (or stream feature view) ``name``."""
        self._fresh()
        fv = self._views.get(name)
        if fv is None:
            fv = self.registry.get_any_feature_view(name, self.project, allow_cache=True)
            self._views[name] = fv
        return fv

    def ttl_us(self, name: str) -> int | None:
        """The view's ttl in microseconds (None: unbounded, or not a view with a ttl, e.g. on-demand)."""
        try:
            return view_ttl_us(self.view(name))
        except Exception:  # an on-demand view or an unknown name has no ttl to apply
            return None

    def precompute_services(self) -> list[FeatureService]:
        self._fresh()
        if self._services is None:
            services = self.registry.list_feature_services(self.project, allow_cache=True)
            self._services = {s.name: s for s in services if s.precompute_online}
        return list(self._services.values())

    def layout(self, name: str, enable_versioning: bool = False) -> ViewLayout:
        """The Redis layout of a view, with a vector slice per precompute service that reads it."""
        self._fresh()
        cached = self._layouts.get(name)
        if cached is not None:
            return cached
        fv: FeatureView = self.view(name)
        if enable_versioning:
            raise ValueError("the online store does not support enable_online_feature_view_versioning")
        join_keys = list(fv.join_keys)
        if len(join_keys) != 1:
            raise ValueError(f"view {fv.name}: the online store handles one join key, not {join_keys}")
        features = tuple(f.name for f in fv.features)
        segments = []
        for service in self.precompute_services():
            for projection in service.feature_view_projections:
                if projection.name != name:
                    continue
                positions = tuple(features.index(f.name) for f in projection.features)
                entry = view_name_entry(alias(projection))
                segments.append(Segment(service.name, segment_field(service.name, name), entry, positions))
        layout = ViewLayout(
            name=name,
            ts_field=ts_field(name),
            join_key=join_keys[0],
            features=features,
            fields=tuple(feature_field(name, f) for f in features),
            value_types=tuple(f.dtype.to_value_type().name for f in fv.features),
            segments=tuple(segments),
        )
        self._layouts[name] = layout
        return layout

    def plan(self, service: FeatureService) -> ServicePlan:
        """How to read ``service``'s vector, keyed by its projections (a service object may be newer than ours)."""
        self._fresh()
        signature = _signature(service)
        key = (service.name, signature)
        cached = self._plans.get(key)
        if cached is not None:
            return cached
        views: list[PlannedView] = []
        short: list[str] = []
        full: list[str] = []
        for view, shown, names in signature:
            short += names
            full += [f"{shown}__{n}" for n in names]
            views.append(
                PlannedView(
                    view=shown,
                    ttl_us=self.ttl_us(view),
                    ts_field=ts_field(view),
                    segment_field=segment_field(service.name, view),
                    null_segment=null_segment(len(names)),
                )
            )
        fields = [v.segment_field for v in views] + [v.ts_field for v in views]
        plan = ServicePlan(service.name, tuple(views), names_header(short), names_header(full), fields)
        self._plans[key] = plan
        return plan

    def fast_plan(self, service: FeatureService) -> FastPlan | None:
        """How to answer ``service`` with one HMGET per entity (:mod:`~ingestion.store.online.fast_read`), or None
        when Feast's own read must (an on-demand view, a view versioned or of another join key)."""
        self._fresh()
        key = (service.name, _signature(service))
        if key not in self._fast:
            self._fast[key] = self._build_fast_plan(service)
        return self._fast[key]

    def _build_fast_plan(self, service: FeatureService) -> FastPlan | None:
        from feast import FeatureView

        from ingestion.store.online.fast_read import decoder

        join_keys: set[str] = set()
        views: list[FastView] = []
        fields: list[bytes] = []
        stamps: list[bytes] = []
        short: list[str] = []
        full: list[str] = []
        decoders = []
        types: dict[str, ValueType] = {}
        owner: list[int] = []
        for projection in service.feature_view_projections:
            try:
                fv = self.view(projection.name)
            except Exception:  # not a plain view (on-demand): Feast's read
                return None
            if not isinstance(fv, FeatureView) or getattr(projection, "version_tag", None) is not None:
                return None
            join_keys.update(fv.join_keys)
            dtypes = {f.name: f.dtype.to_value_type() for f in fv.features}
            shown = alias(projection)
            views.append(FastView(len(fields), len(projection.features), view_ttl_us(fv)))
            stamps.append(ts_field(projection.name))
            for feature in projection.features:
                vtype = dtypes[feature.name]
                fields.append(feature_field(projection.name, feature.name))
                short.append(feature.name)
                full.append(f"{shown}__{feature.name}")
                decoders.append(decoder(vtype))
                types[feature.name] = types[f"{shown}__{feature.name}"] = vtype
                owner.append(len(views) - 1)
        if len(join_keys) != 1 or not views:
            return None
        return FastPlan(
            service=service.name,
            join_key=join_keys.pop(),
            views=tuple(views),
            fields=fields + stamps,
            short_names=tuple(short),
            full_names=tuple(full),
            decoders=tuple(decoders),
            feature_types=types,
            view_of_feature=tuple(owner),
        )


def _signature(service: FeatureService) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """What a service reads: (view, shown name, features) per projection."""
    return tuple((p.name, alias(p), tuple(f.name for f in p.features)) for p in service.feature_view_projections)


__all__ = ["FALLBACK_TTL_S", "Catalog"]
