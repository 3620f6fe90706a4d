"""Checks over the objects `kubectl kustomize` renders from every kustomization in deploy/k8s.

What a user's `kubectl apply -k` gets must be right the first time: selectors that select,
hugepages that Kubernetes accepts and that hold the arena ems-node allocates, probes, resources,
pinned images, RBAC no wider than the controller needs, and flags the binaries accept.
"""

import re
import subprocess

import pytest

from conftest import ALL_KUSTOMIZATIONS, OVERLAYS

WORKLOAD_KINDS = {"Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass",
                  "CustomResourceDefinition"}
# What src/controller/backend/kube_backend.cc calls, per (apiGroup, resource). The issue's
# contract: nodes get/list/watch/patch; daemonsets and configmaps in the namespace; pods read.
# Secrets (each cluster's cdKey): read, write and delete by name only, never list or watch.
ALLOWED_VERBS = {
    ("", "nodes"): {"get", "list", "watch", "patch"},
    ("apps", "daemonsets"): {"get", "list", "watch", "create", "update", "patch", "delete"},
    ("", "configmaps"): {"get", "list", "watch", "create", "update", "patch", "delete"},
    ("", "secrets"): {"get", "create", "update", "delete"},
    ("", "pods"): {"get", "list", "watch"},
}
CLUSTER_WIDE_RESOURCES = {("", "nodes")}
VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
FLAG = re.compile(r"^--([A-Za-z0-9_]+)(?:=(.*))?$")
QUANTITY = re.compile(r"^([0-9]+)(Ki|Mi|Gi|Ti)?$")
UNITS = {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}


# ---------------------------------------------------------------- helpers


