#!/usr/bin/env python3
"""check-docs.py - every config key, metric and log line the docs name exists in the code.

Usage: scripts/check-docs.py [--verbose]

Reads README.md and docs/*.md (docs/SPEC.md left out: the contract also describes what is still
coming) and checks four things against the code:

1. config keys: every `section.key` whose first part is a section of config/default.toml
   (`kafka.brokers`, `alerts.sustain_ms.<kind>`, `kafka.ssl_*`) and every environment variable
   `HEARTBEAT__SECTION__KEY` names a key of config/default.toml (its keys flattened, the
   commented-out optional ones such as `# seed = 42` included), a section of it, or a property
   under a map key (`kafka.librdkafka.<property>`). Not keys: librdkafka properties
   (`max.poll.interval.ms`: their first part is no section), file names (`default.toml`), and
   `table.column` names of src/db/schema.rs (`alerts.activated_at`);
2. the key table of docs/OPERATIONS.md ("Every config key") lists every key of
   config/default.toml, and nothing else, each with default.toml's default;
3. metrics: every `heartbeat_...` name is a metric of src/metrics.rs (a histogram's `_bucket`,
   `_sum`, `_count` series included). Names of database objects (roles and functions named in
   migrations/ or deploy/postgres/) are not metrics, and nor are recording rules
   (`record:` in deploy/prometheus/), which are Prometheus's, not the pipeline's;
4. log lines: every message the docs quote as a log line (a row of a table whose second column
   is a level, or a `quoted` message right after "logs", "logged", "log line" and the like, or
   right before "log line") appears as a string in src/. A `...` or `<placeholder>` inside a quote
   stands for text the docs leave out; each part around it must appear.

Prints one `ok`/`FAIL` line per check (with what failed, and where) and ends with
`N passed, M failed` (the line scripts/test.sh counts). Exit 0 when all pass.
"""

import argparse
import pathlib
import re
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
LEVELS = {"TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRIT", "CRITICAL"}
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
SPAN = re.compile(r"`([^`\n]+(?:\n[^`\n]+)?)`")
ENV = re.compile(r"\bHEARTBEAT__([A-Z0-9_]+?)(?==|\b)")
METRIC = re.compile(r"(?<![\w-])heartbeat_[a-z0-9_]+")
# A quoted message right after a word that says it is a log line, or right before "log line".
LOG_BEFORE = re.compile(
    r"(?:\blogs?|\blogged(?: as)?|\blog line|\blog lines?:?|\blogs the|\bwrites)\s*(?:it\s+)?"
    r"(?:\([^)]*\)\s*)?$",
    re.I)
LOG_AFTER = re.compile(r"^\s*(?:\(\w+\)\s*)?log (?:line|message)\b|^\s*\((?:TRACE|DEBUG|INFO|WARN|"
                       r"WARNING|ERROR|CRIT)\b", re.I)
# Names the docs write on purpose although the code has no such key or metric, each with why.
NOT_KEYS = {
    "kafka.broker": "TROUBLESHOOTING's example of a typo that check-config reports as unknown",
}
NOT_METRICS = {
    "heartbeat_oncall": "an example database login in `rules`' updated_by (OPERATIONS.md)",
}


def docs() -> list:
    files = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
    return [f for f in files if f.name != "SPEC.md"]


def line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def config_keys() -> tuple:
    """(leaf keys -> default, sections, map keys) of config/default.toml, flattened."""
    path = ROOT / "config" / "default.toml"
    data = tomllib.loads(path.read_text())
    leaves, sections, maps = {}, set(), set()

    def walk(prefix, table):
        for k, v in table.items():
            key = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict) and v:
                sections.add(key)
                walk(key, v)
            elif isinstance(v, dict):
                maps.add(key)  # an empty inline table: a map of free keys (kafka.librdkafka)
                leaves[key] = "{}"
            else:
                leaves[key] = toml_value(v)

    walk("", data)
    # Optional keys have no default and appear commented out: `# seed = 42` in [generator].
    section = ""
    for line in path.read_text().splitlines():
        m = re.match(r"^\[([a-z_.]+)\]", line)
        if m:
            section = m.group(1)
        m = re.match(r"^#\s*([a-z_]+)\s*=\s*\S", line)
        if m and section and f"{section}.{m.group(1)}" not in leaves:
            leaves[f"{section}.{m.group(1)}"] = "unset"
    return leaves, sections, maps


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v + '"'
    return repr(v)


