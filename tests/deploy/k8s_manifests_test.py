"""Validates Kubernetes objects rendered from deploy/k8s (kubectl kustomize OVERLAY).

Usage: k8s_manifests_test.py SOURCE_DIR RENDERED.yaml [BIN_DIR]   (Debian python3-yaml)

Checks: required fields per kind; selectors match pod labels; every container has an image,
resources and probes; gRPC probes on the port named grpc; every ConfigMap, Secret, PVC, Service
and $(VAR) a pod refers to exists in the render; container args are --flag=value with flags the
binary defines (BIN_DIR/BINARY --helpfull when built, else ABSL_FLAG in its sources); listen
addresses on the ports named grpc/http/metrics; the router's --shards name exactly the cache node
StatefulSet's pods by their stable DNS names and its --workers=dns:SERVICE:PORT the headless
Service of the worker Deployment; workers get a GPU and --device=cuda.
"""

import os
import re
import subprocess
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import metrics_catalogue  # pylint: disable=wrong-import-position

# semshare-<name> binary -> its main source file.
BINARIES = {
    "semshare-cache-node": "cache_node/main.cc",
    "semshare-worker": "inference_worker/service/main.cc",
    "semshare-router": "router/main.cc",
}
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
# Port names every semshare container has, and the flag that binds each.
LISTEN_FLAGS = {"listen": "grpc", "metrics_listen": "metrics", "http_listen": "http"}
UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}

errors = []
notes = []


def fail(where, message):
  errors.append("%s: %s" % (where, message))


def quantity(value):
  match = re.fullmatch(r"([0-9.]+)(m|Ki|Mi|Gi|Ti|k|M|G|T)?", str(value))
  if not match:
    return None
  number = float(match.group(1))
  unit = match.group(2)
  return number / 1000 if unit == "m" else number * UNITS.get(unit, 1)


def flags_from_sources(source_dir, main_source):
  """ABSL_FLAG names in the main source and, transitively, the project .cc files behind its
  project includes (e.g. inference_worker/tools/reuse_flags.cc)."""
  flags, seen, todo = set(), set(), [main_source]
  while todo:
    path = todo.pop()
    if path in seen or not os.path.exists(os.path.join(source_dir, path)):
      continue
    seen.add(path)
    with open(os.path.join(source_dir, path), encoding="utf-8") as f:
      text = f.read()
    flags.update(re.findall(r"ABSL_FLAG\(\s*[^,]+,\s*([A-Za-z0-9_]+)\s*,", text))
    for header in re.findall(r'#include "([^"]+)\.h"', text):
      todo.extend([header + ".h", header + ".cc"])
  return flags


def flags_from_binary(binary):
  out = subprocess.run([binary, "--helpfull"], capture_output=True, text=True, timeout=60)
  return set(re.findall(r"^\s+--([A-Za-z0-9_]+) \(", out.stdout + out.stderr, re.M))


def defined_flags(source_dir, bin_dir, binary):
  if bin_dir and os.access(os.path.join(bin_dir, binary), os.X_OK):
    flags = flags_from_binary(os.path.join(bin_dir, binary))
    if flags:
      return flags, "%s --helpfull" % os.path.join(bin_dir, binary)
  return flags_from_sources(source_dir, BINARIES[binary]), "ABSL_FLAG in the sources"


