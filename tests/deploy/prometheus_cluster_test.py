"""A real Prometheus server scraping a local cluster reports the hits the test produced.

Args: SOURCE_DIR BIN_DIR CLUSTER_DIR PROMETHEUS_DIR (both already started by
prometheus_cluster_test.sh). Sends reference prompts (misses) and their paraphrases (hits) for
two tenants with the `semshare` CLI, then asks Prometheus, by PromQL over its HTTP API, for
semshare_router_requests_total by tenant and outcome, and compares with what the router
returned. Also checks that every job is up and that every semshare_ series Prometheus scraped
is in the metric catalogue (deploy/metrics.txt) with the catalogue's type. Python 3 stdlib only.
"""

import collections
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import metrics_catalogue  # noqa: E402

SOURCE_DIR, BIN_DIR, CLUSTER_DIR, PROMETHEUS_DIR = sys.argv[1:5]
# Prometheus scrapes every second (SEMSHARE_PROMETHEUS_INTERVAL=1s); this bounds how long the
# test waits for the scrapes after the requests, not how fast anything must be.
SCRAPE_WAIT_S = 90


def read_env(path):
  env = {}
  with open(path, encoding="utf-8") as f:
    for line in f:
      line = line.strip()
      if line and not line.startswith("#") and "=" in line:
        key, value = line.split("=", 1)
        env[key] = value
  return env


def tenants_by_key():
  tenants = {}
  with open(os.path.join(CLUSTER_DIR, "api_keys"), encoding="utf-8") as f:
    for line in f:
      parts = line.split()
      if len(parts) == 3 and not line.startswith("#"):
        tenants[parts[0]] = parts[1]
  return tenants


def generate(router, key, prompt):
  out = subprocess.run(
      [os.path.join(BIN_DIR, "semshare"), "generate", "--router", router, "--api-key", key,
       "--prompt", prompt, "--max-tokens", "4", "--json"],
      check=True, capture_output=True, text=True, timeout=300)
  return json.loads(out.stdout)["stats"]


def query(prometheus, promql):
  url = "http://%s/api/v1/query?%s" % (prometheus, urllib.parse.urlencode({"query": promql}))
  with urllib.request.urlopen(url, timeout=10) as response:
    body = json.load(response)
  if body.get("status") != "success":
    raise AssertionError("query %r failed: %r" % (promql, body))
  return body["data"]["result"]


def wait_for(prometheus, promql, at_least):
  """Polls (bounded by SCRAPE_WAIT_S) until the query's single value is >= at_least."""
  deadline = time.monotonic() + SCRAPE_WAIT_S
  value = None
  while time.monotonic() < deadline:
    result = query(prometheus, promql)
    value = float(result[0]["value"][1]) if result else None
    if value is not None and value >= at_least:
      return
    time.sleep(0.25)
  fail("%s stayed at %r, want >= %r" % (promql, value, at_least))


def fail(message):
  print("FAIL: " + message, file=sys.stderr)
  sys.exit(1)


