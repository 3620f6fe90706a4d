"""Fixtures of the deploy/k8s tests: the renderer, the built binaries and rendered manifests.

CTest (deploy/k8s/CMakeLists.txt) passes the paths in the environment:
  EMS_KUBECTL      kubectl whose `kubectl kustomize` is kustomize v4 or later
  EMS_BIN_DIR      the build's bin/ (ems-node, ems-controller)
  EMS_K8S_DIR      deploy/k8s of the source tree
"""

import os
import re
import subprocess

import pytest
import yaml

K8S_DIR = os.environ.get(
    "EMS_K8S_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# Every kustomization the repository ships; each must render and pass the checks.
OVERLAYS = ["overlays/dev", "overlays/prod"]
ALL_KUSTOMIZATIONS = ["base"] + OVERLAYS + ["monitoring", "examples"]


def _required_env(name, what):
    value = os.environ.get(name, "")
    if not value:
        pytest.fail(f"{name} is not set: {what} (run through ctest, or set it by hand)")
    return value


@pytest.fixture(scope="session")
def kubectl():
    path = _required_env(
        "EMS_KUBECTL",
        "no kubectl with kustomize v4+ was found at configure time; run "
        "scripts/install-deps.sh, then re-run cmake")
    if not os.access(path, os.X_OK):
        pytest.fail(f"EMS_KUBECTL={path} is not an executable")
    return path


def _bin(name):
    path = os.path.join(_required_env("EMS_BIN_DIR", "the build's bin directory"), name)
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: build it first (ninja -C build {name})")
    return path


@pytest.fixture(scope="session")
def ems_node_bin():
    return _bin("ems-node")


@pytest.fixture(scope="session")
def ems_controller_bin():
    return _bin("ems-controller")


def help_flags(binary):
    """The flag names `binary --help` lists (absl's usage format: '    --name (...')."""
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    flags = set(re.findall(r"^\s+--([A-Za-z0-9_]+) \(", out.stdout, re.MULTILINE))
    assert flags, f"{binary} --help listed no flags:\n{out.stdout}\n{out.stderr}"
    return flags


@pytest.fixture(scope="session")
def node_flags(ems_node_bin):
    return help_flags(ems_node_bin)


@pytest.fixture(scope="session")
def controller_flags(ems_controller_bin):
    return help_flags(ems_controller_bin)


def render(kubectl, kustomization):
    """Renders deploy/k8s/<kustomization> with `kubectl kustomize`; returns the objects."""
    path = os.path.join(K8S_DIR, kustomization)
    out = subprocess.run([kubectl, "kustomize", path], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, f"kubectl kustomize {kustomization} failed:\n{out.stderr}"
    # Deprecation notices come on stderr: the files must use current syntax.
    assert out.stderr.strip() == "", f"kubectl kustomize {kustomization} warned:\n{out.stderr}"
    objects = [d for d in yaml.safe_load_all(out.stdout) if d is not None]
    assert objects, f"{kustomization} rendered nothing"
    return objects


@pytest.fixture(scope="session")
def rendered(kubectl):
    """{kustomization: [objects]} for every kustomization, rendered once per session."""
    return {k: render(kubectl, k) for k in ALL_KUSTOMIZATIONS}
