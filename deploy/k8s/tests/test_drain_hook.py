"""The DaemonSet's preStop hook (deploy/docker/ems-node-drain) against real processes: an
ems-controller and an ems-node registered with it on loopback, as in a pod."""

import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest

DRAIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docker",
                     "ems-node-drain")


def start(argv, want, timeout=30):
    """Starts argv; returns (process, {word: value}) once stdout has printed every word in
    `want` as '<WORD> <value>' lines (LISTENING, METRICS, MEMBERSHIP ...)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = queue.Queue()
    # A reader thread: select() on a buffered pipe misses lines already read into the buffer.
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout],
                     daemon=True).start()
    found, deadline = {}, time.monotonic() + timeout
    while set(want) - set(found):
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            proc.kill()
            pytest.fail(f"{argv[0]} did not print {want} within {timeout}s: "
                        f"{proc.stderr.read()}")
        word, _, value = line.strip().partition(" ")
        found[word] = value
    return proc, found


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def drain(metrics_port, timeout_s=30):
    env = dict(os.environ, EMS_METRICS_PORT=str(metrics_port),
               EMS_DRAIN_TIMEOUT_SECONDS=str(timeout_s), EMS_DRAIN_POLL_SECONDS="0.2")
    return subprocess.run(["/bin/bash", DRAIN], env=env, capture_output=True, text=True,
                          timeout=timeout_s + 30)


def wait_registered(metrics_port, timeout_s=60):
    """Waits until GET /drain reports the node UP in the controller's map (registered)."""
    deadline = time.monotonic() + timeout_s
    state = ""
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/drain", timeout=5) as r:
            state = r.read().decode()
        if state.startswith("UP"):
            return
        time.sleep(0.1)
    pytest.fail(f"node never registered: GET /drain says {state!r}")


def node_argv(binary, *extra):
    return [binary, "--listen=127.0.0.1:0", "--metrics_port=0", "--metrics_host=127.0.0.1",
            "--huge_page_num=4", "--log_level=warn", *extra]


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="ems-drain-test.")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_drain_waits_until_the_controller_marks_the_node_down(ems_node_bin,
                                                              ems_controller_bin, workdir):
    ctl, ctl_out = start([ems_controller_bin, "--listen=127.0.0.1:0",
                          "--membership_listen=127.0.0.1:0", f"--state_dir={workdir}",
                          "--log_level=warn"], ["MEMBERSHIP", "REST"])
    try:
        node, out = start(node_argv(ems_node_bin, f"--controller={ctl_out['MEMBERSHIP']}",
                                    "--cluster=default", "--node_id=k8s-node-1"),
                          ["LISTENING", "METRICS"])
        try:
            wait_registered(out["METRICS"])
            result = drain(out["METRICS"])
            assert result.returncode == 0, result.stderr
            assert "draining" in result.stderr, result.stderr
            assert "drained: DOWN" in result.stderr, result.stderr
            assert node.poll() is None, "the hook drains; stopping is the SIGTERM's job"
        finally:
            stop(node)
        assert node.returncode == 0, node.stderr.read()
    finally:
        stop(ctl)


def test_drain_of_a_standalone_node_returns_at_once(ems_node_bin):
    node, out = start(node_argv(ems_node_bin), ["LISTENING", "METRICS"])
    try:
        result = drain(out["METRICS"])
        assert result.returncode == 0 and "standalone node" in result.stderr, result.stderr
        assert "still" not in result.stderr  # it did not poll until the timeout
    finally:
        stop(node)


def test_drain_without_a_node_does_not_block_the_pod_stop():
    # A port nothing listens on: the container may already be gone.
    result = drain(1)
    assert result.returncode == 0 and "nothing to drain" in result.stderr, result.stderr

