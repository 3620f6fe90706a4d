"""The container image's runtime stage (deploy/docker/Dockerfile) installs the packages
deploy/docker/runtime-packages.sh names for the binaries it ships; check that list against the
binaries this build made. (No container runtime runs here: the image itself is not built.)"""

import os
import subprocess

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docker",
                      "runtime-packages.sh")



def test_runtime_image_package_list_covers_the_binaries(ems_node_bin, ems_controller_bin):
    # The Dockerfile's runtime stage installs what this prints for the binaries it ships.
    out = subprocess.run([SCRIPT, ems_node_bin, ems_controller_bin], capture_output=True,
                         text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    packages = out.stdout.split()
    assert "libc6" in packages, packages
    assert any(p.startswith("libgrpc++") for p in packages), packages
    assert not [p for p in packages if p.endswith("-dev")], "runtime needs no -dev package"
    for p in packages:
        status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
                                text=True)
        assert "install ok installed" in status.stdout, f"{p} is not an installed package"
