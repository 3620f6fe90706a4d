"""Every rendered object against the Kubernetes API's own types, offline.

`kubectl kustomize` does not know the API: a misspelt field (`readinesProbe`) or an env value
written as a number renders fine and fails only at `kubectl apply`, or is silently dropped.
Debian's python3-kubernetes carries the API's models (client 22.6 = Kubernetes 1.22, older than
any field used here); each model lists its fields (attribute_map) and their types
(openapi_types). This walks every object and names the first field the API would not accept.
Custom resources (the ServiceMonitors) have no model and are skipped.
"""

import re

import kubernetes.client as models
import pytest

from conftest import ALL_KUSTOMIZATIONS

# apiVersion/kind -> model class name.
MODELS = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Secret"): "V1Secret",
    ("v1", "Service"): "V1Service",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("v1", "Pod"): "V1Pod",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("apps/v1", "DaemonSet"): "V1DaemonSet",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "V1ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "V1ClusterRoleBinding",
    ("rbac.authorization.k8s.io/v1", "Role"): "V1Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
}
CUSTOM_GROUPS = ("monitoring.coreos.com/",)
LIST = re.compile(r"^list\[(.+)\]$")
DICT = re.compile(r"^dict\(str, (.+)\)$")
PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float)}


def check(value, type_name, path):
    """Raises AssertionError naming `path` if `value` is not of the API type `type_name`."""
    if type_name == "object":  # IntOrString and free-form fields
        return
    if m := LIST.match(type_name):
        assert isinstance(value, list), f"{path}: expected a list, got {value!r}"
        for i, item in enumerate(value):
            check(item, m.group(1), f"{path}[{i}]")
        return
    if m := DICT.match(type_name):
        assert isinstance(value, dict), f"{path}: expected a map, got {value!r}"
        for k, v in value.items():
            check(v, m.group(1), f"{path}.{k}")
        return
    if type_name in PRIMITIVES:
        ok = isinstance(value, PRIMITIVES[type_name]) and not (
            type_name in ("int", "float") and isinstance(value, bool))
        assert ok, f"{path}: expected {type_name}, got {value!r} ({type(value).__name__})"
        return
    if type_name == "datetime":
        return
    cls = getattr(models, type_name)
    assert isinstance(value, dict), f"{path}: expected a {type_name} object, got {value!r}"
    by_json_name = {json: py for py, json in cls.attribute_map.items()}
    for key, v in value.items():
        assert key in by_json_name, \
            f"{path}: {type_name} has no field {key!r} (fields: {sorted(by_json_name)})"
        check(v, cls.openapi_types[by_json_name[key]], f"{path}.{key}")


@pytest.mark.parametrize("k", ALL_KUSTOMIZATIONS)
def test_every_object_matches_the_api_types(rendered, k):
    checked = 0
    for o in rendered[k]:
        if o["apiVersion"].startswith(CUSTOM_GROUPS):
            continue
        key = (o["apiVersion"], o["kind"])
        assert key in MODELS, f"{k}: no model for {key}: add it to MODELS"
        check(o, MODELS[key], f"{k}: {o['kind']}/{o['metadata']['name']}")
        checked += 1
    assert checked > 0


def test_the_walk_catches_typos_and_wrong_types():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "x:1", "readinesProbe": {}}]}}
    with pytest.raises(AssertionError, match="V1Container has no field 'readinesProbe'"):
        check(pod, "V1Pod", "pod")
    pod["spec"]["containers"][0] = {"name": "c", "env": [{"name": "PORT", "value": 50052}]}
    with pytest.raises(AssertionError, match=r"env\[0\]\.value: expected str"):
        check(pod, "V1Pod", "pod")
