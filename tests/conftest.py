"""Test configuration: the ``beyond_reference`` marker and a tiny async test runner.

``async def test_*`` functions are run with :class:`asyncio.Runner`, once on the
stdlib event loop (id ``asyncio``) and once on uvloop (id ``uvloop``). No
pytest-asyncio: fixtures stay synchronous, managers are created inside the tests.

This file deliberately does not touch ``sys.path``: the package under test is the
one installed with pip.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvloop

from leasepool._engine import _set_clock_skew_for_tests

LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "beyond_reference: behaviour the pure-Python reference (leasepool 0.1.1) lacks; "
        "expected to fail or be flaky there",
    )


@pytest.fixture
def advance_clock() -> Iterator[Callable[[float], None]]:
    """Moves the engine's clock forward (its test seam), and back to real time after."""
    skew = 0.0

    def advance(seconds: float) -> None:
        nonlocal skew
        skew += seconds
        _set_clock_skew_for_tests(skew)

    try:
        yield advance
    finally:
        _set_clock_skew_for_tests(0.0)


@pytest.fixture(params=sorted(LOOP_FACTORIES))
def loop_kind(request: pytest.FixtureRequest) -> str:
    """Name of the event loop an ``async def`` test runs on."""
    kind: str = request.param
    return kind


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> None:
    """Make every coroutine test request the parametrized ``loop_kind`` fixture."""
    if collector.funcnamefilter(name) and inspect.iscoroutinefunction(obj):
        pytest.mark.usefixtures("loop_kind")(obj)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run coroutine tests to completion on a fresh loop of the requested kind."""
    func = pyfuncitem.obj
    if not inspect.iscoroutinefunction(func):
        return None
    kind = pyfuncitem.funcargs["loop_kind"]
    assert isinstance(kind, str)
    argnames = pyfuncitem._fixtureinfo.argnames
    kwargs: dict[str, Any] = {name: pyfuncitem.funcargs[name] for name in argnames}
    with asyncio.Runner(loop_factory=LOOP_FACTORIES[kind]) as runner:
        runner.run(func(**kwargs))
    return True
