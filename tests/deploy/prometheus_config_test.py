"""Checks deploy/prometheus beyond what promtool does: every metric an alert or recording rule
uses is in the catalogue (deploy/metrics.txt) or recorded by another rule, every job a rule names
is scraped, and the local and Kubernetes configs scrape the same jobs with the same rule files.

Usage: prometheus_config_test.py SOURCE_DIR (Debian python3-yaml).
"""

import os
import re
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import metrics_catalogue  # pylint: disable=wrong-import-position

JOBS = {"semshare-router", "semshare-worker", "semshare-cache-node"}


def main(source_dir):
  prometheus_dir = os.path.join(source_dir, "deploy", "prometheus")
  catalogue = metrics_catalogue.load(os.path.join(source_dir, "deploy", "metrics.txt"))
  known = metrics_catalogue.series_names(catalogue) | metrics_catalogue.SYNTHETIC
  errors = []

  configs = {}
  for name in ("prometheus.yml", "prometheus-k8s.yml"):
    with open(os.path.join(prometheus_dir, name), encoding="utf-8") as f:
      configs[name] = yaml.safe_load(f)
    jobs = {job["job_name"] for job in configs[name]["scrape_configs"]}
    if jobs != JOBS:
      errors.append("%s scrapes jobs %s, want %s" % (name, sorted(jobs), sorted(JOBS)))
    if configs[name].get("rule_files") != ["alerts.yml"]:
      errors.append("%s: rule_files should be [alerts.yml]" % name)

  with open(os.path.join(prometheus_dir, "alerts.yml"), encoding="utf-8") as f:
    rules = [rule for group in yaml.safe_load(f)["groups"] for rule in group["rules"]]
  recorded = {rule["record"] for rule in rules if "record" in rule}
  for rule in rules:
    name = rule.get("alert") or rule.get("record")
    if "record" in rule and not re.fullmatch(r"semshare:[a-z0-9_]+:[a-z0-9_]+", name):
      errors.append("recording rule %s: name it semshare:WHAT:OPERATION" % name)
    for metric in sorted(metrics_catalogue.metric_names_in_expr(rule["expr"])):
      if metric not in known and metric not in recorded:
        errors.append("%s uses %s, which is neither in deploy/metrics.txt nor recorded" % (name, metric))
    for job in re.findall(r'job\s*=~?\s*"([^"]*)"', rule["expr"]):
      if not any(re.fullmatch(job, j) for j in JOBS):
        errors.append("%s selects job %r, which no config scrapes" % (name, job))
    if "alert" in rule:
      if rule.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
        errors.append("alert %s: labels.severity should be critical|warning|info" % name)
      if not rule.get("annotations", {}).get("summary"):
        errors.append("alert %s: no summary annotation" % name)

  return metrics_catalogue.report("%d rules" % len(rules), errors)


if __name__ == "__main__":
  sys.exit(main(sys.argv[1]))
