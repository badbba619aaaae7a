"""The processes' event loop: uvloop where it is installed, asyncio's own when asked for, and a
clear refusal when uvloop is required but missing."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from core import eventloop
from gateway.cli import main


async def running_loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_runs_on_uvloop_where_it_is_installed() -> None:
    pytest.importorskip("uvloop", reason="uvloop is not built for this platform")
    assert eventloop.run(running_loop_module()).startswith("uvloop")
    assert eventloop.run(running_loop_module(), "uvloop").startswith("uvloop")


def test_asyncio_keeps_the_standard_loop() -> None:
    assert eventloop.run(running_loop_module(), "asyncio").startswith("asyncio")


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed
    assert eventloop.run(running_loop_module()).startswith("asyncio")
    with pytest.raises(RuntimeError, match="uvloop is not installed"):
        eventloop.loop_factory("uvloop")


def test_the_cli_refuses_an_unknown_or_missing_loop(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("AURORA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AURORA_EVENT_LOOP", "trio")
    assert main(["gateway"]) == 2
    assert "AURORA_EVENT_LOOP: Input should be 'auto', 'uvloop' or 'asyncio'" in (
        capsys.readouterr().err
    )
    monkeypatch.setenv("AURORA_EVENT_LOOP", "uvloop")
    monkeypatch.setitem(sys.modules, "uvloop", None)
    assert main(["gateway"]) == 2
    assert "AURORA_EVENT_LOOP=uvloop, but uvloop is not installed" in capsys.readouterr().err
