#!/usr/bin/env python3
"""Run every PostgreSQL query of the Grafana dashboards against a real database.

Grafana is not needed: this expands the template variables and the macros the
dashboards use the way Grafana's PostgreSQL datasource does
(pkg/tsdb/grafana-postgresql-datasource/macros.go: $__timeFilter, $__timeFrom,
$__timeTo, $__timeGroup, $__timeGroupAlias, $__time, $__timeEpoch,
$__unixEpochFilter), then runs each query through psql in a READ ONLY
transaction and checks the columns Grafana needs (`time` for a time series,
`time` and `text` for an annotation), and those EXPECTED names for the panels
people act on (the alert panels): their columns, and how many rows at most.

Usage:
    deploy/grafana/check-dashboard-sql.py [--dsn URL] [--hours N] [--var customer=CUST-00042] [FILE...]

The DSN defaults to $HEARTBEAT_DASHBOARD_DSN, then $DATABASE_URL, then
postgres://postgres:postgres@127.0.0.1:5432/heartbeat. FILE defaults to every
deploy/grafana/dashboards/*.json. Needs only Python 3 and psql.
Exit 0 when every query ran; 1 otherwise. Ends with "N passed, M failed".
"""

import argparse
import csv
import datetime as dt
import glob
import io
import json
import os
import re
import subprocess
import sys

PG_TYPES = {"grafana-postgresql-datasource", "postgres"}
PG_UIDS = {"heartbeat-pg"}
DEFAULT_DSN = "postgres://postgres:postgres@127.0.0.1:5432/heartbeat"
# A value for a query variable whose own query returns no row (an empty table).
PLACEHOLDER = "CUST-00000"

# (dashboard file, panel title) -> (columns it must return, most rows or None).
# A panel named here that is missing from its dashboard fails too.
EXPECTED = {
    ("fleet.json", "Alert burden (activated per customer-day)"):
        (["activated per customer-day"], 1),
    ("fleet.json", "Open activated alerts"):
        (["customer", "kind", "opened", "activated", "last seen", "readings", "peak bpm"], 200),
    ("customer.json", "Alert episodes"):
        (["kind", "state", "opened", "activated", "last seen", "resolved", "readings", "peak bpm"], 500),
}

MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^)]*)\)")
TEMPLATE_VAR = re.compile(r"\$\{([A-Za-z0-9_]+)(?::([A-Za-z0-9_]+))?\}|\$([A-Za-z][A-Za-z0-9_]*)")
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def is_pg(ds):
    if isinstance(ds, dict):
        return ds.get("uid") in PG_UIDS or ds.get("type") in PG_TYPES
    return False


def parse_interval(text):
    m = re.fullmatch(r"\s*'?(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)'?\s*", text)
    if not m:
        raise ValueError(f"cannot parse interval {text!r}")
    return float(m.group(1)) * UNIT_SECONDS[m.group(2)]


def go_float(x):
    """Format like Go's %v for a float64 (60 -> 60, 0.5 -> 0.5)."""
    return str(int(x)) if float(x).is_integer() else repr(x)


def rfc3339(t):
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def expand_macros(sql, t_from, t_to):
    def one(m):
        name = m.group(1)
        args = [a.strip() for a in m.group(2).split(",")] if m.group(2).strip() else []
        if name == "__timeGroup":
            # Grafana treats "$__timeGroup(...)," as the aliased form (pre-5.3 compat).
            if sql[m.end():m.end() + 1] == ",":
                name = "__timeGroupAlias"
        if name in ("__time", "__timeEpoch", "__timeFilter", "__unixEpochFilter") and not args:
            raise ValueError(f"macro ${name} needs a column")
        if name == "__time":
            return f'{args[0]} AS "time"'
        if name == "__timeEpoch":
            return f'extract(epoch from {args[0]}) as "time"'
        if name == "__timeFilter":
            return f"{args[0]} BETWEEN '{rfc3339(t_from)}' AND '{rfc3339(t_to)}'"
        if name == "__timeFrom":
            return f"'{rfc3339(t_from)}'"
        if name == "__timeTo":
            return f"'{rfc3339(t_to)}'"
        if name in ("__timeGroup", "__timeGroupAlias"):
            if len(args) < 2:
                raise ValueError(f"macro ${name} needs a column and an interval")
            secs = go_float(parse_interval(args[1]))
            expr = f"floor(extract(epoch from {args[0]})/{secs})*{secs}"
            return expr + (' AS "time"' if name == "__timeGroupAlias" else "")
        if name == "__unixEpochFilter":
            return f"{args[0]} >= {int(t_from.timestamp())} AND {args[0]} <= {int(t_to.timestamp())}"
        raise ValueError(f"unknown macro ${name}")

    return MACRO.sub(one, sql)


def format_value(value, fmt):
    if fmt in (None, "raw", "text"):
        return value
    if fmt == "sqlstring":
        return "'" + value.replace("'", "''") + "'"
    if fmt == "singlequote":
        return "'" + value.replace("'", "\\'") + "'"
    if fmt == "doublequote":
        return '"' + value.replace('"', '\\"') + '"'
    if fmt == "csv":
        return value
    raise ValueError(f"unsupported variable format {fmt!r}")