def objects_of(objs, kind, name=None):
    return [o for o in objs
            if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objs, kind, name):
    found = objects_of(objs, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_templates(objs):
    """(owner, pod labels, pod spec) of every workload and bare Pod."""
    for o in objs:
        if o["kind"] in WORKLOAD_KINDS:
            t = o["spec"]["template"]
            yield o, t.get("metadata", {}).get("labels", {}), t["spec"]
        elif o["kind"] == "Pod":
            yield o, o["metadata"].get("labels", {}), o["spec"]


def containers(pod_spec, init=True):
    out = list(pod_spec.get("containers", []))
    if init:
        out += pod_spec.get("initContainers", [])
    return out


def ident(o):
    return f"{o['kind']}/{o['metadata']['name']}"


def quantity_bytes(q):
    m = QUANTITY.match(str(q))
    assert m, f"quantity {q!r}: expected an integer with an optional Ki/Mi/Gi/Ti suffix"
    return int(m.group(1)) * UNITS[m.group(2)]


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def node_daemonset(objs):
    return one(objs, "DaemonSet", "ems-node")


def node_container(ds):
    return next(c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "ems-node")


def env_map(container):
    return {e["name"]: e for e in container.get("env", [])}


def flags_configmap(objs, container):
    refs = [e["configMapRef"]["name"] for e in container.get("envFrom", [])
            if "configMapRef" in e]
    assert len(refs) == 1, f"{container['name']}: expected one envFrom configMapRef, got {refs}"
    return one(objs, "ConfigMap", refs[0])


def arg_flags(container):
    """{flag: value} of the container's --flag=value args (command after the shell wrapper)."""
    out = {}
    for a in container.get("args", []):
        m = FLAG.match(a)
        assert m, f"{container['name']}: argument {a!r} is not --flag=value"
        out[m.group(1)] = m.group(2)
    return out


def substitute(value, variables):
    return VAR.sub(lambda m: variables[m.group(1)], value)


def check_flags_parse(binary, container, variables):
    """Runs `binary ARGS --help` with the $(VAR)s filled in: absl rejects an unknown flag or a
    value of the wrong type ('ERROR: ...') before it prints the usage."""
    args = [substitute(a, variables) for a in container.get("args", [])]
    out = subprocess.run([binary] + args + ["--help"], capture_output=True, text=True,
                         timeout=30)
    # absl's flag errors start the line; sanitizer reports ("==PID==ERROR: ...") do not count.
    errors = [line for line in out.stderr.splitlines() if line.startswith("ERROR:")]
    assert not errors, f"{binary} rejects the manifest's args {args}:\n" + "\n".join(errors)


# ---------------------------------------------------------------- every kustomization


@pytest.mark.parametrize("k", ALL_KUSTOMIZATIONS)
def test_workload_selectors_match_their_pod_labels(rendered, k):
    for owner, labels, _ in pod_templates(rendered[k]):
        if owner["kind"] == "Pod":
            continue
        match = owner["spec"]["selector"]["matchLabels"]
        assert selects(match, labels), f"{k}: {ident(owner)} selector {match} misses {labels}"


@pytest.mark.parametrize("k", ALL_KUSTOMIZATIONS)
def test_services_and_budgets_select_pods(rendered, k):
    # The monitoring Services select the pods an overlay runs.
    pods = [labels for o in [rendered[k]] + [rendered[x] for x in OVERLAYS]
            for _, labels, _ in pod_templates(o)]
    for svc in objects_of(rendered[k], "Service"):
        sel = svc["spec"].get("selector", {})
        assert any(selects(sel, p) for p in pods), f"{k}: {ident(svc)} selects no pod ({sel})"
    for pdb in objects_of(rendered[k], "PodDisruptionBudget"):
        sel = pdb["spec"]["selector"]["matchLabels"]
        assert any(selects(sel, p) for p in pods), f"{k}: {ident(pdb)} selects no pod ({sel})"


@pytest.mark.parametrize("k", ALL_KUSTOMIZATIONS)
def test_images_are_pinned(rendered, k):
    for owner, _, spec in pod_templates(rendered[k]):
        for c in containers(spec):
            image = c["image"]
            if "@sha256:" in image:
                continue
            name, _, tag = image.rpartition(":")
            assert name and "/" not in tag, f"{k}: {ident(owner)}/{c['name']}: {image} has no tag"
            assert tag != "latest", f"{k}: {ident(owner)}/{c['name']}: {image} is not pinned"


@pytest.mark.parametrize("k", ALL_KUSTOMIZATIONS)
def test_every_container_has_requests_and_limits(rendered, k):
    for owner, _, spec in pod_templates(rendered[k]):
        for c in containers(spec):
            res = c.get("resources", {})
            where = f"{k}: {ident(owner)}/{c['name']}"
            for part in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    assert r in res.get(part, {}), f"{where}: no {part}.{r}"


@pytest.mark.parametrize("k", ALL_KUSTOMIZATIONS)
def test_hugepage_requests_equal_limits_with_a_memory_limit(rendered, k):
    for owner, _, spec in pod_templates(rendered[k]):
        for c in containers(spec):
            res = c.get("resources", {})
            req, lim = res.get("requests", {}), res.get("limits", {})
            where = f"{k}: {ident(owner)}/{c['name']}"
            for r in set(req) | set(lim):
                if not r.startswith("hugepages-"):
                    continue
                assert r in req and r in lim, f"{where}: {r} needs both a request and a limit"
                assert quantity_bytes(req[r]) == quantity_bytes(lim[r]), \
                    f"{where}: {r} request {req[r]} != limit {lim[r]}"
                assert "memory" in lim, f"{where}: hugepages without a memory limit"


@pytest.mark.parametrize("k", ALL_KUSTOMIZATIONS)
def test_long_running_containers_have_probes(rendered, k):
    for owner, _, spec in pod_templates(rendered[k]):
        if owner["kind"] not in {"Deployment", "DaemonSet", "StatefulSet"}:
            continue
        for c in containers(spec, init=False):
            for probe in ("readinessProbe", "livenessProbe"):
                assert probe in c, f"{k}: {ident(owner)}/{c['name']} has no {probe}"


@pytest.mark.parametrize("k", ALL_KUSTOMIZATIONS)
def test_rbac_is_no_wider_than_the_controller_needs(rendered, k):
    for role in objects_of(rendered[k], "Role") + objects_of(rendered[k], "ClusterRole"):
        for rule in role.get("rules", []):
            assert "nonResourceURLs" not in rule, f"{ident(role)}: nonResourceURLs"
            assert "resourceNames" not in rule or rule["resourceNames"], ident(role)
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    key = (group, resource)
                    assert key in ALLOWED_VERBS, f"{ident(role)}: grants {key}, not needed"
                    extra = set(rule["verbs"]) - ALLOWED_VERBS[key]
                    assert not extra, f"{ident(role)}: {key} verbs {sorted(extra)} too wide"
                    # Nodes are cluster-scoped; nothing else needs cluster-wide access.
                    assert (role["kind"] == "ClusterRole") == (key in CLUSTER_WIDE_RESOURCES), \
                        f"{ident(role)}: {key} belongs in a " + \
                        ("ClusterRole" if key in CLUSTER_WIDE_RESOURCES else "namespaced Role")


# ---------------------------------------------------------------- the deployable overlays


@pytest.mark.parametrize("k", ["base"] + OVERLAYS)
def test_objects_share_one_namespace_and_bindings_name_real_accounts(rendered, k):
    objs = rendered[k]
    ns = [o["metadata"]["name"] for o in objects_of(objs, "Namespace")]
    assert len(ns) == 1, f"{k}: expected one Namespace, got {ns}"
    for o in objs:
        if o["kind"] not in CLUSTER_SCOPED:
            assert o["metadata"].get("namespace") == ns[0], f"{k}: {ident(o)} not in {ns[0]}"
    accounts = {o["metadata"]["name"] for o in objects_of(objs, "ServiceAccount")}
    for b in objects_of(objs, "RoleBinding") + objects_of(objs, "ClusterRoleBinding"):
        kind = b["roleRef"]["kind"]
        assert objects_of(objs, kind, b["roleRef"]["name"]), f"{ident(b)}: no {kind}"
        for s in b["subjects"]:
            assert s["kind"] == "ServiceAccount" and s["name"] in accounts, f"{ident(b)}: {s}"
            assert s["namespace"] == ns[0], f"{ident(b)}: subject namespace {s['namespace']}"
    for _, _, spec in pod_templates(objs):
        assert spec.get("serviceAccountName") in accounts
        for v in spec.get("volumes", []):
            if "persistentVolumeClaim" in v:
                one(objs, "PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"])


