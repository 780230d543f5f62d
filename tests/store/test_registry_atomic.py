"""The file registry is replaced atomically: a process reading it while another writes always parses a whole registry
(Feast rewrites the file in place, so a reader could see half of it and report a view as missing)."""

from __future__ import annotations

import threading
from pathlib import Path

from feast.protos.feast.core.Entity_pb2 import Entity as EntityProto
from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto
from feast.repo_config import RegistryConfig

from ingestion.store.feast_registry import DataDirRegistryStore

ENTITIES = 2_000  # a registry of some size, so a write takes long enough to be caught half done


def _registry(generation: int) -> RegistryProto:
    proto = RegistryProto()
    for i in range(ENTITIES):
        entity = EntityProto()
        entity.spec.name = f"e{i}"
        entity.spec.project = f"gen{generation}"
        entity.spec.description = "x" * 64
        proto.entities.append(entity)
    return proto


def test_readers_never_see_a_partial_registry(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "registry.db"
    store = DataDirRegistryStore(RegistryConfig(registry_type="file", path=str(path)), tmp_path)
    store.update_registry_proto(_registry(0))
    stop = threading.Event()
    seen: list[int] = []
    torn: list[str] = []

    def read() -> None:
        while not stop.is_set():
            proto = RegistryProto()
            try:
                proto.ParseFromString(path.read_bytes())
            except Exception as exc:  # a torn file may not even parse
                torn.append(repr(exc))
                continue
            seen.append(len(proto.entities))
            if len(proto.entities) != ENTITIES or not proto.version_id:
                torn.append(f"{len(proto.entities)} entities, version {proto.version_id!r}")

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    for generation in range(1, 40):
        store.update_registry_proto(_registry(generation))
    stop.set()
    for t in readers:
        t.join()
    assert seen, "the readers never read the registry"
    assert not torn, torn[:3]
    assert [p.name for p in path.parent.iterdir()] == ["registry.db"], "a temp file was left behind"
    final = RegistryProto()
    final.ParseFromString(path.read_bytes())
    assert final.entities[0].spec.project == "gen39"