def interpolate(sql, variables, interval_s, t_from, t_to):
    # Grafana's global variables first (the frontend resolves them before the
    # backend expands macros).
    sql = sql.replace("$__interval_ms", str(int(interval_s * 1000)))
    sql = sql.replace("${__interval_ms}", str(int(interval_s * 1000)))
    interval_text = f"{int(interval_s)}s" if interval_s >= 1 else f"{int(interval_s * 1000)}ms"
    sql = sql.replace("${__interval}", interval_text).replace("$__interval", interval_text)
    range_s = int((t_to - t_from).total_seconds())
    sql = sql.replace("$__range_s", str(range_s)).replace("$__range", f"{range_s}s")

    def var(m):
        name = m.group(1) or m.group(3)
        if name not in variables:
            raise ValueError(f"unknown template variable ${name}")
        return format_value(variables[name], m.group(2))

    sql = TEMPLATE_VAR.sub(var, sql)
    sql = expand_macros(sql, t_from, t_to)
    leftover = re.search(r"\$\{?_*[A-Za-z]", sql)
    if leftover:
        raise ValueError(f"unexpanded token near {sql[leftover.start():leftover.start() + 30]!r}")
    return sql


def run_psql(dsn, sql, timeout_s=60):
    script = (
        f"SET statement_timeout = '{timeout_s}s';\n"
        "BEGIN READ ONLY;\n"
        f"{sql.rstrip().rstrip(';')};\n"
        "ROLLBACK;\n"
    )
    proc = subprocess.run(
        ["psql", dsn, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--csv", "-f", "-"],
        input=script, capture_output=True, text=True, timeout=timeout_s + 30,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip() or f"psql exited {proc.returncode}")
    rows = list(csv.reader(io.StringIO(proc.stdout)))
    if not rows:
        raise RuntimeError("the query returned no result set")
    return rows[0], rows[1:]


def panel_interval(panel):
    text = panel.get("interval") or "1m"
    return max(parse_interval(text), 60.0)


def walk_panels(panels):
    for p in panels or []:
        yield p
        yield from walk_panels(p.get("panels"))


def collect(dash):
    """(kind, label, sql, format, interval_s, var_name, title) for every PostgreSQL query."""
    out = []
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") == "query" and is_pg(v.get("datasource")):
            q = v.get("query")
            q = q.get("rawSql") if isinstance(q, dict) else q
            out.append(("variable", f"variable ${v['name']}", q, "table", 60.0, v["name"], None))
    for a in dash.get("annotations", {}).get("list", []):
        if is_pg(a.get("datasource")) and (a.get("target") or {}).get("rawSql"):
            out.append(("annotation", f"annotation {a['name']!r}", a["target"]["rawSql"], "annotation", 60.0, None, None))
    for p in walk_panels(dash.get("panels")):
        for t in p.get("targets") or []:
            ds = t.get("datasource") or p.get("datasource")
            if is_pg(ds) and t.get("rawSql"):
                out.append(("panel", f"panel #{p.get('id')} {p.get('title')!r} [{t.get('refId')}]",
                            t["rawSql"], t.get("format", "time_series"), panel_interval(p), None,
                            p.get("title")))
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", default=sorted(glob.glob(os.path.join(here, "dashboards", "*.json"))))
    ap.add_argument("--dsn", default=os.environ.get("HEARTBEAT_DASHBOARD_DSN") or os.environ.get("DATABASE_URL") or DEFAULT_DSN)
    ap.add_argument("--hours", type=float, default=24.0, help="time range: the last N hours (default 24)")
    ap.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                    help="value of a template variable (default: the first value its own query returns)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every expanded query")
    args = ap.parse_args()

    t_to = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    t_from = t_to - dt.timedelta(hours=args.hours)
    given = dict(v.split("=", 1) for v in args.var)

    passed = failed = 0
    seen = set()
    names = {os.path.basename(path) for path in args.files}
    for path in args.files:
        with open(path) as f:
            dash = json.load(f)
        name = os.path.basename(path)
        variables = dict(given)
        for kind, label, raw, fmt, interval_s, var_name, title in collect(dash):
            try:
                sql = interpolate(raw, variables, interval_s, t_from, t_to)
                if args.verbose:
                    print(f"--- {name} {label}\n{sql}")
                header, rows = run_psql(args.dsn, sql)
                need = {"time_series": {"time"}, "annotation": {"time", "text"}}.get(fmt, set())
                missing = need - set(header)
                if missing:
                    raise RuntimeError(f"format {fmt} needs column(s) {sorted(missing)}, got {header}")
                if (name, title) in EXPECTED:
                    columns, most = EXPECTED[(name, title)]
                    seen.add((name, title))
                    if header[:len(columns)] != columns:
                        raise RuntimeError(f"expected columns {columns}, got {header}")
                    if most is not None and len(rows) > most:
                        raise RuntimeError(f"expected at most {most} rows, got {len(rows)}")
                if kind == "variable" and var_name not in variables:
                    variables[var_name] = rows[0][0] if rows else PLACEHOLDER
                passed += 1
                print(f"ok    {name}  {label}  ({len(rows)} rows)")
            except Exception as e:  # report every failure, keep going
                failed += 1
                if kind == "variable":
                    variables.setdefault(var_name, PLACEHOLDER)
                print(f"FAIL  {name}  {label}\n      {e}")
                if not args.verbose:
                    print("      " + raw.replace("\n", "\n      "))
    for name, title in sorted(set(EXPECTED) - seen):
        if name in names:
            failed += 1
            print(f"FAIL  {name}  panel {title!r}: missing, or its query failed")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