def schema_columns() -> set:
    """`table.column` of every column in src/db/schema.rs."""
    out, table = set(), None
    for line in (ROOT / "src" / "db" / "schema.rs").read_text().splitlines():
        m = re.match(r"\s*(\w+)\s*(?:\([^)]*\)\s*)?\{\s*$", line)
        if m and m.group(1) not in ("table", "diesel"):
            table = m.group(1)
            continue
        m = re.match(r"\s*(\w+)\s*->", line)
        if m and table:
            out.add(f"{table}.{m.group(1)}")
    return out


def source_text() -> str:
    """Every .rs file of src/, with Rust's `\\`-newline string continuations joined."""
    text = "\n".join(f.read_text() for f in sorted((ROOT / "src").rglob("*.rs")))
    return re.sub(r"\\\n\s*", "", text)


def prose(text: str) -> str:
    """The text with fenced code blocks blanked out (same length, so positions and lines hold)."""
    return FENCE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def check_keys(leaves, sections, maps, columns) -> list:
    first = {s.split(".")[0] for s in sections} | {k.split(".")[0] for k in leaves}
    key = re.compile(r"(?<![\w./@:-])((?:" + "|".join(sorted(first)) + r")(?:\.[a-z_<>*]+)+)"
                     r"(?![\w/@-]|\.[a-z])")
    problems = []
    for f in docs():
        text = f.read_text()
        for m in key.finditer(prose(text)):
            name = m.group(1).rstrip(".")
            if name in columns or name in leaves or name in sections or name in NOT_KEYS:
                continue
            if any(name.startswith(mp + ".") for mp in maps):
                continue
            # `kafka.ssl_*`: a pattern that names at least one key.
            if name.endswith("*") and any(k.startswith(name[:-1]) for k in leaves):
                continue
            # `alerts.sustain_ms.<kind>`: a placeholder under a section.
            parts = name.split(".")
            if re.fullmatch(r"<\w+>|\*", parts[-1]) and ".".join(parts[:-1]) in sections:
                continue
            problems.append(f"{f.relative_to(ROOT)}:{line_of(text, m.start())}: {name}")
        for m in ENV.finditer(text):
            name = m.group(1).lower().replace("__", ".")
            if name in leaves or name in sections or name in NOT_KEYS or any(
                    name.startswith(mp + ".") for mp in maps):
                continue
            problems.append(f"{f.relative_to(ROOT)}:{line_of(text, m.start())}: "
                            f"HEARTBEAT__{m.group(1)} ({name})")
    return problems


def check_key_table(leaves) -> list:
    """The "Every config key" table of docs/OPERATIONS.md against config/default.toml."""
    f = ROOT / "docs" / "OPERATIONS.md"
    text = f.read_text()
    start = text.find("\n## Every config key")
    if start < 0:
        return [f"{f.relative_to(ROOT)}: no section \"## Every config key\""]
    end = text.find("\n## ", start + 1)
    table = text[start:end if end > 0 else len(text)]
    listed, problems = {}, []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        names, full = [], None
        for n in re.findall(r"`([^`]+)`", cells[0]):
            if n.startswith(".") and full:
                n = full.rsplit(".", 1)[0] + n  # `.critical_high` after a full key
            full = n
            names.append(n)
        default = cells[1].strip("`")
        for n in names:
            listed[n] = default
    lineno = line_of(text, start)
    for k in sorted(set(leaves) - set(listed)):
        problems.append(f"{f.relative_to(ROOT)}:{lineno}: {k} is in config/default.toml, "
                        f"not in the table")
    for k in sorted(set(listed) - set(leaves)):
        problems.append(f"{f.relative_to(ROOT)}:{lineno}: {k} is in the table, "
                        f"not in config/default.toml")
    for k in sorted(set(listed) & set(leaves)):
        if listed[k] != leaves[k]:
            problems.append(f"{f.relative_to(ROOT)}:{lineno}: {k}: the table says {listed[k]}, "
                            f"config/default.toml {leaves[k]}")
    return problems