def labels_match(selector, labels):
  return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def main(source_dir, rendered, bin_dir=None):
  with open(rendered, encoding="utf-8") as f:
    objects = [o for o in yaml.safe_load_all(f) if o]
  by_kind = {}
  for obj in objects:
    where = "%s/%s" % (obj.get("kind"), obj.get("metadata", {}).get("name"))
    for key in ("apiVersion", "kind", "metadata"):
      if key not in obj:
        fail(where, "no %s" % key)
    names = by_kind.setdefault(obj.get("kind"), {})
    if obj["metadata"].get("name") in names:
      fail(where, "defined twice")
    names[obj["metadata"].get("name")] = obj
  namespaces = {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"}
  if len(namespaces) != 1:
    fail("render", "objects in several namespaces: %s" % sorted(map(str, namespaces)))

  workloads = [o for kind in WORKLOADS for o in by_kind.get(kind, {}).values()]
  config_maps = by_kind.get("ConfigMap", {})
  secrets = by_kind.get("Secret", {})
  services = by_kind.get("Service", {})
  claims = by_kind.get("PersistentVolumeClaim", {})

  for name, config_map in config_maps.items():
    if not config_map.get("data"):
      fail("ConfigMap/" + name, "no data")
  for name, secret in secrets.items():
    if not secret.get("data") and not secret.get("stringData"):
      fail("Secret/" + name, "no data")
  for name, claim in claims.items():
    spec = claim.get("spec", {})
    if not spec.get("accessModes") or not spec.get("resources", {}).get("requests", {}).get("storage"):
      fail("PersistentVolumeClaim/" + name, "needs accessModes and resources.requests.storage")

  pod_labels = {}
  stateful_pods = {}  # StatefulSet name -> the DNS names of its pods, "POD.SERVICE:GRPC_PORT"
  container_ports = {}  # workload name -> {port name: number}
  for workload in workloads:
    kind, name = workload["kind"], workload["metadata"]["name"]
    where = "%s/%s" % (kind, name)
    spec = workload.get("spec", {})
    template = spec.get("template", {})
    labels = template.get("metadata", {}).get("labels", {})
    pod_labels[name] = labels
    selector = spec.get("selector", {}).get("matchLabels", {})
    if not labels_match(selector, labels):
      fail(where, "selector %s does not match the pod labels %s" % (selector, labels))
    pod = template.get("spec", {})
    if not pod.get("containers"):
      fail(where, "no containers")
      continue
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    claim_templates = {c["metadata"]["name"]: c for c in spec.get("volumeClaimTemplates", [])}
    for claim_template in claim_templates.values():
      if not claim_template.get("spec", {}).get("resources", {}).get("requests", {}).get("storage"):
        fail(where, "volumeClaimTemplate %s: no storage request" % claim_template["metadata"]["name"])
    for volume_name, volume in volumes.items():
      if "configMap" in volume and volume["configMap"]["name"] not in config_maps:
        fail(where, "volume %s: no ConfigMap %s" % (volume_name, volume["configMap"]["name"]))
      if "secret" in volume and volume["secret"]["secretName"] not in secrets:
        fail(where, "volume %s: no Secret %s" % (volume_name, volume["secret"]["secretName"]))
      if "persistentVolumeClaim" in volume and volume["persistentVolumeClaim"]["claimName"] not in claims:
        fail(where, "volume %s: no PersistentVolumeClaim %s" % (volume_name, volume["persistentVolumeClaim"]["claimName"]))

    ports_here = {}
    for container in pod["containers"]:
      cwhere = "%s container %s" % (where, container.get("name"))
      if not container.get("image"):
        fail(cwhere, "no image")
      resources = container.get("resources", {})
      requests, limits = resources.get("requests", {}), resources.get("limits", {})
      for key in ("cpu", "memory"):
        if key not in requests:
          fail(cwhere, "no resources.requests.%s" % key)
      if "memory" not in limits:
        fail(cwhere, "no resources.limits.memory")
      for key, limit in limits.items():
        if key in requests and quantity(requests[key]) > quantity(limit):
          fail(cwhere, "%s request %s above its limit %s" % (key, requests[key], limit))
      if "nvidia.com/gpu" in requests or "nvidia.com/gpu" in limits:
        if str(requests.get("nvidia.com/gpu")) != str(limits.get("nvidia.com/gpu")):
          fail(cwhere, "nvidia.com/gpu request and limit differ")
      ports = {}
      for port in container.get("ports", []):
        if not port.get("name"):
          fail(cwhere, "port %s has no name" % port.get("containerPort"))
        ports[port.get("name")] = port.get("containerPort")
      ports_here.update(ports)
      for required in ("grpc", "metrics"):
        if required not in ports:
          fail(cwhere, "no container port named %s" % required)
      annotations = template.get("metadata", {}).get("annotations", {})
      if annotations.get("prometheus.io/scrape") != "true" or annotations.get("prometheus.io/port") != str(ports.get("metrics")):
        fail(cwhere, "pod annotations prometheus.io/scrape=true, prometheus.io/port=<metrics port> missing")
      for probe_kind in ("readinessProbe", "livenessProbe"):
        if probe_kind not in container:
          fail(cwhere, "no %s" % probe_kind)
      for probe_kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container.get(probe_kind)
        if not probe:
          continue
        if "grpc" in probe and probe["grpc"].get("port") != ports.get("grpc"):
          fail(cwhere, "%s: gRPC probe on %s, not the grpc port %s" % (probe_kind, probe["grpc"].get("port"), ports.get("grpc")))
        if "httpGet" in probe:
          port = probe["httpGet"].get("port")
          if port not in ports and port not in ports.values():
            fail(cwhere, "%s: HTTP probe on port %s the container does not have" % (probe_kind, port))
        if not any(k in probe for k in ("grpc", "httpGet", "tcpSocket", "exec")):
          fail(cwhere, "%s has no handler" % probe_kind)

      # Environment: what $(VAR) may refer to.
      env = {}
      for item in container.get("env", []):
        env[item["name"]] = item.get("value")
        ref = item.get("valueFrom", {})
        if "configMapKeyRef" in ref:
          cm = config_maps.get(ref["configMapKeyRef"]["name"])
          if cm is None or ref["configMapKeyRef"]["key"] not in cm.get("data", {}):
            fail(cwhere, "env %s: no ConfigMap key %s" % (item["name"], ref["configMapKeyRef"]))
          else:
            env[item["name"]] = cm["data"][ref["configMapKeyRef"]["key"]]
        if "secretKeyRef" in ref:
          secret = secrets.get(ref["secretKeyRef"]["name"])
          if secret is None or ref["secretKeyRef"]["key"] not in secret.get("data", {}):
            fail(cwhere, "env %s: no Secret key %s" % (item["name"], ref["secretKeyRef"]))
      for source in container.get("envFrom", []):
        if "configMapRef" in source:
          cm = config_maps.get(source["configMapRef"]["name"])
          if cm is None:
            fail(cwhere, "envFrom: no ConfigMap %s" % source["configMapRef"]["name"])
          else:
            env.update(cm.get("data", {}))
        if "secretRef" in source and source["secretRef"]["name"] not in secrets:
          fail(cwhere, "envFrom: no Secret %s" % source["secretRef"]["name"])
      for mount in container.get("volumeMounts", []):
        if mount["name"] not in volumes and mount["name"] not in claim_templates:
          fail(cwhere, "volumeMount %s: no such volume" % mount["name"])

      # Command and flags.
      command = container.get("command") or []
      binary = os.path.basename(command[0]) if command else None
      if binary not in BINARIES:
        fail(cwhere, "command %s is not one of %s" % (command, sorted(BINARIES)))
        continue
      flags, origin = defined_flags(source_dir, bin_dir, binary)
      args = {}
      for arg in container.get("args", []):
        match = re.fullmatch(r"--([A-Za-z0-9_-]+)(?:=(.*))?", arg, re.S)
        if not match:
          fail(cwhere, "argument %r is not --flag=value" % arg)
          continue
        flag = match.group(1).replace("-", "_")
        value = match.group(2) if match.group(2) is not None else "true"
        for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", value):
          if var not in env:
            fail(cwhere, "%s refers to $(%s), which no env or ConfigMap defines" % (arg, var))
          else:
            value = value.replace("$(%s)" % var, str(env[var]))
        args[flag] = value
        if flag not in flags:
          fail(cwhere, "--%s is not a flag of %s (%s)" % (match.group(1), binary, origin))
      for flag, port_name in LISTEN_FLAGS.items():
        if flag in args:
          port = args[flag].rsplit(":", 1)[-1]
          if port_name not in ports or port != str(ports[port_name]):
            fail(cwhere, "--%s=%s is not on the port named %s (%s)" % (flag, args[flag], port_name, ports.get(port_name)))
        elif port_name in ports:
          fail(cwhere, "port %s is declared but no --%s binds it" % (port_name, flag.replace("_", "-")))
      if binary == "semshare-worker":
        if args.get("device") != "cuda" or "nvidia.com/gpu" not in requests:
          fail(cwhere, "workers run with --device=cuda and request nvidia.com/gpu")
      if binary == "semshare-cache-node":
        capacity = int(args.get("capacity_bytes", "0") or 0)
        storage = min((quantity(c["spec"]["resources"]["requests"]["storage"]) for c in claim_templates.values()), default=None)
        if capacity <= 0 or storage is None or capacity >= storage:
          fail(cwhere, "--capacity-bytes=%s must be set and below the volume (%s bytes)" % (capacity, storage))
      container["_args"] = args
    container_ports[name] = ports_here

    if kind == "StatefulSet":
      service = services.get(spec.get("serviceName"))
      if service is None or service["spec"].get("clusterIP") != "None":
        fail(where, "serviceName %s is not a headless Service in the render" % spec.get("serviceName"))
      elif not labels_match(service["spec"].get("selector"), labels):
        fail(where, "its Service %s does not select its pods" % spec.get("serviceName"))
      else:
        replicas = spec.get("replicas", 1)
        stateful_pods[name] = ["%s-%d.%s:%s" % (name, i, spec["serviceName"], ports_here.get("grpc")) for i in range(replicas)]

  # Services select a workload's pods and point at its named ports.
  for name, service in services.items():
    where = "Service/" + name
    selector = service.get("spec", {}).get("selector")
    selected = [w for w in workloads if labels_match(selector, pod_labels.get(w["metadata"]["name"], {}))]
    if not selected:
      fail(where, "selector %s matches no pod" % selector)
      continue
    for port in service["spec"].get("ports", []):
      if not port.get("name"):
        fail(where, "port %s has no name" % port.get("port"))
      target = port.get("targetPort", port.get("port"))
      for workload in selected:
        named = container_ports[workload["metadata"]["name"]]
        if target not in named and target not in named.values():
          fail(where, "targetPort %s: no such port on %s" % (target, workload["metadata"]["name"]))
        elif isinstance(target, str) and port.get("name") != target:
          fail(where, "port named %s targets %s: name them alike" % (port.get("name"), target))

  # The router names every shard by its StatefulSet pod's DNS name, and finds the workers, a
  # Deployment, by the DNS name of their headless Service.
  for workload in workloads:
    for container in workload["spec"]["template"]["spec"]["containers"]:
      args = container.get("_args", {})
      if os.path.basename((container.get("command") or [""])[0]) != "semshare-router":
        continue
      workers = args.get("workers", "")
      worker_deployments = [w for w in workloads if w["kind"] == "Deployment" and any(
          os.path.basename((c.get("command") or [""])[0]) == "semshare-worker"
          for c in w["spec"]["template"]["spec"]["containers"])]
      match = re.fullmatch(r"dns:([a-z0-9.-]+):(\d+)", workers)
      if not worker_deployments:
        fail("router", "the workers should be a Deployment")
      elif not match:
        fail("router", "--workers=%s, want dns:SERVICE:PORT of the workers' headless Service" % workers)
      else:
        service = services.get(match.group(1).split(".")[0])
        labels = worker_deployments[0]["spec"]["template"]["metadata"].get("labels", {})
        if service is None:
          fail("router", "--workers names Service %s, not in the render" % match.group(1))
        elif service["spec"].get("clusterIP") != "None":
          fail("router", "Service %s must be headless (clusterIP: None) to resolve to every worker" % match.group(1))
        elif not set(service["spec"].get("selector", {}).items()) <= set(labels.items()):
          fail("router", "Service %s does not select the worker pods" % match.group(1))
        elif int(match.group(2)) not in [p.get("port") for p in service["spec"].get("ports", [])]:
          fail("router", "Service %s has no port %s" % (match.group(1), match.group(2)))
      for flag, binary in (("shards", "semshare-cache-node"),):
        targets = [w for w in workloads if w["kind"] == "StatefulSet" and any(
            os.path.basename((c.get("command") or [""])[0]) == binary for c in w["spec"]["template"]["spec"]["containers"])]
        want = [pod for t in targets for pod in stateful_pods.get(t["metadata"]["name"], [])]
        got = [a for a in args.get(flag, "").split(",") if a]
        if not want or got != want:
          fail("router", "--%s=%s, want the %s pods %s" % (flag, ",".join(got), binary, ",".join(want)))
        for address in got:
          service = address.split(":")[0].split(".", 1)[-1]
          if service not in services:
            fail("router", "--%s names Service %s, not in the render" % (flag, service))
      ready = container.get("readinessProbe", {}).get("httpGet", {})
      if ready.get("path") != "/healthz" or ready.get("port") not in ("http", container_ports[workload["metadata"]["name"]].get("http")):
        fail("router", "readiness should be HTTP GET /healthz on the http port")

  return metrics_catalogue.report("%d objects" % len(objects), errors, sorted(set(notes)))


if __name__ == "__main__":
  if len(sys.argv) not in (3, 4):
    sys.exit(__doc__)
  sys.exit(main(*sys.argv[1:]))
