"""The SSH proxy end to end: real OpenSSH client and asyncssh client, through wardgate, to a
real sshd started by the tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .harness import RunningGateway
from .ssh.gateway import ssh_cli, ssh_gateway
from .ssh.sshd import RunningSshd, have_openssh, running_sshd

pytestmark = pytest.mark.skipif(not have_openssh(), reason="OpenSSH server/client not installed")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSshd]:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, sshd: RunningSshd) -> Iterator[RunningGateway]:
    with ssh_gateway(tmp_path_factory.mktemp("gw"), sshd) as g:
        yield g


def session_events(gw: RunningGateway) -> list[object]:
    store = gw.store()
    try:
        return [e for _, e in store.read(0, 100_000)]
    finally:
        store.close()


def test_exec_relays_output_and_exit_status(gw: RunningGateway) -> None:
    out = ssh_cli(gw, "echo hello; exit 3")
    assert out.stdout == b"hello\n", out.stderr
    assert out.returncode == 3
