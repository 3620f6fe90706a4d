"""Fixtures: real ems-node processes on loopback, started from the build's bin directory."""

import os
import pathlib
import signal
import subprocess
import tempfile
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN_DIR = pathlib.Path(os.environ.get("EMS_BIN_DIR", REPO / "build" / "bin"))


class Node:
    """An ems-node child process; `address` is its gRPC address."""

    def __init__(self, *flags: str, local: bool = False):
        self.socket_dir = tempfile.TemporaryDirectory(prefix="ems-py-")
        self.local_socket = os.path.join(self.socket_dir.name, "node.sock") if local else ""
        args = [
            str(BIN_DIR / "ems-node"),
            "--listen=127.0.0.1:0",
            "--metrics_port=-1",
            "--log_level=warn",
            "--prefault=false",
            *flags,
        ]
        if local:
            args.append(f"--local_socket={self.local_socket}")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        self.address = ""
        for line in self.proc.stdout:
            if line.startswith("LISTENING "):
                self.address = line.split()[1]
                break
        if not self.address:
            self.stop()
            raise RuntimeError(f"ems-node did not start (exit code {self.proc.poll()})")

    def pause(self) -> None:
        """SIGSTOP, then waits until every thread of the node is stopped (delivery is
        asynchronous: a busy node could otherwise still answer one more call)."""
        self.proc.send_signal(signal.SIGSTOP)
        tasks = pathlib.Path(f"/proc/{self.proc.pid}/task")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            states = []
            for t in tasks.iterdir():
                try:
                    states.append((t / "stat").read_text().rsplit(")", 1)[1].split()[0])
                except OSError:
                    pass  # a thread that just exited
            if states and all(s in "tT" for s in states):
                return
            time.sleep(0.005)
        raise RuntimeError("ems-node did not stop")

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.socket_dir.cleanup()


@pytest.fixture(scope="module")
def node():
    n = Node("--huge_page_num=64")  # 128 MiB
    yield n
    n.stop()


@pytest.fixture(scope="module")
def local_node():
    n = Node("--huge_page_num=32", local=True)
    yield n
    n.stop()


@pytest.fixture
def client(node):
    import ems

    with ems.Client(node.address) as c:
        yield c
