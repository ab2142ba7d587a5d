#!/usr/bin/env bash
# Validates the monitoring files of deploy/monitoring offline: the Prometheus scrape
# config and alerting rules with promtool (check config, check rules, and the rules' unit
# tests alerts_test.yml with `promtool test rules`), and the Grafana dashboard with
# python3 (JSON, schemaVersion 39, datasource input and variables, unique panel ids,
# gridPos without overlaps, and every PromQL expression of the dashboard and of the
# alerts naming only metrics the node exports, or Prometheus's own `up`). No Prometheus,
# Grafana or node needed. Installs Debian's `prometheus` package (for promtool; the
# Prometheus server it brings is kept from starting, and disabled) and python3-yaml with
# apt-get when missing.
#
# Usage: deploy/check-monitoring.sh [METRICS_FILE]
#   METRICS_FILE: a node's scraped /metrics text (e.g. `curl -s http://127.0.0.1:8080/metrics
#   > m.txt`). Then also `promtool check metrics` on it (parse errors fail; lint remarks
#   are printed on stderr and do not), and every metric the dashboard and the alerts
#   name must appear in it with the expected type and label names (a histogram through
#   its _bucket, _sum and _count series). proof_market_postgres_up and
#   proof_market_postgres_call_duration_seconds may be missing (the node exports them
#   only when archiving is on).
# Environment: PROMTOOL (default promtool), PYTHON (default python3).
#
# Output (stdout): one line per check, "ok CHECK: ..." or "FAIL CHECK: reason", then
# "checked N, M failed". Details of a failure and install chatter go to stderr. Never
# prompts.
# Exit status: 0 every check passed, 1 some check failed, 2 promtool or python3 (with
# PyYAML) unavailable, or bad usage.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=deploy/monitoring
promtool=${PROMTOOL:-promtool}
python=${PYTHON:-python3}

if [ "$#" -gt 1 ] || [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
  echo "usage: deploy/check-monitoring.sh [METRICS_FILE]" >&2
  exit 2
fi
metrics_file=${1:-}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs Debian packages without letting them start services: invoke-rc.d and
# deb-systemd-invoke ask /usr/sbin/policy-rc.d first, and 101 means "action forbidden".
# An existing policy is left as it is (containers usually have one that answers 101).
policy_rc=/usr/sbin/policy-rc.d
created_policy=
remove_policy() {
  if [ -n "$created_policy" ]; then
    as_root rm -f "$policy_rc" || true
    created_policy=
  fi
}
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "check-monitoring: no apt-get here to install $*" >&2
    return 1
  fi
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
    echo "check-monitoring: need root (or sudo) to install $*" >&2
    return 1
  fi
  if [ ! -e "$policy_rc" ]; then
    trap remove_policy EXIT
    as_root sh -c 'printf "#!/bin/sh\n# written by deploy/check-monitoring.sh while it installs packages: start no service\nexit 101\n" > "$1" && chmod 0755 "$1"' sh "$policy_rc" || return 1
    created_policy=1
  fi
  echo "check-monitoring: installing $* with apt-get" >&2
  local status=0
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 \
    && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 \
    || status=$?
  remove_policy
  return "$status"
}

# The package's server must not run (or start at boot): only promtool is wanted.
quiet_prometheus_service() {
  if [ -d /run/systemd/system ]; then
    as_root systemctl disable --now prometheus.service >&2 || true
  else
    if [ -x /etc/init.d/prometheus ]; then
      # In case a policy let the package start it (a no-op otherwise).
      as_root /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    fi
    if command -v update-rc.d >/dev/null 2>&1 && [ -e /etc/init.d/prometheus ]; then
      as_root update-rc.d prometheus disable >/dev/null 2>&1 || true
    fi
  fi
}

need=()
command -v "$promtool" >/dev/null 2>&1 || need+=(prometheus)
if ! command -v "$python" >/dev/null 2>&1; then
  echo "check-monitoring: $python not found" >&2
  exit 2
fi
"$python" -c 'import yaml' >/dev/null 2>&1 || need+=(python3-yaml)
if [ "${#need[@]}" -gt 0 ]; then
  if ! apt_install "${need[@]}"; then
    echo "check-monitoring: could not install ${need[*]}; install promtool (Prometheus 2.x)" \
      "and PyYAML, or set PROMTOOL / PYTHON" >&2
    exit 2
  fi
  case " ${need[*]} " in *" prometheus "*) quiet_prometheus_service ;; esac
fi
if ! command -v "$promtool" >/dev/null 2>&1 || ! "$promtool" --version >/dev/null 2>&1; then
  echo "check-monitoring: $promtool is not usable" >&2
  exit 2
