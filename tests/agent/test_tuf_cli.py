"""``fleetd-agent-tuf``, the conformance CLI, run as a subprocess against a simulated
repository over plain HTTP (as the tuf-conformance suite serves it), over HTTPS with
``--ca-file``, and over HTTPS requiring a client certificate (``--client-cert``,
``--client-key``) as fleetd's control API does."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.tuf_server import (
    RepositoryServer,
    make_client_identity,
    make_server_tls,
    serve_repository,
)
from tests.support.tuf_simulator import Endless, SimulatedRepository

EXECUTABLE = Path(sys.executable).parent / "fleetd-agent-tuf"
PATH = "files/app.txt"
CONTENT = b"version 1\n"


@dataclass
class Cli:
    """The CLI with one metadata and one target directory, against one repository."""

    metadata_dir: Path
    target_dir: Path
    server: RepositoryServer
    command: tuple[str, ...] = (str(EXECUTABLE),)
    extra: tuple[str, ...] = ()

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.command, "--metadata-dir", str(self.metadata_dir), *self.extra, *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def init(self, root: Path) -> subprocess.CompletedProcess[str]:
        return self.run("init", str(root))

    def refresh(self) -> subprocess.CompletedProcess[str]:
        return self.run("--metadata-url", self.server.metadata_url, "refresh")

    def download(self, name: str = PATH) -> subprocess.CompletedProcess[str]:
        return self.run(
            "--metadata-url",
            self.server.metadata_url,
            "--target-name",
            name,
            "--target-base-url",
            self.server.targets_url,
            "--target-dir",
            str(self.target_dir),
            "download",
        )

    def targets(self) -> dict[str, bytes]:
        if not self.target_dir.exists():
            return {}
        return {p.name: p.read_bytes() for p in self.target_dir.iterdir()}


@pytest.fixture
def repo() -> SimulatedRepository:
    return SimulatedRepository()


@pytest.fixture
def cli(tmp_path: Path, repo: SimulatedRepository) -> Iterator[Cli]:
    with serve_repository(repo) as server:
        client = Cli(tmp_path / "metadata", tmp_path / "targets", server)
        root = tmp_path / "initial_root.json"
        root.write_bytes(repo.root_bytes)
        assert client.init(root).returncode == 0
        yield client


def test_the_executable_is_installed() -> None:
    assert EXECUTABLE.is_file()


def test_init_trusts_the_root_without_touching_the_network(
    tmp_path: Path, repo: SimulatedRepository
) -> None:
    with serve_repository(repo) as server:
        client = Cli(tmp_path / "metadata", tmp_path / "targets", server)
        root = tmp_path / "root.json"
        root.write_bytes(repo.root_bytes)
        result = client.init(root)
        assert result.returncode == 0, result.stderr
        assert (client.metadata_dir / "root.json").read_bytes() == repo.root_bytes
        assert server.requests == []


def test_init_of_a_missing_root_file_exits_1(tmp_path: Path, repo: SimulatedRepository) -> None:
    with serve_repository(repo) as server:
        result = Cli(tmp_path / "m", tmp_path / "t", server).init(tmp_path / "nope.json")
    assert result.returncode == 1
    assert "init failed" in result.stderr


def test_refresh_keeps_the_metadata_under_unversioned_names(
    cli: Cli, repo: SimulatedRepository
) -> None:
    repo.add_target(PATH, CONTENT)
    result = cli.refresh()
    assert result.returncode == 0, result.stderr
    for role in ("root", "timestamp", "snapshot", "targets"):
        assert (cli.metadata_dir / f"{role}.json").is_file()
    assert (cli.metadata_dir / "timestamp.json").read_bytes() == repo.files[
        "metadata/timestamp.json"
    ]
    assert not any(p.name.startswith("1.") for p in cli.metadata_dir.iterdir())


def test_refresh_follows_a_root_rotation(cli: Cli, repo: SimulatedRepository) -> None:
    repo.rotate_root()
    assert cli.refresh().returncode == 0
    assert (cli.metadata_dir / "root.json").read_bytes() == repo.root_bytes


def test_download_stores_the_verified_target_and_does_not_download_it_twice(
    cli: Cli, repo: SimulatedRepository
) -> None:
    repo.add_target(PATH, CONTENT)
    result = cli.download()
    assert result.returncode == 0, result.stderr
    assert list(cli.targets().values()) == [CONTENT]
    assert cli.download().returncode == 0
    assert len(cli.server.fetched("targets/")) == 1


def test_a_changed_target_lands_under_the_same_file_name(
    cli: Cli, repo: SimulatedRepository
) -> None:
    repo.add_target(PATH, CONTENT)
    assert cli.download().returncode == 0
    first = cli.targets()
    repo.add_target(PATH, b"version 2, longer\n")
    assert cli.download().returncode == 0
    second = cli.targets()
    assert list(first) == list(second)
    assert list(second.values()) == [b"version 2, longer\n"]


def test_download_of_an_unknown_target_exits_1(cli: Cli, repo: SimulatedRepository) -> None:
    repo.add_target(PATH, CONTENT)
    result = cli.download("files/other.txt")
    assert result.returncode == 1
    assert "no trusted role lists" in result.stderr
    assert cli.targets() == {}


def test_download_of_swapped_content_exits_1_and_stores_nothing(
    cli: Cli, repo: SimulatedRepository
) -> None:
    target = repo.add_target(PATH, CONTENT)
    repo.overrides[repo.target_url_path(target)] = b"version X\n"
    result = cli.download()
    assert result.returncode == 1
    assert "LengthOrHashMismatchError" in result.stderr
    assert cli.targets() == {}


def test_download_of_endless_data_exits_1_and_stores_nothing(
    cli: Cli, repo: SimulatedRepository
) -> None:
    target = repo.add_target(PATH, CONTENT)
    repo.overrides[repo.target_url_path(target)] = Endless()
    result = cli.download()
    assert result.returncode == 1
    assert "DownloadLengthMismatchError" in result.stderr
    assert cli.targets() == {}


def test_refresh_against_a_rolled_back_timestamp_exits_1(
    cli: Cli, repo: SimulatedRepository
) -> None:
    old = repo.files["metadata/timestamp.json"]
    repo.add_target(PATH, CONTENT)
    assert cli.refresh().returncode == 0
    repo.overrides["metadata/timestamp.json"] = old
    result = cli.refresh()
    assert result.returncode == 1
    assert "BadVersionNumberError" in result.stderr


def test_usage_errors_exit_1(cli: Cli) -> None:
    assert cli.run("refresh").returncode == 1  # no --metadata-url
    assert cli.run("--metadata-url", cli.server.metadata_url, "download").returncode == 1
    assert cli.run("frobnicate").returncode == 1


def test_https_with_the_ca_file_and_python_m(tmp_path: Path, repo: SimulatedRepository) -> None:
    tls = make_server_tls(tmp_path / "tls")
    repo.add_target(PATH, CONTENT)
    root = tmp_path / "root.json"
    root.write_bytes(repo.root_bytes)
    with serve_repository(repo, tls) as server:
        client = Cli(
            tmp_path / "metadata",
            tmp_path / "targets",
            server,
            command=(sys.executable, "-m", "agent.tuf_cli"),
            extra=("--ca-file", str(tls.ca_file)),
        )
        assert client.init(root).returncode == 0
        result = client.download()
        assert result.returncode == 0, result.stderr
        assert list(client.targets().values()) == [CONTENT]
        other_ca = make_server_tls(tmp_path / "other").ca_file
        untrusting = Cli(client.metadata_dir, client.target_dir, server, client.command)
        untrusting.extra = ("--ca-file", str(other_ca))
        assert untrusting.refresh().returncode == 1


def test_a_repository_that_requires_a_client_certificate_gets_the_one_given(
    tmp_path: Path, repo: SimulatedRepository
) -> None:
    """As fleetd's control API serves devices: ``--client-cert``/``--client-key`` are
    presented on every request; without them the repository refuses the refresh."""
    tls = make_server_tls(tmp_path / "tls")
    assert tls.ca is not None
    device = make_client_identity(tmp_path / "device", tls.ca, "rpi-001")
    repo.add_target(PATH, CONTENT)
    root = tmp_path / "root.json"
    root.write_bytes(repo.root_bytes)
    with serve_repository(repo, tls, client_ca=tls.ca_file) as server:
        anonymous = Cli(
            tmp_path / "anonymous", tmp_path / "t0", server, extra=("--ca-file", str(tls.ca_file))
        )
        assert anonymous.init(root).returncode == 0
        result = anonymous.refresh()
        assert result.returncode == 1
        assert "refresh failed" in result.stderr
        client = Cli(
            tmp_path / "metadata",
            tmp_path / "targets",
            server,
            extra=(
                "--ca-file",
                str(tls.ca_file),
                "--client-cert",
                str(device.cert_file),
                "--client-key",
                str(device.key_file),
            ),
        )
        assert client.init(root).returncode == 0
        result = client.download()
        assert result.returncode == 0, result.stderr
        assert list(client.targets().values()) == [CONTENT]
    assert server.clients and set(server.clients) == {"rpi-001"}


def test_a_client_certificate_without_its_key_exits_1(cli: Cli, tmp_path: Path) -> None:
    result = cli.run(
        "--metadata-url", cli.server.metadata_url, "--client-cert", str(tmp_path / "c"), "refresh"
    )
    assert result.returncode == 1
    assert "--client-cert and --client-key go together" in result.stderr
