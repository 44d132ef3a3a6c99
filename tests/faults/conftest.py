"""Fixtures for the fault suite: the session's private MariaDB, a private Redis, the right bytes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.deployment import (
    DatabaseUnderTest,
    Deployment,
    MariaDBUnderTest,
    ReferenceBodies,
    SQLiteUnderTest,
)
from tests.faults.toolkit import PrivateMariaDB
from tests.services import PrivateRedis


@pytest.fixture(scope="session")
def mariadb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMariaDB]:
    """Started once (it costs about a second); every test that uses it leaves it healthy."""
    server = PrivateMariaDB(tmp_path_factory.mktemp("mariadb"))
    yield server
    server.close()


@pytest.fixture
def mariadb(mariadb_server: PrivateMariaDB) -> Iterator[PrivateMariaDB]:
    mariadb_server.ensure_healthy()
    yield mariadb_server
    mariadb_server.ensure_healthy()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    yield server
    server.resume()
    server.stop()


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> ReferenceBodies:
    return ReferenceBodies(tmp_path_factory.mktemp("reference"))


@pytest.fixture(params=["sqlite", "mysql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DatabaseUnderTest]:
    if request.param == "sqlite":
        under_test: DatabaseUnderTest = SQLiteUnderTest(tmp_path)
    else:
        under_test = MariaDBUnderTest(request.getfixturevalue("mariadb"))
    yield under_test
    under_test.close()


@pytest.fixture
def deployment(database: DatabaseUnderTest, private_redis: PrivateRedis) -> Iterator[Deployment]:
    built = Deployment(database, private_redis)
    yield built
    built.close()