@pytest.mark.parametrize("k", ["base"] + OVERLAYS)
def test_configmap_flags_are_flags_ems_node_lists(rendered, k, node_flags, ems_node_bin):
    c = node_container(node_daemonset(rendered[k]))
    data = flags_configmap(rendered[k], c)["data"]
    unknown = set(data) - node_flags
    assert not unknown, f"{k}: ConfigMap keys {sorted(unknown)} are not ems-node flags"
    args = arg_flags(c)
    unknown = set(args) - node_flags
    assert not unknown, f"{k}: args {sorted(unknown)} are not ems-node flags"
    # Each ConfigMap key reaches the binary: --key=$(key), the env var envFrom makes of it.
    for key in data:
        assert args.get(key) == f"$({key})", f"{k}: ConfigMap key {key} is not passed as " \
                                             f"--{key}=$({key}) (args have {args.get(key)!r})"
    # Every $(VAR) resolves, or Kubernetes would pass it through literally.
    env = env_map(c)
    variables = {name: "10.0.0.1" for name in env}  # fieldRefs: node name, pod IP
    variables.update({n: e["value"] for n, e in env.items() if "value" in e})
    variables.update(data)
    for a in c.get("args", []) + c.get("command", []):
        for var in VAR.findall(a):
            assert var in variables, f"{k}: {a!r} refers to $({var}), which nothing defines"
    check_flags_parse(ems_node_bin, c, variables)