def check_metrics() -> list:
    metrics_rs = (ROOT / "src" / "metrics.rs").read_text()
    metrics = set(re.findall(r'"(heartbeat_[a-z0-9_]+)"', metrics_rs))
    for m in list(metrics):
        metrics |= {m + s for s in ("_bucket", "_sum", "_count")}
    not_metrics = set()
    for d in ("migrations", "deploy/postgres"):
        for p in (ROOT / d).rglob("*"):
            if p.is_file():
                not_metrics |= set(METRIC.findall(p.read_text(errors="replace")))
    for p in (ROOT / "deploy" / "prometheus").glob("*.yml"):
        not_metrics |= set(re.findall(r"record:\s*(\S+)", p.read_text()))
    problems = []
    for f in docs():
        text = f.read_text()
        for m in METRIC.finditer(text):
            name = m.group(0)
            if name in metrics or name in not_metrics or name in NOT_METRICS:
                continue
            problems.append(f"{f.relative_to(ROOT)}:{line_of(text, m.start())}: {name}")
    return problems


def quoted_log_lines(text: str) -> list:
    """(position, message) of every log line's message the text quotes."""
    found = []
    body = prose(text)
    # Tables of log lines: | `message` [/ `message`] | LEVEL | ...
    for m in re.finditer(r"^\|([^|\n]*)\|\s*([A-Z]+)\s*\|", body, re.M):
        if m.group(2) in LEVELS:
            for s in re.finditer(r"`([^`]+)`", m.group(1)):
                found.append((m.start(1) + s.start(), s.group(1)))
    for m in SPAN.finditer(body):
        before = body[max(0, m.start() - 40):m.start()].replace("\n", " ")
        after = body[m.end():m.end() + 30].replace("\n", " ")
        if LOG_BEFORE.search(before) or LOG_AFTER.search(after):
            msg = re.sub(r"\s+", " ", m.group(1))
            if " " in msg or re.fullmatch(r"[a-z]+", msg):
                found.append((m.start(), msg))
    return found


def check_log_lines(src: str) -> list:
    problems, seen = [], set()
    for f in docs():
        text = f.read_text()
        for pos, msg in quoted_log_lines(text):
            if (f, msg) in seen:
                continue
            seen.add((f, msg))
            parts = [p.strip() for p in re.split(r"\.\.\.|<[^>]*>|\{[^}]*\}", msg)]
            parts = [p for p in parts if len(p) >= 4]
            if not parts:
                continue
            if len(parts) == 1 and parts[0] == msg.strip():
                # The whole message: a string of its own in the code.
                ok = f'"{msg}"' in src or f'"{msg}:' in src or f'"{msg} ' in src
            else:
                ok = all(p in src for p in parts)
            if not ok:
                problems.append(f"{f.relative_to(ROOT)}:{line_of(text, pos)}: \"{msg}\"")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--verbose", action="store_true", help="list the log lines found")
    args = ap.parse_args()
    leaves, sections, maps = config_keys()
    src = source_text()
    if args.verbose:
        for f in docs():
            for _, msg in quoted_log_lines(f.read_text()):
                print(f"log line in {f.relative_to(ROOT)}: {msg}")
    checks = [
        ("every config key the docs name is a key of config/default.toml",
         check_keys(leaves, sections, maps, schema_columns())),
        ("docs/OPERATIONS.md's key table is config/default.toml's keys, with their defaults",
         check_key_table(leaves)),
        ("every heartbeat_ metric the docs name is one of src/metrics.rs",
         check_metrics()),
        ("every log line the docs quote is a message in src/",
         check_log_lines(src)),
    ]
    passed = failed = 0
    for title, problems in checks:
        if problems:
            failed += 1
            print(f"FAIL  {title}")
            for p in problems:
                print(f"      {p}")
        else:
            passed += 1
            print(f"ok    {title}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