fi
if ! "$python" -c 'import yaml' >/dev/null 2>&1; then
  echo "check-monitoring: PyYAML is still not importable by $python" >&2
  exit 2
fi
echo "check-monitoring: $("$promtool" --version 2>&1 | head -n1)" >&2

checks=0
failed=0
report() { # ok|FAIL, message
  echo "$1 $2"
  checks=$((checks + 1))
  if [ "$1" != ok ]; then failed=$((failed + 1)); fi
}
one_line() { tr -s ' \t\n' ' ' | sed 's/^ //; s/ $//'; }

# Runs promtool; ok with its SUCCESS lines, or FAIL with its first error line (the whole
# output on stderr).
promtool_check() { # label, promtool args...
  local label=$1 out status=0 summary
  shift
  out=$("$promtool" "$@" 2>&1) || status=$?
  if [ "$status" -eq 0 ]; then
    summary=$(printf '%s\n' "$out" | grep -E 'SUCCESS' | sed 's/^ *SUCCESS:* *//' | grep . | paste -sd ';' | sed 's/;/; /g' || true)
    report ok "$label: ${summary:-passed}"
  else
    # The first error line, and the line after it (promtool test rules: which alert, when).
    report FAIL "$label: $(printf '%s\n' "$out" | grep -m1 -A1 -iE 'FAILED|error|unmarshal|could not|fail' | one_line) (exit $status)"
    printf '%s\n' "$out" | sed 's/^/    /' >&2
  fi
}

promtool_check "promtool check config $dir/prometheus.yml" check config "$dir/prometheus.yml"
promtool_check "promtool check rules $dir/alerts.yml" check rules "$dir/alerts.yml"
# test rules reads the rule files relative to the test file.
tests_in=$(grep -cE '^  - interval:' "$dir/alerts_test.yml" 2>/dev/null || true)
evals_in=$(grep -cE '^ *- eval_time:' "$dir/alerts_test.yml" 2>/dev/null || true)
promtool_check "promtool test rules $dir/alerts_test.yml ($tests_in groups, $evals_in alert evaluations)" \
  test rules "$dir/alerts_test.yml"

if [ -n "$metrics_file" ]; then
  if [ ! -r "$metrics_file" ]; then
    report FAIL "promtool check metrics $metrics_file: cannot read the file"
  else
    # Exit 0: clean; 3: lint remarks only (e.g. a counter without _total, missing HELP),
    # which are advice, not errors; anything else (1): the text does not parse.
    status=0
    out=$("$promtool" check metrics <"$metrics_file" 2>&1) || status=$?
    case $status in
      0) report ok "promtool check metrics $metrics_file: parses, no lint remarks" ;;
      3)
        report ok "promtool check metrics $metrics_file: parses; $(printf '%s\n' "$out" | grep -c .) lint remark(s), on stderr"
        printf '%s\n' "$out" | sed 's/^/    lint: /' >&2
        ;;
      *)
        report FAIL "promtool check metrics $metrics_file: $(printf '%s\n' "$out" | head -n1 | one_line) (exit $status)"
        printf '%s\n' "$out" | sed 's/^/    /' >&2
        ;;
    esac
  fi
fi