@pytest.mark.parametrize("k", ["base"] + OVERLAYS)
def test_hugepages_hold_exactly_the_arena(rendered, k):
    c = node_container(node_daemonset(rendered[k]))
    data = flags_configmap(rendered[k], c)["data"]
    pages, flavor_mb = int(data["huge_page_num"]), int(data["huge_page_flavor"])
    resource = {2: "hugepages-2Mi", 1024: "hugepages-1Gi"}[flavor_mb]
    limit = c["resources"]["limits"].get(resource)
    assert limit is not None, f"{k}: huge_page_flavor={flavor_mb} but no {resource} limit"
    assert quantity_bytes(limit) == pages * flavor_mb << 20, \
        f"{k}: {resource}={limit} but the arena is {pages} x {flavor_mb} MiB"
    # In a pod the THP fallback would be charged to the memory limit: refuse to start instead.
    assert data["require_hugepages"] == "true"


@pytest.mark.parametrize("k", ["base"] + OVERLAYS)
def test_node_reads_its_cd_key_from_a_secret_file(rendered, k):
    objs = rendered[k]
    ds = node_daemonset(objs)
    spec, c = ds["spec"]["template"]["spec"], node_container(ds)
    args = arg_flags(c)
    assert "cd_key" not in args, f"{k}: --cd_key would show the key in the host's process list"
    path = args["cd_key_file"]
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    found = [(mounts[n], volumes[n]["secret"]) for n in mounts
             if "secret" in volumes.get(n, {}) and path.startswith(mounts[n]["mountPath"] + "/")]
    assert len(found) == 1, f"{k}: --cd_key_file={path} is in no mounted Secret"
    mount, secret = found[0]
    assert mount.get("readOnly") is True
    assert not secret.get("optional", False), f"{k}: a missing Secret must not start the node"
    # The file is the Secret's key of that name, there even when empty (no credential).
    data = one(objs, "Secret", secret["secretName"]).get("data") or {}
    assert path[len(mount["mountPath"]) + 1:] in data, f"{k}: Secret has no key for {path}"
    # Mode 0440: the non-root ems user reads it through fsGroup, no one else does.
    assert secret["defaultMode"] == 0o440
    assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsGroup"]


def test_prod_serves_the_api_default_memory(rendered):
    data = flags_configmap(rendered["overlays/prod"],
                           node_container(node_daemonset(rendered["overlays/prod"])))["data"]
    assert (data["huge_page_num"], data["huge_page_flavor"]) == ("131072", "2")
    dev = flags_configmap(rendered["overlays/dev"],
                          node_container(node_daemonset(rendered["overlays/dev"])))["data"]
    assert int(dev["huge_page_num"]) < 1024, "dev should fit a small node"


