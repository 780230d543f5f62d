"""Feast's own CLI, started without typeguard's import-time cost: ``python -m ingestion.store.feast_launch apply``.

Feast decorates its classes with typeguard's ``@typechecked``, which instruments each of them when its module is
imported: it re-reads and re-compiles the whole module's source, once per decorated class. That is most of the
6 s an ``import feast`` takes here. The decorator does nothing under ``python -O`` (``__debug__`` is false), which
is how the project used to run Feast children, but ``-O`` needs optimised bytecode (``*.opt-1.pyc``) for every
module the process imports. ``pip install`` writes only the plain ``*.pyc``, so on a fresh install an ``-O``
process compiles pandas, pyarrow, numpy and Feast from source on every run (and never saves the result when
``PYTHONDONTWRITEBYTECODE`` is set, as on these machines): only ``scripts/check``'s ``compileall -O`` made it fast.

This entry point replaces ``typeguard.typechecked`` by a pass-through before Feast is imported, then runs Feast's
CLI unchanged. The effect is the ``-O`` one (Feast's runtime type checks, a debugging aid that no Feast code path
relies on, are skipped) with the plain bytecode that any install has, and asserts stay on. Only this process is
affected: it is a child of our commands, and the patch never reaches a user's process or pytest.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

PLOTTING = ("matplotlib", "IPython")


def _pass_through(target: T | None = None, **_options: Any) -> T | Callable[[T], T]:
    """``typechecked`` as ``-O`` makes it: the target unchanged, bare or called with options."""
    if target is None:
        return lambda t: t
    return target


def skip_typeguard() -> None:
    """Make ``@typechecked`` a pass-through for every module imported after this call."""
    if "feast" in sys.modules:
        raise RuntimeError("skip_typeguard must run before feast is imported")
    import typeguard

    typeguard.typechecked = _pass_through  # type: ignore[assignment]


def hide_plotting() -> None:
    """Hide matplotlib and IPython from this process: Feast's CLI imports bigtree (for ``feast permissions``), which
    imports both when they are installed (the notebooks' extras are) and does without them when they are not.
    Nothing Feast's CLI runs draws a plot; the two cost a third of its import."""
    for name in PLOTTING:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None in sys.modules: ImportError on import


def main(argv: list[str] | None = None) -> None:
    skip_typeguard()
    hide_plotting()
    from feast.cli.cli import cli

    cli.main(args=sys.argv[1:] if argv is None else argv, prog_name="feast")


if __name__ == "__main__":
    main()
