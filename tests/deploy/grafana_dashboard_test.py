"""ctest Deploy.GrafanaDashboard: deploy/grafana/semshare.json parses, is a Grafana dashboard whose
panels all query the ${DS_PROMETHEUS} datasource with a PromQL expression that promtool parses
(Grafana variables replaced), and every metric those expressions use is in the catalogue
(deploy/metrics.txt).

Usage: grafana_dashboard_test.py SOURCE_DIR (Python 3 standard library, promtool on PATH).
"""

import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import metrics_catalogue  # pylint: disable=wrong-import-position

DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def all_panels(panels):
  for panel in panels:
    yield panel
    yield from all_panels(panel.get("panels", []))


def promql_errors(exprs):
  """promtool's parse errors for the expressions, as recording rules (JSON is YAML)."""
  substituted = [re.sub(r"\$__(rate_)?interval", "5m", re.sub(r"\$\{?tenant\}?", ".*", e)) for e in exprs]
  rules = {"groups": [{"name": "dashboard", "rules": [
      {"record": "dashboard:expr:%d" % i, "expr": e} for i, e in enumerate(substituted)]}]}
  with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
    json.dump(rules, f)
  try:
    out = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True, timeout=60)
  finally:
    os.unlink(f.name)
  return [] if out.returncode == 0 else ["promtool check rules: " + (out.stdout + out.stderr).strip()]


def main(source_dir):
  path = os.path.join(source_dir, "deploy", "grafana", "semshare.json")
  with open(path, encoding="utf-8") as f:
    dashboard = json.load(f)
  catalogue = metrics_catalogue.load(os.path.join(source_dir, "deploy", "metrics.txt"))
  known = metrics_catalogue.series_names(catalogue) | metrics_catalogue.SYNTHETIC
  errors = []

  for key in ("title", "uid", "panels", "templating", "schemaVersion"):
    if key not in dashboard:
      errors.append("no %r" % key)
  variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
  datasource = variables.get("DS_PROMETHEUS", {})
  if datasource.get("type") != "datasource" or datasource.get("query") != "prometheus":
    errors.append("no datasource variable DS_PROMETHEUS of type prometheus")
  tenant = variables.get("tenant", {})
  if tenant.get("type") != "query" or "tenant" not in json.dumps(tenant.get("query")):
    errors.append("no tenant query variable")
  elif tenant.get("datasource") != DATASOURCE:
    errors.append("tenant variable: datasource should be %s" % DATASOURCE)

  ids = set()
  used = set()
  exprs = []
  panels = list(all_panels(dashboard.get("panels", [])))
  for panel in panels:
    title = panel.get("title", "<untitled>")
    if panel.get("id") in ids:
      errors.append("%s: id %s used twice" % (title, panel.get("id")))
    ids.add(panel.get("id"))
    grid = panel.get("gridPos", {})
    if not all(isinstance(grid.get(k), int) for k in "hwxy") or grid["x"] + grid["w"] > 24:
      errors.append("%s: bad gridPos %s" % (title, grid))
    if panel.get("type") == "row":
      continue
    if panel.get("datasource") != DATASOURCE:
      errors.append("%s: datasource should be %s" % (title, DATASOURCE))
    targets = panel.get("targets") or []
    if not targets:
      errors.append("%s: no targets" % title)
    for target in targets:
      expr = target.get("expr", "").strip()
      if not expr:
        errors.append("%s: target %s has no PromQL expr" % (title, target.get("refId")))
        continue
      if target.get("datasource") != DATASOURCE:
        errors.append("%s: target %s datasource should be %s" % (title, target.get("refId"), DATASOURCE))
      if expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}"):
        errors.append("%s: unbalanced brackets in %s" % (title, expr))
      names = metrics_catalogue.metric_names_in_expr(expr)
      if not names:
        errors.append("%s: no metric in %s" % (title, expr))
      for name in sorted(names - known):
        errors.append("%s: %s is not in deploy/metrics.txt" % (title, name))
      used |= names
      exprs.append(expr)
  errors.extend(promql_errors(exprs))

  unused = sorted(m.name for m in catalogue.values()
                  if not any(s in used for s in metrics_catalogue.series_names({m.name: m})))
  notes = ["catalogue metrics no panel shows: " + ", ".join(unused)] if unused else []
  return metrics_catalogue.report("%d panels" % len(panels), errors, notes)


if __name__ == "__main__":
  sys.exit(main(sys.argv[1]))