# Dashboard and metric-name checks: one "ok/FAIL" line each on stdout.
py_status=0
py_out=$("$python" - "$dir/grafana-dashboard.json" "$dir/alerts.yml" "$metrics_file" <<'PY'
import json
import re
import sys

import yaml

dashboard_path, alerts_path, metrics_path = sys.argv[1], sys.argv[2], sys.argv[3]

# The node's metrics (src/: the `prometheus` crate's text format at GET /metrics), with
# their label names. Keep in step with the node.
COUNTERS = {
    "proof_market_http_requests_total": {"route", "method", "status"},
    "proof_market_orders_total": {"statement", "side"},
    "proof_market_matches_total": {"statement"},
    "proof_market_leases_acquired_total": set(),
    "proof_market_fenced_writes_total": set(),
    "proof_market_forwarded_calls_total": set(),
    "proof_market_rate_limited_total": {"limit"},
    "proof_market_archived_events_total": set(),
    "proof_market_archive_errors_total": set(),
    "proof_market_redis_errors_total": {"command"},
    "proof_market_postgres_errors_total": {"query"},
    "proof_market_forward_failures_total": {"reason"},
}
HISTOGRAMS = {
    "proof_market_http_request_duration_seconds": {"route"},
    "proof_market_match_latency_seconds": set(),
    "proof_market_proof_verify_seconds": {"result"},
    "proof_market_redis_call_duration_seconds": {"command"},
    "proof_market_postgres_call_duration_seconds": {"query"},
    "proof_market_pool_job_seconds": {"pool", "phase"},
}
GAUGES = {
    "proof_market_pool_queue_depth": {"pool"},
    "proof_market_pool_queue_capacity": {"pool"},
    "proof_market_pool_busy_workers": {"pool"},
    "proof_market_pool_threads": {"pool"},
    "proof_market_archive_lag_seconds": set(),
    "proof_market_archive_pending_events": set(),
    "proof_market_owned_statements": set(),
    "proof_market_live_nodes": set(),
    "proof_market_event_streams": set(),
    "proof_market_ready": set(),
    "proof_market_redis_up": set(),
    "proof_market_postgres_up": set(),
    "proof_market_node_info": {"node", "version"},
}
OPTIONAL = {
    "proof_market_postgres_up": "exported only when archiving is on",
    "proof_market_postgres_call_duration_seconds": "exported only when archiving is on",
}
PROMETHEUS_OWN = {"up"}  # made by Prometheus for every target, not by the node
HIST_SUFFIXES = ("_bucket", "_sum", "_count")

KIND = {**{m: "counter" for m in COUNTERS}, **{m: "histogram" for m in HISTOGRAMS},
        **{m: "gauge" for m in GAUGES}}
LABELS = {**COUNTERS, **HISTOGRAMS, **GAUGES}

# Words of PromQL that can stand where a metric name could.
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "bool", "offset", "inf", "nan", "start", "end"}


def metric_of(series):
    """The metric (family) a series name belongs to, or None when the node has no such series."""
    if series in COUNTERS or series in GAUGES or series in PROMETHEUS_OWN:
        return series
    for suffix in HIST_SUFFIXES:
        if series.endswith(suffix) and series[: -len(suffix)] in HISTOGRAMS:
            return series[: -len(suffix)]
    return None


