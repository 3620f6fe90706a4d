"""The container image's runtime stage (deploy/docker/Dockerfile) installs the packages
deploy/docker/runtime-packages.sh names for the binaries it ships; check that list against the
binaries this build made. (No container runtime runs here: the image itself is not built.)"""

import os
import re
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


DOCKERFILE = os.path.join(os.path.dirname(SCRIPT), "Dockerfile")


def image_contents():
    """(programs in /usr/local/bin, USER uid:gid) that deploy/docker/Dockerfile installs."""
    text = open(DOCKERFILE).read()
    loop = re.search(r"for b in ([\w\- ]+); do", text)
    assert loop, "Dockerfile: the loop over the shipped binaries moved; update this test"
    programs = set(loop.group(1).split())
    programs |= set(re.findall(r"cp /src/deploy/docker/([\w\-]+) /out/bin/", text))
    assert re.search(r"COPY --from=build /out/bin/ /usr/local/bin/", text)
    user = re.findall(r"^USER (\d+):(\d+)$", text, re.MULTILINE)
    assert len(user) == 1, user
    return programs, tuple(int(x) for x in user[0])


def test_image_ships_what_the_manifests_run(rendered):
    programs, (uid, gid) = image_contents()
    for k, objs in rendered.items():
        for o in objs:
            spec = o.get("spec", {}).get("template", {}).get("spec") or (
                o["spec"] if o["kind"] == "Pod" else None)
            if spec is None:
                continue
            for c in spec.get("containers", []) + spec.get("initContainers", []):
                words = c.get("command", []) + c.get("args", []) + \
                    c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
                for word in words:
                    for program in re.findall(r"/usr/local/bin/([\w\-]+)", word):
                        assert program in programs, \
                            f"{k}: {o['kind']}/{c['name']} runs {program}, not in the image"
            # EMS's own pods run as the image's user (the example pod is a stranger on purpose:
            # it reaches the socket through its supplemental group).
            ctx = spec.get("securityContext", {})
            if o["kind"] in ("DaemonSet", "Deployment"):
                assert (ctx.get("runAsUser"), ctx.get("runAsGroup", gid)) == (uid, gid), \
                    f"{k}: {o['kind']} runs as {ctx}, the image's user is {uid}:{gid}"


def test_copied_sources_exist():
    root = os.path.join(os.path.dirname(SCRIPT), "..", "..")
    text = open(DOCKERFILE).read()
    for src in re.findall(r"^COPY (?!--from)(\S+) ", text, re.MULTILINE):
        assert os.path.exists(os.path.join(root, src)), f"Dockerfile copies missing {src}"
    for path in re.findall(r"/src/((?:scripts|deploy)/[\w\-/.]+)", text):
        assert os.access(os.path.join(root, path), os.X_OK), f"{path} is not an executable"