@pytest.mark.parametrize("k", ["base"] + OVERLAYS)
def test_daemonset_drains_one_node_at_a_time_on_the_labelled_nodes(rendered, k):
    ds = node_daemonset(rendered[k])
    spec = ds["spec"]["template"]["spec"]
    c = node_container(ds)
    args, env = arg_flags(c), env_map(c)
    assert ds["spec"]["updateStrategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert spec["nodeSelector"] == {"ems": "true"}
    assert spec.get("tolerations"), f"{k}: no tolerations"
    # hostNetwork: the ports are the host's, declared so the scheduler sees conflicts.
    assert spec["hostNetwork"] is True and spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    ports = {p["name"]: p for p in c["ports"]}
    for p in ports.values():
        assert p.get("hostPort") == p["containerPort"], f"{k}: port {p}"
    assert args["listen"].endswith(f":{ports['grpc']['containerPort']}")
    metrics_port = ports["metrics"]["containerPort"]
    assert args["metrics_port"] == str(metrics_port)
    assert args["bulk_port"] == str(ports["bulk"]["containerPort"])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == "/healthz" and get["port"] in ("metrics", metrics_port), probe
    # preStop drains through the metrics port within the grace period.
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["/usr/local/bin/ems-node-drain"]
    assert env["EMS_METRICS_PORT"]["value"] == str(metrics_port)
    drain = int(env["EMS_DRAIN_TIMEOUT_SECONDS"]["value"])
    shutdown = int(flags_configmap(rendered[k], c)["data"]["shutdown_grace_seconds"])
    grace = spec["terminationGracePeriodSeconds"]
    assert grace >= drain + shutdown + 10, \
        f"{k}: grace {grace}s < drain {drain}s + shutdown {shutdown}s + 10s margin"
    # The socket lives in the host's /run/ems, shared with inference pods.
    host_dirs = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert any(host_dirs.get(n) == "/run/ems" and p == "/run/ems" for n, p in mounts.items())
    assert args["local_socket"].startswith("/run/ems/")
    assert spec["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize("k", ["base"] + OVERLAYS)
def test_controller_args_parse_and_it_creates_daemonsets_with_the_same_image(
        rendered, k, controller_flags, ems_controller_bin):
    objs = rendered[k]
    dep = one(objs, "Deployment", "ems-controller")
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    c = dep["spec"]["template"]["spec"]["containers"][0]
    args = arg_flags(c)
    unknown = set(args) - controller_flags
    assert not unknown, f"{k}: ems-controller args {sorted(unknown)} are not its flags"
    env = {n: e["value"] for n, e in env_map(c).items()}
    assert env["EMS_NODE_IMAGE"] == node_container(node_daemonset(objs))["image"]
    check_flags_parse(ems_controller_bin, c, env)
    # Nodes register at the address the controller's Service serves membership on.
    svc = one(objs, "Service", "ems-controller")
    ns = dep["metadata"]["namespace"]
    port = next(p["port"] for p in svc["spec"]["ports"] if p["name"] == "membership")
    want = f"ems-controller.{ns}.svc:{port}"
    assert args["k8s_controller_address"] == want
    data = flags_configmap(objs, node_container(node_daemonset(objs)))["data"]
    assert data["controller"] == want


def test_example_pod_reaches_the_local_node(rendered):
    prod = rendered["overlays/prod"]
    ds = node_daemonset(prod)
    ds_spec, node = ds["spec"]["template"]["spec"], node_container(ds)
    pod = one(rendered["examples"], "Pod", "ems-inference-example")
    spec = pod["spec"]
    c = spec["containers"][0]
    # Scheduled where an ems-node runs, tolerating what it tolerates.
    assert spec["nodeSelector"] == ds_spec["nodeSelector"]
    for t in ds_spec["tolerations"]:
        assert t in spec["tolerations"]
    # Mounts the same host directory and may connect to the socket (group ems).
    vol = next(v for v in spec["volumes"] if "hostPath" in v)
    assert vol["hostPath"]["path"] == "/run/ems"
    assert any(m["name"] == vol["name"] and m["mountPath"] == "/run/ems"
               for m in c["volumeMounts"])
    assert ds_spec["securityContext"]["runAsGroup"] in spec["securityContext"][
        "supplementalGroups"]
    assert arg_flags({"name": "x", "args": c["args"][1:]})["local_socket"] == \
        arg_flags(node)["local_socket"]
    grpc = next(p["containerPort"] for p in node["ports"] if p["name"] == "grpc")
    assert f"--node=$(HOST_IP):{grpc}" in c["args"]
    assert env_map(c)["HOST_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"


def test_service_monitors_scrape_named_ports(rendered):
    objs = rendered["monitoring"]
    services = objects_of(objs, "Service") + objects_of(rendered["overlays/prod"], "Service")
    metrics_port = next(p["containerPort"] for p in
                        node_container(node_daemonset(rendered["overlays/prod"]))["ports"]
                        if p["name"] == "metrics")
    for sm in objects_of(objs, "ServiceMonitor"):
        matching = [s for s in services
                    if selects(sm["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
        assert matching, f"{ident(sm)} selects no Service"
        for ep in sm["spec"]["endpoints"]:
            assert any(p["name"] == ep["port"] for s in matching for p in s["spec"]["ports"])
    svc = one(objs, "Service", "ems-node-metrics")
    assert svc["spec"]["ports"][0]["targetPort"] == metrics_port
