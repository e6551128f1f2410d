"""The embedded environment for every test: AWS from moto (one server per session, reset per test)
and Kubernetes from the kmock-based emulator (one per test). See devenv/."""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import kmock
import pytest

import devenv
from controller.aws import AwsClients
from controller.settings import Settings
from tests.faults import FaultServer

REGION = "us-east-1"
FAKES = {"moto_server", "aws", "emulator", "fault_server", "faults", "prereqs", "settings"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks `fakes` on every test that talks to moto or the emulator: `-m "not fakes"` runs the pure ones
    (make mutate does)."""
    for item in items:
        if FAKES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.fakes)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[devenv.MotoServer]:
    devenv.use_fake_aws_credentials()
    with devenv.MotoServer() as server:
        yield server


@pytest.fixture()
def aws(moto_server: devenv.MotoServer) -> AwsClients:
    """Clients of an empty moto (only the default VPC)."""
    moto_server.reset()
    # No client-side budget in tests (tests/test_budget.py tests it): moto is not AWS's rate-limited API.
    return AwsClients(Settings(endpoint_url=moto_server.endpoint_url, region=REGION, max_attempts=3, budget="off"),
                      REGION)


@pytest.fixture(scope="session")
def fault_server(moto_server: devenv.MotoServer) -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


@pytest.fixture()
def faults(fault_server: FaultServer, aws: AwsClients) -> Iterator[FaultServer]:
    """A front door to the same moto that answers chosen calls with AWS errors (tests/faults.py)."""
    fault_server.injector.clear()
    yield fault_server
    fault_server.injector.clear()


@pytest.fixture()
def prereqs(aws: AwsClients) -> devenv.Prerequisites:
    return devenv.create_prerequisites(aws)


@pytest.fixture()
def settings(moto_server: devenv.MotoServer, aws: AwsClients) -> Settings:
    """The operator's settings against moto (reset by `aws`); operator_running() adds kube_url."""
    return Settings(endpoint_url=moto_server.endpoint_url, region=REGION, max_attempts=3,
                    cluster_name="test", drift_interval_seconds=2, deep_interval_seconds=2, budget="off",
                    log_format="console")


@pytest.fixture()
async def emulator() -> AsyncIterator[devenv.Emulator]:
    # Enter the emulator itself too: else its errors come back as plain-text 500s.
    async with (emulator := devenv.new_emulator()), kmock.Server(emulator):
        yield emulator
        assert not emulator.errors, f"the Kubernetes emulator failed: {emulator.errors!r}"
