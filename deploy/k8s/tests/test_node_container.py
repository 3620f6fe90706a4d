"""ems-node's container command from the rendered DaemonSet, run for real: the umask wrapper
must leave the Unix socket connectable by the ems group (inference pods with
supplementalGroups [10001]) and by nobody else."""

import os
import shutil
import stat
import tempfile

from test_drain_hook import start, stop
from test_manifests import node_container, node_daemonset


def test_socket_is_group_connectable_through_the_manifest_command(rendered, ems_node_bin):
    command = node_container(node_daemonset(rendered["overlays/prod"]))["command"]
    assert "/usr/local/bin/ems-node" in command[2], command
    # The image's path -> this build's binary; the rest of the wrapper as Kubernetes runs it.
    command = command[:2] + [command[2].replace("/usr/local/bin/ems-node", ems_node_bin)] + \
        command[3:]
    workdir = tempfile.mkdtemp(prefix="ems-socket-test.")
    socket = os.path.join(workdir, "ems.sock")
    old_umask = os.umask(0o022)  # what container runtimes start processes with
    try:
        node, _ = start(command + ["--listen=127.0.0.1:0", "--metrics_port=0",
                                   "--metrics_host=127.0.0.1", "--huge_page_num=4",
                                   f"--local_socket={socket}", "--log_level=warn"],
                        ["LISTENING", "METRICS"])
    finally:
        os.umask(old_umask)
    try:
        mode = os.stat(socket).st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o770, oct(stat.S_IMODE(mode))
    finally:
        stop(node)
        shutil.rmtree(workdir, ignore_errors=True)
    assert node.returncode == 0, node.stderr.read()
