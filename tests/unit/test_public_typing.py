"""A user's type checker sees the public face's real classes, while ``import ingestion`` stays cheap at runtime.

The mypy test checks a user's script against the installed package the way a user's mypy finds it: through the
package's directory on the search path, where mypy insists on the ``py.typed`` marker (PEP 561). The editable
install's import hook is invisible to mypy, so the directory is found through the import system and handed over in
``PYTHONPATH``. One mypy run serves every class: a cold run takes seconds.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

import ingestion


@dataclass(frozen=True)
class Case:
    """One public class: a call mypy must accept, a call it must reject, and the error that proves it."""

    name: str
    qualified: str  # where mypy must say the class lives
    good_call: str
    bad_call: str
    bad_errors: tuple[str, ...]


CASES = (
    Case(
        "PolygonClient",
        "ingestion.polygon.client.PolygonClient",
        'api_key="k", use_cache=False',
        # Extra keywords go to **rest_options (typed Any), so only the wrong type is an error here.
        "api_key=1, nonexistent_kw=2",
        ('Argument "api_key" to "PolygonClient" has incompatible type "int"',),
    ),
    Case(
        "PolygonRESTClient",
        "ingestion.polygon.rest.PolygonRESTClient",
        'api_key="k", base_url="http://127.0.0.1:1"',
        "api_key=1, nonexistent_kw=2",
        (
            'Unexpected keyword argument "nonexistent_kw" for "PolygonRESTClient"',
            'Argument "api_key" to "PolygonRESTClient" has incompatible type "int"',
        ),
    ),
    Case(
        "PolygonWebSocketClient",
        "ingestion.polygon.websocket.PolygonWebSocketClient",
        'api_key="k", cluster="stocks"',
        "api_key=1, nonexistent_kw=2",
        (
            'Unexpected keyword argument "nonexistent_kw" for "PolygonWebSocketClient"',
            'Argument "api_key" to "PolygonWebSocketClient" has incompatible type "int"',
        ),
    ),
    Case(
        "CircuitBreaker",
        "ingestion.http.breaker.CircuitBreaker",
        'failure_threshold=3, recovery_timeout=1.5, name="x"',
        'failure_threshold="five", nonexistent_kw=2',
        (
            'Unexpected keyword argument "nonexistent_kw" for "CircuitBreaker"',
            'Argument "failure_threshold" to "CircuitBreaker" has incompatible type "str"',
        ),
    ),
    Case(
        "EnhancedUnusualWhalesClient",
        "ingestion.unusual_whales.client.EnhancedUnusualWhalesClient",
        'api_key="k", max_workers=2',
        "api_key=1, nonexistent_kw=2",
        (
            'Unexpected keyword argument "nonexistent_kw" for "EnhancedUnusualWhalesClient"',
            'Argument "api_key" to "EnhancedUnusualWhalesClient" has incompatible type "int"',
        ),
    ),
)

_LINE = re.compile(r"^user_script\.py:(\d+): (error|note): (.*)$")


@dataclass(frozen=True)
class Lines:
    """Line numbers of one case in the user's script."""

    reveal_class: int
    good_call: int
    reveal_instance: int
    bad_call: int


@dataclass(frozen=True)
class MypyRun:
    """One mypy run over the user's script: where each case sits, and mypy's messages by line."""

    lines: dict[str, Lines]
    messages: dict[int, list[tuple[str, str]]]  # line -> [(severity, text)]
    returncode: int
    output: str

    def at(self, line: int, severity: str) -> list[str]:
        return [text for kind, text in self.messages.get(line, []) if kind == severity]


def _user_script() -> tuple[str, dict[str, Lines]]:
    source = ["import ingestion", ""]
    lines: dict[str, Lines] = {}
    for case in CASES:
        start = len(source) + 1
        var = f"obj_{case.name.lower()}"
        source += [
            f"reveal_type(ingestion.{case.name})",
            f"{var} = ingestion.{case.name}({case.good_call})",
            f"reveal_type({var})",
            f"ingestion.{case.name}({case.bad_call})",
            "",
        ]
        lines[case.name] = Lines(start, start + 1, start + 2, start + 3)
    return "\n".join(source), lines


def _installed_package_parent() -> Path:
    """The directory the installed ``ingestion`` package lives in, as the import system finds it."""
    spec = importlib.util.find_spec("ingestion")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent.parent


@pytest.fixture(scope="module")
def mypy_run(tmp_path_factory: pytest.TempPathFactory) -> MypyRun:
    work = tmp_path_factory.mktemp("user_project")
    source, lines = _user_script()
    (work / "user_script.py").write_text(source)
    # An explicit, empty config: no project settings leak in, the user's defaults apply.
    (work / "mypy.ini").write_text("[mypy]\n")
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    env["PYTHONPATH"] = str(_installed_package_parent())
    command = [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--cache-dir", str(work / ".cache")]
    command += ["--no-color-output", "--no-error-summary", "--no-pretty", "user_script.py"]
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=240, check=False)
    messages: dict[int, list[tuple[str, str]]] = {}
    for raw in done.stdout.splitlines():
        match = _LINE.match(raw)
        if match:
            messages.setdefault(int(match[1]), []).append((match[2], match[3]))
    return MypyRun(lines, messages, done.returncode, done.stdout + done.stderr)


def test_mypy_finds_the_installed_package_as_typed(mypy_run: MypyRun) -> None:
    assert "import-untyped" not in mypy_run.output and "import-not-found" not in mypy_run.output, mypy_run.output
    # Only the deliberately wrong calls fail, so mypy's exit status is that of a failed check, not a crash (2).
    assert mypy_run.returncode == 1, mypy_run.output
    assert mypy_run.at(1, "error") == [], mypy_run.output


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_mypy_sees_the_real_class(mypy_run: MypyRun, case: Case) -> None:
    lines = mypy_run.lines[case.name]
    assert mypy_run.at(lines.reveal_instance, "note") == [f'Revealed type is "{case.qualified}"'], mypy_run.output
    (constructor,) = mypy_run.at(lines.reveal_class, "note")
    assert constructor.startswith('Revealed type is "def (') and constructor.endswith(f') -> {case.qualified}"')
    assert mypy_run.at(lines.good_call, "error") == [], mypy_run.output


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_mypy_reports_a_wrong_call(mypy_run: MypyRun, case: Case) -> None:
    errors = mypy_run.at(mypy_run.lines[case.name].bad_call, "error")
    for expected in case.bad_errors:
        assert any(expected in e for e in errors), (expected, mypy_run.output)


def _type_checking_imports() -> dict[str, str]:
    """Name -> module of the ``if TYPE_CHECKING:`` imports in ``ingestion/__init__.py``."""
    tree = ast.parse(Path(ingestion.__file__).read_text())
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom) and statement.module
                found.update({alias.name: statement.module for alias in statement.names})
    return found


def test_type_checking_imports_match_the_lazy_runtime_imports() -> None:
    # What mypy reads and what __getattr__ loads must be the same names from the same modules.
    lazy = ingestion._LAZY
    assert _type_checking_imports() == lazy
    assert set(lazy) <= set(ingestion.__all__)


def test_py_typed_marker_is_in_the_package_and_shipped() -> None:
    assert (Path(ingestion.__file__).parent / "py.typed").is_file()
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["ingestion"]


def test_import_ingestion_loads_no_heavy_dependency() -> None:
    # A fresh interpreter: this test process has long imported pandas through other tests.
    heavy = ("pandas", "numpy", "pyarrow", "requests", "websockets", "feast", "redis")
    code = f"import sys, ingestion; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == ""
