"""The metric catalogue (deploy/metrics.txt) and the metric names a PromQL expression uses.

Single reader of deploy/metrics.txt for the deploy tests (dashboard, alert rules) and for tests
that compare it with a real scrape. Python 3 standard library only.
"""

import collections
import os
import re

Metric = collections.namedtuple("Metric", "name type labels help")

TYPES = ("counter", "gauge", "histogram")
# Series Prometheus itself adds to every scrape job.
SYNTHETIC = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped",
                       "scrape_samples_post_metric_relabeling", "scrape_series_added"})

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_PATH = os.path.join(_REPO, "deploy", "metrics.txt")

_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "and",
                       "or", "unless", "offset", "bool", "inf", "nan", "Inf", "NaN", "atan2"})


def load(path=DEFAULT_PATH):
  """Returns {name: Metric} in file order; raises ValueError on a malformed line."""
  metrics = collections.OrderedDict()
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, 1):
      line = line.strip()
      if not line or line.startswith("#"):
        continue
      parts = line.split(None, 3)
      if len(parts) < 4:
        raise ValueError("%s:%d: want NAME TYPE LABELS HELP" % (path, number))
      name, kind, labels, help_text = parts
      if not re.fullmatch(r"semshare_[a-z0-9_]+", name):
        raise ValueError("%s:%d: bad name %r" % (path, number, name))
      if kind not in TYPES:
        raise ValueError("%s:%d: bad type %r" % (path, number, kind))
      if (kind == "counter") != name.endswith("_total"):
        raise ValueError("%s:%d: counters (and only they) end in _total: %s" % (path, number, name))
      if name in metrics:
        raise ValueError("%s:%d: %s listed twice" % (path, number, name))
      label_list = () if labels == "-" else tuple(labels.split(","))
      metrics[name] = Metric(name, kind, label_list, help_text)
  return metrics


def series_names(metrics):
  """Every series name the catalogue's metrics expose (histograms: _bucket, _sum, _count)."""
  names = set()
  for metric in metrics.values():
    if metric.type == "histogram":
      names.update(metric.name + suffix for suffix in ("_bucket", "_sum", "_count"))
    else:
      names.add(metric.name)
  return names


def metric_names_in_expr(expr):
  """The metric (series) names a PromQL expression selects, Grafana variables ignored."""
  text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
  text = re.sub(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*", " ", text)
  text = re.sub(r"\{[^}]*\}", " ", text)
  text = re.sub(r"\[[^\]]*\]", " ", text)
  text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
  text = re.sub(r"(?<![A-Za-z0-9_:])\d[0-9.]*(?:[eE][+-]?\d+)?[a-z]*", " ", text)
  names = set()
  for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
    name = match.group(0)
    if name in _KEYWORDS or re.match(r"\s*\(", text[match.end():]):
      continue  # a keyword, or a function / aggregation call
    names.add(name)
  return names


def report(what, errors, notes=()):
  """Prints the notes, the errors and a summary line; returns the exit status (1: errors)."""
  for note in notes:
    print("note:", note)
  for error in errors:
    print("FAIL:", error)
  print("%s checked, %d problems" % (what, len(errors)))
  return 1 if errors else 0