def main():
  cluster = read_env(os.path.join(CLUSTER_DIR, "cluster.env"))
  prometheus = read_env(os.path.join(PROMETHEUS_DIR, "prometheus.env"))["SEMSHARE_PROMETHEUS"]
  router = cluster["SEMSHARE_ROUTER"]
  tenant_of = tenants_by_key()
  with open(os.path.join(SOURCE_DIR, "tests", "data", "pairs-dev.jsonl"), encoding="utf-8") as f:
    pairs = [json.loads(line) for line in f if line.strip()][:2]

  # What the router said: (tenant, outcome) -> count.
  told = collections.Counter()
  requests = []
  for pair in pairs:
    requests.append((cluster["SEMSHARE_API_KEY"], pair["reference"]))
    requests.append((cluster["SEMSHARE_API_KEY"], pair["target"]))
  # The second tenant sends a prompt the first has stored: never a hit on the other's reference.
  requests.append((cluster["SEMSHARE_API_KEY_2"], pairs[0]["target"]))
  stored = collections.Counter()  # tenant -> references it should hold
  for key, prompt in requests:
    stats = generate(router, key, prompt)
    outcome = "hit" if stats["cache_hit"] else ("bypass" if stats["bypassed"] else "miss")
    told[(tenant_of[key], outcome)] += 1
    if outcome == "miss":
      # A miss's reference is stored after the reply: wait until the shards report it, as
      # Prometheus sees them, before sending the paraphrase.
      stored[tenant_of[key]] += 1
      wait_for(prometheus, 'sum(semshare_cache_node_references{tenant="%s"})' % tenant_of[key],
               stored[tenant_of[key]])
  if told[(tenant_of[cluster["SEMSHARE_API_KEY"]], "hit")] == 0:
    fail("no paraphrase was a hit; the test needs at least one (router said %r)" % dict(told))
  if told[(tenant_of[cluster["SEMSHARE_API_KEY_2"]], "hit")] != 0:
    fail("the second tenant hit another tenant's reference")

  # Wait until Prometheus has scraped every request, then compare series by series.
  deadline = time.monotonic() + SCRAPE_WAIT_S
  seen = {}
  while time.monotonic() < deadline:
    seen = {}
    for series in query(prometheus, 'sum by (tenant, outcome) (semshare_router_requests_total{job="semshare-router"})'):
      labels = series["metric"]
      seen[(labels.get("tenant", ""), labels.get("outcome", ""))] = int(float(series["value"][1]))
    if sum(seen.values()) >= len(requests):
      break
    time.sleep(0.5)
  if {k: v for k, v in seen.items() if v} != dict(told):
    fail("Prometheus has %r, the router returned %r" % (seen, dict(told)))
  tenant = tenant_of[cluster["SEMSHARE_API_KEY"]]
  hit_rate = query(prometheus, 'sum(semshare_router_requests_total{tenant="%s",outcome="hit"}) / '
                   'sum(semshare_router_requests_total{tenant="%s"})' % (tenant, tenant))
  want_rate = told[(tenant, "hit")] / sum(v for (t, _), v in told.items() if t == tenant)
  if not hit_rate or abs(float(hit_rate[0]["value"][1]) - want_rate) > 1e-9:
    fail("hit rate from PromQL %r, from the router's answers %r" % (hit_rate, want_rate))

  # Every job is up: one router, one worker, two cache nodes.
  up = {}
  for series in query(prometheus, "up"):
    up.setdefault(series["metric"]["job"], []).append(series["value"][1])
  want_up = {"semshare-router": ["1"], "semshare-worker": ["1"], "semshare-cache-node": ["1", "1"]}
  if {job: sorted(values) for job, values in up.items()} != want_up:
    fail("up by job is %r, want %r" % (up, want_up))

  # Every semshare_ series scraped is in the catalogue, with the catalogue's type.
  catalogue = metrics_catalogue.load(os.path.join(SOURCE_DIR, "deploy", "metrics.txt"))
  names = {series["metric"]["__name__"] for series in query(prometheus, 'count by (__name__) ({__name__=~"semshare_.+"})')}
  unknown = []
  for name in sorted(names):
    base = name
    for suffix in ("_bucket", "_sum", "_count"):
      if name.endswith(suffix) and name[: -len(suffix)] in catalogue and catalogue[name[: -len(suffix)]].type == "histogram":
        base = name[: -len(suffix)]
    if base not in catalogue:
      unknown.append(name)
  if unknown:
    fail("scraped metrics missing from deploy/metrics.txt: %r" % unknown)
  for name in ("semshare_router_requests_total", "semshare_router_ttft_seconds_bucket",
               "semshare_worker_requests_total", "semshare_cache_node_stored_bytes"):
    if name not in names:
      fail("%s was not scraped (have %r)" % (name, sorted(names)))
  print("ok: Prometheus reports %r, as the router returned" % dict(told))


if __name__ == "__main__":
  main()
