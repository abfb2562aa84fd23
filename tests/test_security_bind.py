"""``evaltune ui`` listens on 127.0.0.1 unless ``--host`` says otherwise: the real socket, read from the kernel."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from tests.fixtures.browser import wait_healthy
from tests.fixtures.postgres import _free_port

pytestmark = pytest.mark.slow


def _listening(port: int) -> set[str]:
    """The local addresses with a socket in LISTEN state on ``port``, from /proc/net/tcp and tcp6."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:  # 0A: TCP_LISTEN
                continue
            raw = bytes.fromhex(address)
            # The kernel prints each 32-bit word in host (little-endian) order.
            packed = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.add(str(ipaddress.ip_address(packed)) if width == 8 else str(ipaddress.IPv6Address(packed)))
    return found


def _other_address() -> str | None:
    """A non-loopback IPv4 address of this machine, if it has one."""
    candidates = set()
    with suppress(OSError):
        candidates |= {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # UDP: picks the outgoing interface, sends nothing
            candidates.add(probe.getsockname()[0])
        except OSError:
            pass
    usable = sorted(a for a in candidates if not ipaddress.ip_address(a).is_loopback and a != "0.0.0.0")
    return usable[0] if usable else None


@contextmanager
def _ui(tmp_path: Path, *args: str) -> Iterator[int]:
    port = _free_port()
    env = {**os.environ, "EVALTUNE_DB_URL": f"sqlite:///{tmp_path / 'bind.db'}",
           "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none"}
    log = (tmp_path / f"ui-{port}.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "evaltune", "ui", "--port", str(port), *args], env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", server)
        yield port
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def test_the_app_listens_on_loopback_only_by_default(tmp_path: Path) -> None:
    with _ui(tmp_path) as port:
        assert _listening(port) == {"127.0.0.1"}
        other = _other_address()
        if other is not None:  # reachable on loopback (checked above), refused on the machine's own address
            with socket.socket() as sock, pytest.raises(OSError):
                sock.settimeout(3)
                sock.connect((other, port))


def test_host_option_exposes_it_when_asked(tmp_path: Path) -> None:
    with _ui(tmp_path, "--host", "0.0.0.0") as port:
        assert _listening(port) == {"0.0.0.0"}
    assert "exposes the app beyond this machine" in next(tmp_path.glob("ui-*.log")).read_text()
