"""The command line says what it is and what it defaults to: ``--version`` and defaults in every command's help."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from ingestion.cli import build_parser, main


def test_version_names_this_package_and_feast(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.strip() == f"feast-market-data {version('feast-market-data')} (feast {version('feast')})"


def test_command_help_shows_defaults_and_no_empty_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["backfill", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "symbols fetched in parallel (default: 4)" in text and "bar size for ohlcv (default: day)" in text
    # Flags and options without a default say nothing; a help text that names its default is not repeated.
    assert "default: None" not in text and "default: False" not in text
    assert "client-side budget (5 on free plans; default: none)" in text and text.count("default") == 3