def series_names(expr):
    """Metric names (selectors) of a PromQL expression: a small lexer, enough for our exprs."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # strings
    s = re.sub(r"\$\{[^}]*\}|\$\w+", " ", s)                                     # Grafana variables
    s = re.sub(r"\{[^{}]*\}", " ", s)                                            # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)                                            # ranges, subqueries
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = []
    for m in re.finditer(r"(?<![\w.:])[A-Za-z_:][A-Za-z0-9_:]*", s):
        word = m.group(0)
        if word.lower() in KEYWORDS or re.match(r"\s*\(", s[m.end():]):  # keyword or function
            continue
        names.append(word)
    return names


def template_expr(query):
    """The PromQL inside a Grafana Prometheus variable query."""
    if isinstance(query, dict):
        query = query.get("query", "")
    query = (query or "").strip()
    m = re.fullmatch(r"label_values\((.*),\s*\w+\s*\)", query, re.S)
    if m:
        return m.group(1)
    if re.fullmatch(r"label_values\(\s*\w+\s*\)|label_names\(\s*\)|metrics\(.*\)", query, re.S):
        return ""
    m = re.fullmatch(r"query_result\((.*)\)", query, re.S)
    return m.group(1) if m else query


results = []


def report(ok, check, message):
    results.append((ok, check, message))


def check_names(check, exprs):
    """exprs: [(where, expr)]. Reports the series names used; returns the metrics used."""
    used, unknown, empty = {}, [], []
    for where, expr in exprs:
        names = series_names(expr)
        if not names:
            empty.append(where)
        for name in names:
            metric = metric_of(name)
            if metric is None:
                unknown.append("%s (%s)" % (name, where))
            else:
                used.setdefault(metric, set()).add(name)
    if unknown or empty:
        problems = []
        if unknown:
            problems.append("unknown metric(s): " + ", ".join(unknown))
        if empty:
            problems.append("no metric in: " + ", ".join(empty))
        report(False, check, "; ".join(problems))
    else:
        report(True, check, "%d expressions, %d metrics: %s"
               % (len(exprs), len(used), ", ".join(sorted(used))))
    return used


# ---- dashboard --------------------------------------------------------------------------
dash_used = {}
try:
    with open(dashboard_path) as f:
        dash = json.load(f)
except (OSError, ValueError) as e:
    report(False, dashboard_path, "does not load: %s" % e)
    dash = None

if dash is not None:
    panels = []

    def walk(items):
        for p in items or []:
            panels.append(p)
            walk(p.get("panels"))

    walk(dash.get("panels"))

    # Structure.
    problems = []
    if dash.get("schemaVersion") != 39:
        problems.append("schemaVersion %r, not 39" % dash.get("schemaVersion"))
    if not any(i.get("name") == "DS_PROMETHEUS" and i.get("pluginId") == "prometheus"
               for i in dash.get("__inputs", [])):
        problems.append("no __inputs entry DS_PROMETHEUS (prometheus)")
    variables = {v.get("name"): v for v in (dash.get("templating") or {}).get("list", [])}
    if (variables.get("DS_PROMETHEUS") or {}).get("type") != "datasource":
        problems.append("no datasource variable DS_PROMETHEUS")
    for name in ("instance", "statement"):
        if (variables.get(name) or {}).get("type") != "query":
            problems.append("no query variable %s" % name)
    if "proof_market_orders_total" not in template_expr((variables.get("statement") or {}).get("query")):
        problems.append("variable statement does not come from proof_market_orders_total")
    kinds = {}
    for p in panels:
        kinds[p.get("type")] = kinds.get(p.get("type"), 0) + 1
        where = "panel %r" % (p.get("title") or p.get("id"))
        if p.get("type") not in ("row", "timeseries", "stat"):
            problems.append("%s has type %r (row, timeseries or stat expected)" % (where, p.get("type")))
        if p.get("type") != "row":
            if not p.get("targets"):
                problems.append("%s has no query" % where)
            for t in p.get("targets", []):
                ds = t.get("datasource") or p.get("datasource") or {}
                if ds.get("uid") != "${DS_PROMETHEUS}":
                    problems.append("%s query %s not on ${DS_PROMETHEUS}" % (where, t.get("refId")))
                if not t.get("expr", "").strip():
                    problems.append("%s query %s has no expr" % (where, t.get("refId")))
    if problems:
        report(False, dashboard_path, "; ".join(problems))
    else:
        report(True, dashboard_path, "schemaVersion 39, %s; variables %s"
               % (", ".join("%d %s" % (n, k) for k, n in sorted(kinds.items())),
                  ", ".join(variables)))

    # Unique ids.
    ids = {}
    for p in panels:
        ids.setdefault(p.get("id"), []).append(p.get("title"))
    dups = {i: t for i, t in ids.items() if i is None or len(t) > 1}
    if dups:
        report(False, "dashboard panel ids", "; ".join("id %r: %s" % (i, ", ".join(map(str, t)))
                                                       for i, t in dups.items()))
    else:
        report(True, "dashboard panel ids", "%d panels, ids unique" % len(panels))

    # Layout: every panel inside the 24 columns, no two overlapping (a collapsed row's
    # panels are laid out only when it opens: checked among themselves).
    def rects(items):
        out = []
        for p in items:
            g = p.get("gridPos") or {}
            out.append((p, g))
        return out

    layout_problems = []

    def check_layout(items):
        placed = []
        for p, g in rects(items):
            name = "%r (id %s)" % (p.get("title"), p.get("id"))
            try:
                x, y, w, h = (int(g[k]) for k in ("x", "y", "w", "h"))
            except (KeyError, TypeError, ValueError):
                layout_problems.append("%s has no complete gridPos" % name)
                continue
            if x < 0 or y < 0 or w < 1 or h < 1 or x + w > 24:
                layout_problems.append("%s gridPos %s outside the 24 columns" % (name, g))
            for other, (ox, oy, ow, oh) in placed:
                if x < ox + ow and ox < x + w and y < oy + oh and oy < y + h:
                    layout_problems.append("%s overlaps %s" % (name, other))
            placed.append((name, (x, y, w, h)))
            if p.get("type") == "row" and p.get("collapsed"):
                check_layout(p.get("panels") or [])

    check_layout(dash.get("panels") or [])
    if layout_problems:
        report(False, "dashboard layout", "; ".join(layout_problems))
    else:
        bottom = max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in dash.get("panels") or []), default=0)
        report(True, "dashboard layout", "%d panels in 24 columns x %d rows, no overlap"
               % (len(dash.get("panels") or []), bottom))

    # Metric names in every expr: targets, annotations, variables.
    exprs = []

    def collect(node, where):
        if isinstance(node, dict):
            here = where
            if "title" in node and isinstance(node.get("title"), str):
                here = "panel %r" % node["title"]
            elif "name" in node and isinstance(node.get("name"), str):
                here = "%r" % node["name"]
            if isinstance(node.get("expr"), str):
                ref = node.get("refId")
                exprs.append(("%s%s" % (here, " " + ref if ref else ""), node["expr"]))
            for k, v in node.items():
                if k != "templating":
                    collect(v, here)
        elif isinstance(node, list):
            for v in node:
                collect(v, where)

    collect(dash, "dashboard")
    for v in (dash.get("templating") or {}).get("list", []):
        if v.get("type") == "query":
            e = template_expr(v.get("query"))
            if e:
                exprs.append(("variable %s" % v.get("name"), e))
    dash_used = check_names("dashboard metric names", exprs)
    missing = sorted(set(KIND) - set(dash_used))
    if missing:
        results[-1] = (results[-1][0], results[-1][1],
                       results[-1][2] + " (node metrics on no panel: %s)" % ", ".join(missing))

# ---- alerts -----------------------------------------------------------------------------
alert_used = {}
try:
    with open(alerts_path) as f:
        rules = yaml.safe_load(f)
    alert_exprs = [("%s %s" % (r.get("alert") or r.get("record"), i), r["expr"])
                   for g in rules["groups"] for i, r in enumerate(g["rules"], 1)]
except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
    report(False, "alert metric names", "cannot read %s: %s" % (alerts_path, e))
else:
    alert_used = check_names("alert metric names", alert_exprs)

# ---- a scraped /metrics ------------------------------------------------------------------
if metrics_path:
    try:
        with open(metrics_path) as f:
            text = f.read()
    except OSError as e:
        report(False, "scrape metric names", "cannot read %s: %s" % (metrics_path, e.strerror))
    else:
        types, samples = {}, {}
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                parts = line.split()
                if len(parts) >= 4 and parts[1] == "TYPE":
                    types[parts[2]] = parts[3]
                continue
            m = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{(.*)\})?", line)
            if not m:
                continue
            labels = frozenset(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"', m.group(3) or ""))
            samples.setdefault(m.group(1), set()).add(labels)

        wanted = sorted((set(dash_used) | set(alert_used)) - PROMETHEUS_OWN)
        missing, missing_metrics, bad_type, notes, label_problems = [], [], [], [], []
        for metric in wanted:
            kind = KIND[metric]
            series = [metric + s for s in HIST_SUFFIXES] if kind == "histogram" else [metric]
            absent = [s for s in series if s not in samples]
            if absent:
                if metric in OPTIONAL:
                    notes.append("%s absent (%s)" % (metric, OPTIONAL[metric]))
                else:
                    missing.append(", ".join(absent))
                    missing_metrics.append(metric)
                continue
            if types.get(metric, kind) != kind:
                bad_type.append("%s is %s, %s expected" % (metric, types[metric], kind))
            for s in series:
                expected = set(LABELS[metric]) | ({"le"} if s.endswith("_bucket") else set())
                for found in samples[s]:
                    if set(found) != expected:
                        label_problems.append("%s{%s} (%s expected)" % (
                            s, ",".join(sorted(found)), "{%s}" % ",".join(sorted(expected))))
                        break
        if missing or bad_type:
            hint = []
            if any(LABELS[m] for m in missing_metrics):
                # The prometheus crate leaves out a labelled family until it has a series.
                hint = ["(a labelled metric is exported only once one of its label values "
                        "has been used: scrape a node that has served traffic)"]
            report(False, "scrape metric names %s" % metrics_path,
                   "; ".join((["missing: " + "; ".join(missing)] if missing else []) + bad_type + hint))
        else:
            extra = sorted(n for n in types if n.startswith("proof_market_") and n not in KIND)
            report(True, "scrape metric names %s" % metrics_path,
                   "all %d metrics of the dashboard and alerts present with their types%s%s"
                   % (len(wanted) - len(notes), "; " + "; ".join(notes) if notes else "",
                      "; not on the dashboard: " + ", ".join(extra) if extra else ""))
        if label_problems:
            report(False, "scrape label names %s" % metrics_path, "; ".join(label_problems))
        else:
            report(True, "scrape label names %s" % metrics_path,
                   "every series has the label names the node documents")

for ok, check, message in results:
    print("%s %s: %s" % ("ok" if ok else "FAIL", check, message))
sys.exit(1 if any(not ok for ok, _, _ in results) else 0)
PY
) || py_status=$?
if [ -n "$py_out" ]; then
  printf '%s\n' "$py_out"
  checks=$((checks + $(printf '%s\n' "$py_out" | grep -cE '^(ok|FAIL) ' || true)))
  failed=$((failed + $(printf '%s\n' "$py_out" | grep -cE '^FAIL ' || true)))
fi
if [ "$py_status" -ne 0 ] && ! printf '%s\n' "$py_out" | grep -q '^FAIL '; then
  report FAIL "dashboard checks: $python exited $py_status"
fi

echo "checked $checks, $failed failed"
if [ "$failed" -gt 0 ]; then exit 1; fi
exit 0
