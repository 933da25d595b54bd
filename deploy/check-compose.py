#!/usr/bin/env python3
"""Check deploy/docker-compose.yml against SPEC section 7, without Docker.

Parses the compose file (PyYAML, anchors and merge keys included), validates it
and the overlays beside it (docker-compose.*.yml) against the compose-spec JSON
schema vendored in deploy/schema/, and checks the project's own policy, what
the deployment promises: the services (Apache Kafka in KRaft mode, a
one-shot topic creator, PostgreSQL, Grafana, Prometheus, Alertmanager, a Kafka
UI, and `generator` and `processor` built from the repository's Dockerfile),
that Prometheus and the processor send their alerts to that Alertmanager and
that its webhook receivers are services of the file, a health
check and a restart policy on every long-running service, depends_on with
health conditions where the pipeline needs Kafka and PostgreSQL, rotated logs,
named volumes on the data directories, configuration mounted read-only from
files in the repository (and every file those reference), secrets interpolated
from deploy/.env (git-ignored, documented in .env.example) rather than written
in the file, that Prometheus scrapes the services the file defines, and that
the retention job keeps everything for RETENTION_DAYS=0 and shows a failed run
in its health check (its script and health check are run under /bin/sh with
stand-ins for psql and sleep), every image pinned and the pipeline's image
built once, no variable set together with its _FILE, each PostgreSQL login
sending the password the database got, TLS wherever pg_hba.conf demands it,
and nothing published open without a login by default.

Every check then runs again on each overlay merged onto the file (the compose
spec's merge rules: environment by key, volumes by target, secrets by source,
command replaced), as `docker compose -f docker-compose.yml -f OVERLAY` starts
it; those lines are prefixed [+OVERLAY].

Usage:
    deploy/check-compose.py [COMPOSE_FILE]

COMPOSE_FILE defaults to deploy/docker-compose.yml next to this script.
Needs Python 3.11+ (tomllib), PyYAML and jsonschema (Debian's python3-yaml and
python3-jsonschema: when the python3 on PATH lacks them, this re-runs itself
under /usr/bin/python3), and git
for the .gitignore check. Prints one line per check ("ok" or "FAIL" and what
is wrong), then "N passed, M failed"; exit 0 when every check passed, 1
otherwise.
"""

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib

try:
    import jsonschema
    import yaml
except ImportError:  # pyenv's python3 without PyYAML: Debian's python3-yaml is for /usr/bin/python3
    system_python = "/usr/bin/python3"
    if os.path.realpath(sys.executable) != os.path.realpath(system_python) and os.access(system_python, os.X_OK) \
            and not os.environ.get("CHECK_COMPOSE_REEXEC"):
        os.environ["CHECK_COMPOSE_REEXEC"] = "1"
        os.execv(system_python, [system_python, *sys.argv])
    print("FAIL  PyYAML or jsonschema is missing: apt-get install python3-yaml python3-jsonschema "
          "(scripts/build-deps.sh --test does)")
    print("0 passed, 1 failed")
    sys.exit(1)

DEPLOY = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(DEPLOY)

# The Compose Specification's JSON schema, vendored (deploy/schema/README.md says from where and
# which version): it knows every key and value form of the spec, so no list of keys is kept here.
SCHEMA = os.path.join(DEPLOY, "schema", "compose-spec.json")
LONG_RUNNING_RESTART = re.compile(r"^(always|unless-stopped|on-failure(:\d+)?)$")

IMAGES = {
    "kafka": re.compile(r"(^|/)(kafka|cp-kafka|cp-server)(:|@|$)"),
    "postgres": re.compile(r"(^|/)postgres(ql)?(:|@|$)"),
    "grafana": re.compile(r"(^|/)grafana(-oss|-enterprise)?(:|@|$)"),
    "prometheus": re.compile(r"(^|/)prometheus(:|@|$)"),
    "alertmanager": re.compile(r"(^|/)alertmanager(:|@|$)"),
    "kafka-ui": re.compile(r"(^|/)(kafka-ui|kafdrop|akhq|console)(:|@|$)"),
}
# Where each stateful image keeps its data unless the service says otherwise.
DEFAULT_DATA_DIRS = {
    "kafka": "/tmp/kraft-combined-logs",  # apache/kafka's log.dirs
    "postgres": "/var/lib/postgresql/data",
    "grafana": "/var/lib/grafana",
    "prometheus": "/prometheus",
    "alertmanager": "/alertmanager",  # prom/alertmanager's --storage.path
}
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIAL", re.I)
URL_PASSWORD = re.compile(r"://[^/:@\s]+:([^@\s]+)@")
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}, ${VAR:+x}, $VAR; not $$.
INTERP = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


class Problems(list):
    def need(self, cond, msg):
        if not cond:
            self.append(msg)
        return cond


# ----------------------------------------------------------------------------------------------
# normalising the compose file's short and long forms
# ----------------------------------------------------------------------------------------------
def environment(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            k, _, v = str(item).partition("=")
            out[k] = v
        return out
    return {str(k): "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for k, v in env.items()}


def as_list(value):
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


def depends(svc):
    """{target: condition} of a service's depends_on (short form = service_started)."""
    dep = svc.get("depends_on") or {}
    if isinstance(dep, list):
        return {str(d): "service_started" for d in dep}
    return {str(k): (v or {}).get("condition", "service_started") for k, v in dep.items()}


def mounts(svc):
    """(kind, source, target, read_only) of each volume entry; kind is bind or volume."""
    out = []
    for v in svc.get("volumes") or []:
        if isinstance(v, dict):
            src, tgt = v.get("source"), v.get("target")
            kind = v.get("type", "volume")
            ro = bool(v.get("read_only"))
        else:
            parts = str(v).split(":")
            if len(parts) == 1:
                src, tgt, mode = None, parts[0], ""
            else:
                src, tgt, mode = parts[0], parts[1], ":".join(parts[2:])
            kind = "bind" if src and src[0] in "./~$" else "volume"
            ro = "ro" in mode.split(",")
        out.append((kind, src, tgt, ro))
    return out


def under(path, directory):
    directory = directory.rstrip("/") or "/"
    return path == directory or path.startswith(directory + "/") or directory == "/"


def host_path(svc, container_path):
    """The repository file a container path comes from through a bind mount, or None."""
    best = None
    for kind, src, tgt, _ in mounts(svc):
        if kind == "bind" and tgt and under(container_path, tgt) and (best is None or len(tgt) > len(best[1])):
            best = (src, tgt)
    if best is None:
        return None
    rest = container_path[len(best[1].rstrip("/")):].lstrip("/")
    return os.path.normpath(os.path.join(DEPLOY, best[0], rest))


def rel(path):
    return os.path.relpath(path, REPO)


# ----------------------------------------------------------------------------------------------
# interpolation from deploy/.env.example (compose reads deploy/.env the same way)
# ----------------------------------------------------------------------------------------------
def read_env_file(path):
    out = {}
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            k, _, v = line.partition("=")
            v = v.strip()
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
                v = v[1:-1]
            out[k.strip()] = v
    return out


def interpolations(text):
    """(name, operator, default) of every ${...} in a string."""
    for m in INTERP.finditer(text):
        if m.group(1):
            yield m.group(1), m.group(2) or "", m.group(3) or ""
        else:
            yield m.group(4), "", ""


def expand(text, env):
    def one(m):
        name = m.group(1) or m.group(4)
        op, arg = m.group(2) or "", m.group(3) or ""
        val = env.get(name)
        if op in (":-", "-"):
            return val if val not in (None, "") or (op == "-" and val is not None) else arg
        return val or ""
    return INTERP.sub(one, text).replace("$$", "$")


def walk_strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for k, v in node.items():
            if not str(k).startswith("x-"):
                yield from walk_strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk_strings(v)


# ----------------------------------------------------------------------------------------------
# the pipeline's own configuration (config/default.toml <- HEARTBEAT_CONFIG file <- HEARTBEAT__*)
# ----------------------------------------------------------------------------------------------
def load_toml(path):
    with open(path, "rb") as f:
        return tomllib.load(f)


def config_keys(tree, prefix=""):
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            yield from config_keys(v, key + ".")
        else:
            yield key


class Pipeline:
    """Effective configuration of one pipeline service, with the problems found building it."""

    # Keys SPEC section 3 names that config/default.toml leaves commented out.
    OPTIONAL_KEYS = {"generator.seed"}

    def __init__(self, name, svc, env_defaults):
        self.name, self.svc = name, svc
        self.problems = Problems()
        self.default = load_toml(os.path.join(REPO, "config", "default.toml"))
        self.known = set(config_keys(self.default)) | self.OPTIONAL_KEYS
        self.open_maps = {k for k, v in self._flat(self.default).items() if v == {}}
        self.values = dict(self._flat(self.default))
        env = {k: expand(v, env_defaults) for k, v in environment(svc).items()}
        self.env = env
        self.config_file = None
        cfg = env.get("HEARTBEAT_CONFIG")
        cmd = as_list(svc.get("command"))
        if "--config" in cmd[:-1]:
            cfg = cmd[cmd.index("--config") + 1]
        if cfg:
            path = host_path(svc, cfg)
            if path is None:
                self.problems.append(f"{name}: config file {cfg} is not under a bind mount of the repo")
            elif self.problems.need(os.path.isfile(path), f"{name}: config file {cfg} -> {rel(path)} does not exist"):
                self.config_file = path
                for key, value in self._flat(load_toml(path)).items():
                    self._set(key, value, rel(path))
        for var, value in env.items():
            if var.startswith("HEARTBEAT__"):
                key = ".".join(var[len("HEARTBEAT__"):].lower().split("__"))
                self._set(key, value, f"environment {var}")

    @staticmethod
    def _flat(tree, prefix=""):
        out = {}
        for k, v in tree.items():
            if isinstance(v, dict) and v:
                out.update(Pipeline._flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    def _set(self, key, value, where):
        if key in self.known or any(key.startswith(m + ".") for m in self.open_maps):
            self.values[key] = value
        else:
            self.problems.append(f"{self.name}: {where} sets unknown key {key} (`run` exits 2 on unknown keys)")

    def get(self, key):
        return self.values.get(key)

    def flag(self, key):
        return str(self.get(key)).strip().lower() == "true"

    def http_port(self):
        return str(self.get("http.bind")).rsplit(":", 1)[-1]


# ----------------------------------------------------------------------------------------------
# the checks
# ----------------------------------------------------------------------------------------------
class Compose:
    """The compose file at path, or (doc given) the merge of it and an overlay, named label."""

    def __init__(self, path, doc=None, label=None):
        self.path, self.label = path, label
        if doc is None:
            with open(path) as f:
                doc = yaml.safe_load(f)
        self.doc = doc
        self.services = self.doc.get("services") or {}
        self.env_example = read_env_file(os.path.join(DEPLOY, ".env.example"))
        self.env_defaults = dict(self.env_example)
        for text in walk_strings(self.doc):
            for name, op, default in interpolations(text):
                if op in (":-", "-"):
                    self.env_defaults.setdefault(name, default)
        # One-shot jobs: what another service waits for with service_completed_successfully.
        self.one_shots = {t for s in self.services.values() for t, c in depends(s).items()
                          if c == "service_completed_successfully"}
        self.long_running = [n for n in self.services if n not in self.one_shots]
        self._pipelines = {}

    def image(self, name):
        return str(self.services[name].get("image") or "")

    def find(self, kind, long_running=True):
        pool = self.long_running if long_running else sorted(self.one_shots)
        # A service that replaces the image's entrypoint uses its tools (psql in the
        # `retention` job), it does not run the server.
        return [n for n in pool if IMAGES[kind].search(self.image(n))
                and not (kind == "postgres" and self.services[n].get("entrypoint"))]

    def one(self, kind, p):
        found = self.find(kind)
        p.need(len(found) == 1, f"expected one long-running {kind} service (by image), found {found or 'none'}")
        return found[0] if found else None

    def pipeline(self, name):
        if name not in self._pipelines:
            self._pipelines[name] = Pipeline(name, self.services[name], self.env_defaults)
        return self._pipelines[name]

    def env(self, name):
        return {k: expand(v, self.env_defaults) for k, v in environment(self.services[name]).items()}

    def kafka_env(self, name, key):
        env = self.env(name)
        for prefix in ("KAFKA_", "KAFKA_CFG_"):
            if prefix + key in env:
                return env[prefix + key]
        return None

    def advertised(self, kafka):
        listeners = self.kafka_env(kafka, "ADVERTISED_LISTENERS") or ""
        return {m.group(1) for m in re.finditer(r"://([^,\s]+)", listeners)}


# ----------------------------------------------------------------------------------------------
# overlays: `docker compose -f docker-compose.yml -f OVERLAY` merges them (the compose spec's
# "Merge and override"); every check runs on that merge too, as the stack it starts
# ----------------------------------------------------------------------------------------------
def _env_dict(value):
    return environment({"environment": value})


def _by(items, key):
    """A list of volumes/secrets as {identity: item}, identity = key(item)."""
    return {key(i): i for i in items or []}


def _mount_target(v):
    return v.get("target") if isinstance(v, dict) else (str(v).split(":") + [""])[1] or str(v)


def _secret_source(v):
    return v.get("source") if isinstance(v, dict) else str(v)


def merge_service(base, over):
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        if key in ("environment", "labels") and old is not None:
            out[key] = {**_env_dict(old), **_env_dict(value)}
        elif key in ("command", "entrypoint") or old is None:
            out[key] = value
        elif key == "depends_on":
            norm = lambda d: {k: {"condition": "service_started"} for k in d} if isinstance(d, list) else dict(d)
            out[key] = {**norm(old), **norm(value)}
        elif key == "volumes":
            out[key] = list({**_by(old, _mount_target), **_by(value, _mount_target)}.values())
        elif key in ("secrets", "configs"):
            out[key] = list({**_by(old, _secret_source), **_by(value, _secret_source)}.values())
        elif isinstance(old, list) and isinstance(value, list):
            out[key] = old + [v for v in value if v not in old]
        elif isinstance(old, dict) and isinstance(value, dict):
            out[key] = merge_service(old, value) if key != "healthcheck" else {**old, **value}
        else:
            out[key] = value
    return out


def merge_docs(base, over):
    out = dict(base)
    for key, value in (over or {}).items():
        if key == "services":
            services = dict(base.get("services") or {})
            for name, svc in (value or {}).items():
                services[name] = merge_service(services.get(name) or {}, svc or {})
            out[key] = services
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def check_parse(c, p):
    p.need(isinstance(c.doc, dict), "the file is not a YAML mapping")
    p.need(isinstance(c.services, dict) and c.services, "no services")
    p.need("version" not in c.doc, "top-level `version` is obsolete in compose v2 (it warns); remove it")
    return f"{len(c.services)} services"


def overlays(c):
    """The overlays beside the compose file (docker-compose.*.yml), e.g. docker-compose.secure.yml."""
    d, base = os.path.split(c.path)
    stem = os.path.splitext(base)[0]
    return sorted(os.path.join(d, f) for f in os.listdir(d)
                  if f != base and f.startswith(stem + ".") and f.endswith((".yml", ".yaml")))


def check_schema(c, p):
    """Every key and value form against the compose-spec schema, for the file and its overlays: typos
    that `docker compose` would reject ("healtcheck", "service_healty") or silently ignore."""
    with open(SCHEMA) as f:
        schema = json.load(f)
    validator = jsonschema.validators.validator_for(schema)(schema)
    # A merge: the merged document (the files were checked one by one with the base file).
    files = [c.path] + overlays(c) if c.label is None else [c.label]
    for path in files:
        if c.label is None:
            with open(path) as f:
                doc = yaml.safe_load(f)
        else:
            doc = c.doc
        for e in sorted(validator.iter_errors(doc), key=lambda e: [str(x) for x in e.absolute_path]):
            where = "/".join(str(x) for x in e.absolute_path) or "(top level)"
            p.append(f"{os.path.basename(path)}: {where}: {e.message}")
    for name, svc in c.services.items():
        p.need(svc.get("image") or svc.get("build"), f"{name}: neither image nor build")
    return ", ".join(os.path.basename(f) for f in files)


def check_kafka(c, p):
    kafka = c.one("kafka", p)
    if not kafka:
        return
    roles = c.kafka_env(kafka, "PROCESS_ROLES") or ""
    p.need({"broker", "controller"} <= {r.strip() for r in roles.split(",")},
           f"{kafka}: PROCESS_ROLES is {roles!r}, KRaft single node needs broker,controller")
    p.need(c.kafka_env(kafka, "CONTROLLER_QUORUM_VOTERS"), f"{kafka}: no CONTROLLER_QUORUM_VOTERS")
    p.need(c.kafka_env(kafka, "CONTROLLER_LISTENER_NAMES"), f"{kafka}: no CONTROLLER_LISTENER_NAMES")
    p.need(c.kafka_env(kafka, "ZOOKEEPER_CONNECT") is None, f"{kafka}: ZOOKEEPER_CONNECT set (not KRaft)")
    zk = [n for n in c.services if "zookeeper" in n or "zookeeper" in c.image(n)]
    p.need(not zk, f"ZooKeeper services {zk} (KRaft needs none)")
    p.need(c.advertised(kafka), f"{kafka}: no ADVERTISED_LISTENERS")
    return f"{kafka}, {c.image(kafka)}"


def topics_wanted(c):
    """The topic names and partition count the pipeline services are configured with."""
    names, partitions = set(), set()
    for name in ("processor", "generator"):
        if name in c.services:
            pl = c.pipeline(name)
            # anomalies: the per-anomaly stream (alerts carries the episode events since delivery).
            names |= {str(pl.get(f"kafka.topics.{t}")) for t in ("readings", "dead_letter", "anomalies", "alerts")
                      if pl.get(f"kafka.topics.{t}") is not None}
            partitions.add(str(pl.get("kafka.topics.partitions")))
    return names, partitions


def check_kafka_init(c, p):
    kafka = (c.find("kafka") or [None])[0]
    inits = [n for n in sorted(c.one_shots) if n in c.services
             and "kafka-topics" in " ".join(as_list(c.services[n].get("entrypoint")) + as_list(c.services[n].get("command")))]
    if not p.need(len(inits) == 1, f"expected one one-shot service running kafka-topics (waited for with "
                                   f"service_completed_successfully), found {inits or 'none'}"):
        return
    init = inits[0]
    svc = c.services[init]
    script = " ".join(as_list(svc.get("entrypoint")) + as_list(svc.get("command")))
    p.need("--create" in script, f"{init}: kafka-topics without --create")
    p.need("--if-not-exists" in script, f"{init}: --create without --if-not-exists fails on a second `up`")
    names, partitions = topics_wanted(c)
    # Topic names count where they are created: on a --create command, or in the word list of a
    # `for` loop (not, say, in a --describe afterwards).
    lines = re.sub(r"\\\n", " ", "\n".join(as_list(svc.get("entrypoint")) + as_list(svc.get("command")))).splitlines()
    creating = "\n".join(l for l in lines if "--create" in l or re.match(r"\s*for\s+\w+\s+in\s", l))
    missing = sorted(t for t in names if not re.search(rf"(?<![\w.-]){re.escape(t)}(?![\w.-])", creating))
    p.need(not missing, f"{init}: does not create topic(s) {missing} that the pipeline uses")
    m = re.search(r"--partitions\s+(\d+)", script)
    p.need(m and {m.group(1)} == partitions,
           f"{init}: --partitions {m.group(1) if m else 'missing'}, the pipeline's kafka.topics.partitions is {sorted(partitions)}")
    if kafka:
        p.need(depends(svc).get(kafka) == "service_healthy", f"{init}: does not wait for {kafka} with service_healthy")
        for b in re.findall(r"--bootstrap-server[ =]+(\S+)", script):
            p.need(b in c.advertised(kafka), f"{init}: --bootstrap-server {b} is not an advertised listener of {kafka}")
    return init


def check_postgres(c, p):
    pg = c.one("postgres", p)
    if not pg:
        return
    env = c.env(pg)
    # The image's file_env: VAR or VAR_FILE; both non-empty and it exits at once ("both
    # POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE are set (but are exclusive)"). Empty is unset.
    for key in ("POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"):
        value, file = env.get(key, ""), env.get(key + "_FILE", "")
        p.need(value or file, f"{pg}: neither {key} nor {key}_FILE set")
        p.need(not (value and file), f"{pg}: both {key} and {key}_FILE are non-empty; the image refuses to start")
    return f"{pg}, {c.image(pg)}"


def check_grafana(c, p):
    gf = c.one("grafana", p)
    if not gf:
        return
    svc = c.services[gf]
    env = c.env(gf)
    prov = host_path(svc, env.get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning"))
    if p.need(prov and os.path.isdir(prov), f"{gf}: /etc/grafana/provisioning is not mounted from a repo folder"):
        for sub in ("datasources", "dashboards"):
            files = [f for f in os.listdir(os.path.join(prov, sub)) if f.endswith((".yml", ".yaml"))] \
                if os.path.isdir(os.path.join(prov, sub)) else []
            p.need(files, f"{gf}: no {sub} provisioning file in {rel(prov)}/{sub}")
            for f in files:
                path = os.path.join(prov, sub, f)
                with open(path) as fh:
                    doc = yaml.safe_load(fh) or {}
                for text in walk_strings(doc):
                    for var, _, _ in interpolations(text):
                        p.need(var in env, f"{gf}: {rel(path)} uses ${var}, not in the service's environment")
                for provider in doc.get("providers") or []:
                    dpath = (provider.get("options") or {}).get("path")
                    if dpath:
                        hp = host_path(svc, dpath)
                        p.need(hp and os.path.isdir(hp) and any(x.endswith(".json") for x in os.listdir(hp)),
                               f"{gf}: dashboard provider path {dpath} is not a mounted folder of dashboards")
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        hp = host_path(svc, home)
        p.need(hp and os.path.isfile(hp), f"{gf}: home dashboard {home} is not a mounted repo file")
    return f"{gf}, {c.image(gf)}"


def check_prometheus(c, p):
    prom = c.one("prometheus", p)
    if not prom:
        return
    svc = c.services[prom]
    cmd = as_list(svc.get("command"))
    cfg = next((a.split("=", 1)[1] for a in cmd if a.startswith("--config.file=")), "/etc/prometheus/prometheus.yml")
    path = host_path(svc, cfg)
    if not p.need(path and os.path.isfile(path), f"{prom}: --config.file {cfg} is not a mounted repo file"):
        return
    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    for rule in doc.get("rule_files") or []:
        container = rule if rule.startswith("/") else os.path.join(os.path.dirname(cfg), rule)
        hp = host_path(svc, container)
        p.need(hp and os.path.isfile(hp), f"{prom}: rule file {rule} ({container}) is not a mounted repo file")
    return f"{prom}, {c.image(prom)}, {rel(path)}"


def command_flag(svc, flag, default):
    """The value of `--flag=value` in a service's command, or default."""
    return next((a.split("=", 1)[1] for a in as_list(svc.get("command")) if a.startswith(flag + "=")), default)


def alertmanager_port(svc):
    return command_flag(svc, "--web.listen-address", ":9093").rpartition(":")[2] or "9093"


def url_host_port(url):
    m = re.match(r"^[a-z][a-z0-9+.-]*://(?:[^@/]*@)?(\[[^\]]*\]|[^:/]+)(?::(\d+))?", url.strip())
    if not m:
        return None, None
    scheme = url.split(":", 1)[0]
    return m.group(1), m.group(2) or ("443" if scheme == "https" else "80")


def receiver_urls(node, key=None):
    """(key, value) of every url of the receivers of an Alertmanager config (webhook_configs' url,
    and any *_url an example turned on)."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from receiver_urls(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from receiver_urls(v, key)
    elif isinstance(node, str) and key and (key == "url" or key.endswith("_url")):
        yield key, node


def file_keys(node):
    """(key, path) of every *_file setting in an Alertmanager config (credentials read from files)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(v, str) and str(k).endswith("_file") and k != "template_files":
                yield k, v
            else:
                yield from file_keys(v)
    elif isinstance(node, list):
        for v in node:
            yield from file_keys(v)


def check_alertmanager(c, p):
    """SPEC section 7: Alertmanager in the stack, Prometheus's own rules routed through it, and (SPEC
    section 8) the processor delivering its alert episodes to it."""
    am = c.one("alertmanager", p)
    if not am:
        return
    svc = c.services[am]
    image = c.image(am)
    tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
    p.need("@sha256:" in image or (tag and tag != "latest"),
           f"{am}: image {image} is not pinned (a version tag or a digest; the tests run Alertmanager 0.25)")
    cfg = command_flag(svc, "--config.file", "/etc/alertmanager/alertmanager.yml")
    path = host_path(svc, cfg)
    port = alertmanager_port(svc)
    if p.need(path and os.path.isfile(path), f"{am}: --config.file {cfg} is not a mounted repo file"):
        with open(path) as f:
            doc = yaml.safe_load(f) or {}
        # A webhook to a name without a dot is a service of this file: a mistyped one would fail
        # every notification, only in Alertmanager's log.
        for key, url in receiver_urls(doc.get("receivers") or []):
            host, _ = url_host_port(url)
            if host and "." not in host and host not in ("localhost",):
                p.need(host in c.services, f"{rel(path)}: receiver {key} {url}: {host} is not a compose service")
        # Credentials the receivers read (*_file keys) must be under a mount of the service.
        for k, v in file_keys(doc):
            p.need(host_path(svc, v), f"{rel(path)}: {k} {v} is not under a bind mount of {am}")
    # Prometheus's own rules route through it.
    prom = (c.find("prometheus") or [None])[0]
    if prom:
        ppath = host_path(c.services[prom], command_flag(c.services[prom], "--config.file", "/etc/prometheus/prometheus.yml"))
        if ppath and os.path.isfile(ppath):
            with open(ppath) as f:
                pdoc = yaml.safe_load(f) or {}
            targets = [str(t) for a in (pdoc.get("alerting") or {}).get("alertmanagers") or []
                       for st in a.get("static_configs") or [] for t in st.get("targets") or []]
            p.need(f"{am}:{port}" in targets, f"{rel(ppath)}: alerting does not send to {am}:{port} (targets {targets or 'none'})")
    # The processor delivers to it, without waiting for it (delivery catches up; SPEC section 6:
    # an unreachable Alertmanager is never a readiness reason).
    if "processor" in c.services:
        urls = [u for u in str(c.pipeline("processor").get("alerts.alertmanager.urls") or "").split(",") if u.strip()]
        if p.need(urls, "processor: alerts.alertmanager.urls is empty: its alert episodes reach no Alertmanager"):
            for url in urls:
                p.need(url_host_port(url) == (am, port), f"processor: alerts.alertmanager.urls {url} is not {am}:{port}")
        cond = depends(c.services["processor"]).get(am)
        p.need(cond != "service_healthy",
               f"processor: waits for {am} to be healthy; an Alertmanager that does not start would hold up the "
               f"data path (the outbox catches up: service_started)")
    return f"{am}, {image}, {rel(path) if path else cfg}"


def check_kafka_ui(c, p):
    ui = c.one("kafka-ui", p)
    kafka = (c.find("kafka") or [None])[0]
    if not ui or not kafka:
        return
    env = c.env(ui)
    servers = [v for k, v in env.items() if re.search(r"BOOTSTRAP_?SERVERS$|^KAFKA_BROKERCONNECT$", k)]
    p.need(servers, f"{ui}: no bootstrap servers in its environment")
    for s in servers:
        for b in s.split(","):
            p.need(b in c.advertised(kafka), f"{ui}: bootstrap server {b} is not an advertised listener of {kafka}")
    return f"{ui}, {c.image(ui)}"


def builder(c, name):
    """The service whose build: makes the image `name` runs: itself, or the one service with a
    build and the same image name (compose then neither pulls nor builds it for `name`)."""
    svc = c.services[name]
    if svc.get("build"):
        return name
    found = [n for n, s in c.services.items() if s.get("build") and s.get("image") and s.get("image") == svc.get("image")]
    return found[0] if len(found) == 1 else None


def check_pipeline_build(c, p):
    builds = set()
    for name in ("processor", "generator"):
        if not p.need(name in c.services, f"no `{name}` service"):
            continue
        maker = builder(c, name)
        if not p.need(maker, f"{name}: not built from the repo (no build:, and no one service with a build: "
                             f"makes its image {c.image(name) or '-'})"):
            continue
        build = c.services[maker].get("build")
        if isinstance(build, str):
            build = {"context": build}
        ctx = os.path.normpath(os.path.join(DEPLOY, build.get("context", ".")))
        p.need(os.path.isfile(os.path.join(ctx, "Cargo.toml")) and ctx == REPO,
               f"{name}: build context {build.get('context')} is not the repository root")
        dockerfile = os.path.normpath(os.path.join(ctx, build.get("dockerfile", "Dockerfile")))
        p.need(os.path.isfile(dockerfile), f"{name}: Dockerfile {rel(dockerfile)} does not exist")
        builds.add(rel(dockerfile))
    p.need(len(builds) <= 1, f"processor and generator use different Dockerfiles {sorted(builds)}")
    # One build per image: services that share an image name and each have a build: build it once each.
    by_image = {}
    for n, s in c.services.items():
        if s.get("build") and s.get("image"):
            by_image.setdefault(s["image"], []).append(n)
    for image, names in sorted(by_image.items()):
        p.need(len(names) == 1, f"{', '.join(names)} all build {image}: give one of them the build: and the others "
                                f"only the image (pull_policy: never)")
    makers = set()
    for name in ("processor", "generator"):
        maker = name in c.services and builder(c, name)
        if maker and maker != name:
            makers.add(maker)
            # A local image is on no registry: a pull can only fail (or fetch a stranger's image).
            p.need(c.services[name].get("pull_policy") == "never",
                   f"{name}: runs {c.image(name)}, built by {maker}, without pull_policy: never")
    if "processor" in c.services and builder(c, "processor") not in (None, "processor"):
        maker = builder(c, "processor")
        p.need(maker in depends(c.services["processor"]),
               f"processor: does not depend on {maker}, which builds its image (`up processor` alone would not build it)")
    return ", ".join(sorted(builds)) + (f", built once by {', '.join(sorted(makers))}" if makers else "")


def check_pipeline_roles(c, p):
    kafka = (c.find("kafka") or [None])[0]
    pg = (c.find("postgres") or [None])[0]
    for name, gen, proc in (("processor", False, True), ("generator", True, False)):
        if name not in c.services:
            p.append(f"no `{name}` service")
            continue
        pl = c.pipeline(name)
        p.extend(pl.problems)
        p.need(pl.flag("generator.enabled") == gen and pl.flag("processor.enabled") == proc,
               f"{name}: generator.enabled={pl.get('generator.enabled')}, processor.enabled={pl.get('processor.enabled')}")
        p.need(not str(pl.get("http.bind")).startswith("127."), f"{name}: http.bind {pl.get('http.bind')} is unreachable from outside the container")
        if kafka:
            for b in str(pl.get("kafka.brokers")).split(","):
                p.need(b in c.advertised(kafka), f"{name}: kafka.brokers {b} is not an advertised listener of {kafka}")
        if proc and pg:
            url = str(pl.get("database.url"))
            m = re.match(r"postgres(?:ql)?://([^:@/]+)(?::[^@]*)?@([^:/]+)(?::(\d+))?/([^?]+)", url)
            pgenv = c.env(pg)
            if p.need(m, f"{name}: database.url is not a postgres:// URL with a user"):
                user, host, port, db = m.groups()
                p.need(host == pg and (port or "5432") == "5432", f"{name}: database.url points at {host}:{port}, not {pg}:5432")
                p.need(db == pgenv.get("POSTGRES_DB"),
                       f"{name}: database.url database {db} differs from {pg}'s POSTGRES_DB")
                # Least privilege (docs/SECURITY.md): not the owner, a heartbeat_writer login.
                p.need(user != pgenv.get("POSTGRES_USER"),
                       f"{name}: connects as the database owner {user}; use a heartbeat_writer login")


def healthcheck_test(svc):
    hc = svc.get("healthcheck")
    if not isinstance(hc, dict) or hc.get("disable"):
        return None
    test = hc.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    if not test or test[0] == "NONE":
        return None
    return [str(t) for t in test]


def runtime_stage(dockerfile):
    with open(dockerfile) as f:
        text = f.read()
    return re.split(r"(?im)^FROM\s", text)[-1]


def check_least_privilege(c, p):
    pg = (c.find("postgres") or [None])[0]
    if not pg:
        return p.append("no PostgreSQL service")
    init = host_path(c.services[pg], "/docker-entrypoint-initdb.d")
    sql = ""
    if p.need(init and os.path.isdir(init), f"{pg}: no /docker-entrypoint-initdb.d mounted from the repo"):
        for f in sorted(os.listdir(init)):
            with open(os.path.join(init, f)) as fh:
                sql += fh.read()
    logins = dict(re.findall(r"CREATE ROLE (\w+) LOGIN[^;]*IN ROLE (heartbeat_writer|heartbeat_reader)", sql))
    proc_user = None
    if "processor" in c.services:
        m = re.match(r"postgres(?:ql)?://([^:@/]+)", str(c.pipeline("processor").get("database.url")))
        proc_user = m and m.group(1)
        p.need(logins.get(proc_user) == "heartbeat_writer",
               f"processor: database user {proc_user} is not made a heartbeat_writer member by the initdb scripts")
    grafana = (c.find("grafana") or [None])[0]
    ds_user = None
    if grafana:
        ds_dir = host_path(c.services[grafana], "/etc/grafana/provisioning")
        for root, _, files in os.walk(ds_dir or "/nonexistent"):
            for f in files:
                if f.endswith((".yml", ".yaml")):
                    with open(os.path.join(root, f)) as fh:
                        doc = yaml.safe_load(fh) or {}
                    for ds in doc.get("datasources") or []:
                        if "postgres" in str(ds.get("type")):
                            ds_user = ds.get("user")
        p.need(logins.get(ds_user) == "heartbeat_reader",
               f"grafana: PostgreSQL datasource user {ds_user} is not a heartbeat_reader member")
    migrators = [n for n in sorted(c.one_shots) if "migrate" in as_list(c.services[n].get("command"))]
    p.need(migrators, "no one-shot service runs `migrate` (as the owner) before the processor")
    return f"processor as {proc_user}, grafana as {ds_user}, migrations by {', '.join(migrators) or '-'}"


def check_healthchecks(c, p):
    for name in c.long_running:
        test = healthcheck_test(c.services[name])
        if not p.need(test, f"{name}: no healthcheck"):
            continue
        p.need(test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, f"{name}: healthcheck test {test} is not CMD/CMD-SHELL")
    for name in ("processor", "generator"):
        if name not in c.services or not healthcheck_test(c.services[name]):
            continue
        test = healthcheck_test(c.services[name])
        port = c.pipeline(name).http_port()
        joined = " ".join(test[1:])
        p.need(re.search(rf"(127\.0\.0\.1|localhost):{port}/(readyz|healthz)", joined),
               f"{name}: healthcheck does not ask /readyz or /healthz on its http port {port}: {joined}")
        maker = builder(c, name)
        build = (c.services[maker].get("build") if maker else None) or {}
        if isinstance(build, dict):
            dockerfile = os.path.normpath(os.path.join(DEPLOY, build.get("context", "."), build.get("dockerfile", "Dockerfile")))
            if os.path.isfile(dockerfile):
                prog = test[1].split()[0] if test[0] == "CMD-SHELL" else test[1]
                p.need(re.search(rf"\b{re.escape(os.path.basename(prog))}\b", runtime_stage(dockerfile)),
                       f"{name}: healthcheck runs {prog}, which the runtime stage of {rel(dockerfile)} does not install")
    for name in sorted(c.one_shots):
        p.need(name not in c.services or not healthcheck_test(c.services[name]),
               f"{name}: a one-shot job with a healthcheck")
    return f"{len(c.long_running)} long-running services"


def check_depends_on(c, p):
    for name, svc in c.services.items():
        for target, cond in depends(svc).items():
            if not p.need(target in c.services, f"{name}: depends on unknown service {target}"):
                continue
            if cond == "service_healthy":
                p.need(healthcheck_test(c.services[target]), f"{name}: waits for {target} to be healthy, which has no healthcheck")
            for kind in ("kafka", "postgres"):
                if target in c.find(kind):
                    p.need(cond == "service_healthy", f"{name}: depends on {target} with {cond}, not service_healthy")


def waits_for(c, name, target, seen=()):
    """Does `name` start only after `target` is healthy, directly or through a one-shot job?"""
    for dep, cond in depends(c.services.get(name, {})).items():
        if dep == target and cond == "service_healthy":
            return True
        if cond == "service_completed_successfully" and dep not in seen and waits_for(c, dep, target, seen + (name,)):
            return True
    return False


def check_pipeline_waits(c, p):
    kafka = (c.find("kafka") or [None])[0]
    pg = (c.find("postgres") or [None])[0]
    for name, needs in (("processor", (kafka, pg)), ("generator", (kafka,))):
        if name not in c.services:
            continue
        for target in needs:
            if target:
                p.need(waits_for(c, name, target), f"{name}: does not wait for {target} to be healthy "
                       f"(service_healthy, or service_completed_successfully of a job that does)")


def check_restart(c, p):
    for name in c.long_running:
        svc = c.services[name]
        policy = str(svc.get("restart") or "")
        swarm = ((svc.get("deploy") or {}).get("restart_policy") or {}).get("condition")
        p.need(LONG_RUNNING_RESTART.match(policy) or swarm in ("any", "on-failure"),
               f"{name}: restart is {policy or 'unset'}")
    for name in sorted(c.one_shots):
        policy = str(c.services.get(name, {}).get("restart") or "no")
        p.need(policy == "no" or policy.startswith("on-failure"), f"{name}: a one-shot job with restart {policy}")


def check_logging(c, p):
    for name, svc in c.services.items():
        log = svc.get("logging") or {}
        driver = log.get("driver", "json-file")
        opts = log.get("options") or {}
        p.need(driver in ("json-file", "local"), f"{name}: logging driver {driver} (json-file or local rotate)")
        p.need(opts.get("max-size") and opts.get("max-file"), f"{name}: no logging options max-size and max-file")
    return "every service"


def check_volumes(c, p):
    declared = c.doc.get("volumes") or {}
    for name, svc in c.services.items():
        for kind, src, tgt, _ in mounts(svc):
            if kind == "volume" and src:
                p.need(src in declared, f"{name}: volume {src} is not declared under top-level volumes")
    done = []
    for kind in ("kafka", "postgres", "prometheus", "alertmanager", "grafana"):
        for name in c.find(kind):
            env = c.env(name)
            data = DEFAULT_DATA_DIRS[kind]
            if kind == "kafka":
                data = (c.kafka_env(name, "LOG_DIRS") or data).split(",")[0]
            elif kind == "postgres":
                data = env.get("PGDATA", data)
            elif kind == "grafana":
                data = env.get("GF_PATHS_DATA", data)
            elif kind == "prometheus":
                data = next((a.split("=", 1)[1] for a in as_list(c.services[name].get("command"))
                             if a.startswith("--storage.tsdb.path=")), data)
            elif kind == "alertmanager":
                data = command_flag(c.services[name], "--storage.path", data)
            ok = any(k == "volume" and s and under(data, t) for k, s, t, _ in mounts(c.services[name]))
            p.need(ok, f"{name}: no named volume on its data directory {data}")
            done.append(f"{name}:{data}")
    return ", ".join(done)


def check_bind_mounts(c, p):
    n = 0
    for name, svc in c.services.items():
        for kind, src, tgt, ro in mounts(svc):
            if kind != "bind":
                continue
            n += 1
            path = os.path.normpath(os.path.join(DEPLOY, expand(src, c.env_defaults)))
            p.need(os.path.exists(path), f"{name}: bind mount source {src} ({rel(path)}) does not exist")
            p.need(under(path, REPO), f"{name}: bind mount source {src} is outside the repository")
            p.need(ro, f"{name}: bind mount {src}:{tgt} is writable (mount configuration with :ro)")
    pg = (c.find("postgres") or [None])[0]
    if pg:
        svc = c.services[pg]
        initdb = host_path(svc, "/docker-entrypoint-initdb.d")
        if initdb and os.path.isdir(initdb):
            env = c.env(pg)
            for f in sorted(os.listdir(initdb)):
                with open(os.path.join(initdb, f)) as fh:
                    text = fh.read()
                needed = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", text))
                p.need(needed <= set(env), f"{pg}: {f} requires {sorted(needed - set(env))}, not in its environment")
    return f"{n} bind mounts"


def git(*args):
    return subprocess.run(["git", "-C", REPO, *args], capture_output=True, text=True)


def ignored(path):
    """Is a file git-ignored? Falls back to reading .gitignore files outside a git work tree."""
    r = git("rev-parse", "--is-inside-work-tree")
    if r.returncode == 0:
        return git("check-ignore", "-q", "--no-index", rel(path)).returncode == 0
    relpath = rel(path)
    for d in (os.path.dirname(relpath), ""):
        gi = os.path.join(REPO, d, ".gitignore")
        if os.path.exists(gi):
            sub = os.path.relpath(relpath, d or ".")
            for line in open(gi):
                pat = line.strip()
                if pat and not pat.startswith("#") and (fnmatch.fnmatch(sub, pat.lstrip("/")) or
                                                        fnmatch.fnmatch(os.path.basename(sub), pat)):
                    return True
    return False


def check_secrets(c, p):
    n = 0
    for name in c.services:
        for key, raw in environment(c.services[name]).items():
            secret = None
            if key.endswith("_FILE"):  # a path (to a docker secret: check_secret_files)
                continue
            if SECRET_NAME.search(key):
                secret = raw
            m = URL_PASSWORD.search(raw)
            if m:
                secret = m.group(1)
            if secret is None or secret == "":
                continue
            n += 1
            refs = list(interpolations(secret))
            whole = INTERP.fullmatch(secret)
            if not p.need(whole and refs, f"{name}: {key} holds a literal secret; interpolate it from deploy/.env (${{VAR:-...}})"):
                continue
            var, op, default = refs[0]
            p.need(var in c.env_example, f"{name}: {key} uses ${var}, which .env.example does not document")
            if op in (":-", "-") and var in c.env_example:
                p.need(default == c.env_example[var],
                       f"{name}: {key} falls back to a value other than .env.example's {var} (a secret in the compose file?)")
    return f"{n} secret values, all from deploy/.env"


def check_env_files(c, p):
    env_path = os.path.join(DEPLOY, ".env")
    p.need(ignored(env_path), "deploy/.env is not git-ignored")
    r = git("ls-files", "--error-unmatch", rel(env_path))
    p.need(r.returncode != 0, "deploy/.env is committed")
    example = os.path.join(DEPLOY, ".env.example")
    p.need(os.path.isfile(example), "deploy/.env.example is missing")
    p.need(not ignored(example), "deploy/.env.example is git-ignored (commit it, it documents every variable)")
    for name, svc in c.services.items():
        env_files = svc.get("env_file") or []
        for env_file in [env_files] if isinstance(env_files, str) else env_files:
            if isinstance(env_file, dict):
                env_file = env_file.get("path", "")
            path = os.path.join(DEPLOY, env_file)
            p.need(ignored(path) and git("ls-files", "--error-unmatch", rel(path)).returncode != 0,
                   f"{name}: env_file {env_file} is not git-ignored, or is committed")
    used = {}
    for text in walk_strings(c.doc):
        for var, op, default in interpolations(text):
            used.setdefault(var, set()).add((op, default))
    for var, forms in sorted(used.items()):
        p.need(var in c.env_example, f"${var} is not in .env.example")
        for op, default in forms:
            p.need(op in (":-", "-"), f"${{{var}{op}}} has no default: a fresh clone without deploy/.env gets an empty value")
            if op in (":-", "-") and var in c.env_example:
                p.need(default == c.env_example[var], f"${{{var}:-{default}}} differs from .env.example's {var}={c.env_example[var]}")
    return f"{len(used)} variables"


def check_ports(c, p):
    n = 0
    for name, svc in c.services.items():
        for port in svc.get("ports") or []:
            n += 1
            if isinstance(port, dict):
                host_ip = port.get("host_ip", "")
            else:
                parts = INTERP.sub("ADDR", str(port)).split(":")
                host_ip = str(port).split(":")[0] if len(parts) == 3 else ""
            addr = expand(host_ip, c.env_defaults)
            p.need(host_ip and addr not in ("0.0.0.0", "::"),
                   f"{name}: port {port} is published on every interface (bind it to ${{PUBLISH_ADDRESS:-127.0.0.1}})")
    return f"{n} published ports"


def check_scaling(c, p):
    if "processor" not in c.services:
        return
    svc = c.services["processor"]
    p.need("container_name" not in svc, "processor: container_name prevents --scale")
    p.need(not svc.get("ports"), "processor: a published host port prevents --scale")
    pl = c.pipeline("processor")
    p.need(pl.get("kafka.group_id"), "processor: no kafka.group_id")
    replicas = (svc.get("deploy") or {}).get("replicas", 1)
    partitions = pl.get("kafka.topics.partitions")
    p.need(str(partitions).isdigit() and int(replicas) <= int(partitions),
           f"processor: {replicas} replicas for {partitions} partitions")
    return f"group {pl.get('kafka.group_id')}, {partitions} partitions"


def check_prometheus_targets(c, p):
    prom = (c.find("prometheus") or [None])[0]
    if not prom:
        return
    path = host_path(c.services[prom], next((a.split("=", 1)[1] for a in as_list(c.services[prom].get("command"))
                                              if a.startswith("--config.file=")), "/etc/prometheus/prometheus.yml"))
    if not path or not os.path.isfile(path):
        p.append("no prometheus config to read")
        return
    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    scraped = {}
    for job in doc.get("scrape_configs") or []:
        for sd in job.get("dns_sd_configs") or []:
            for host in sd.get("names") or []:
                scraped[host] = str(sd.get("port"))
        for st in job.get("static_configs") or []:
            for target in st.get("targets") or []:
                host, _, port = str(target).rpartition(":")
                scraped[host] = port
    for host in scraped:
        p.need(host in c.services or host in ("localhost", "127.0.0.1"), f"{rel(path)} scrapes {host}, not a compose service")
    for name in ("processor", "generator"):
        if name in c.services:
            port = c.pipeline(name).http_port()
            p.need(scraped.get(name) == port, f"{rel(path)} scrapes {name} on port {scraped.get(name)}, its http.bind port is {port}")
    return ", ".join(f"{h}:{pt}" for h, pt in sorted(scraped.items()))


# ----------------------------------------------------------------------------------------------
# the retention job, run for real under /bin/sh with stand-ins for psql and sleep
# ----------------------------------------------------------------------------------------------
RETENTION_FUNCTION = "heartbeat_drop_expired_partitions"
# psql: logs its arguments and standard input, then answers like the real one (a dropped day, or
# an error and the exit code it is told to fail with).
STUB_PSQL = """#!/bin/sh
input=$([ -t 0 ] || cat)
{ printf 'args:'; printf ' %s' "$@"; printf '\\n'; printf 'password: %s\\n' "${PGPASSWORD:-}"
  [ -z "$input" ] || printf '%s\\n' "$input" | sed 's/^/stdin: /'; } >> "$STUB_DIR/psql.calls"
if [ "${STUB_PSQL_EXIT:-0}" != 0 ]; then
    echo 'psql: error: connection to server at "postgres" failed: stand-in failure' >&2
    exit "$STUB_PSQL_EXIT"
fi
case "$input" in
  *heartbeat_expire_rows*)
    # 7 rows deleted in the first round, none in the next.
    if [ -e "$STUB_DIR/expired" ]; then echo 0; else touch "$STUB_DIR/expired"; echo 7; fi ;;
  *) echo readings_20200101 ;;
esac
"""
# sleep: notes how long the job would wait, then ends the job (one pass of its loop is enough).
STUB_SLEEP = """#!/bin/sh
echo "$@" >> "$STUB_DIR/sleep.calls"
kill -TERM "$PPID"
"""


def raw_list(value):
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def retention_jobs(c):
    return [n for n, s in c.services.items()
            if RETENTION_FUNCTION in "\n".join(raw_list(s.get("entrypoint")) + raw_list(s.get("command")))]


class RetentionRun:
    """One pass of the retention job's script, and then its health check, in a scratch directory."""

    def __init__(self, c, name, days, psql_exit=0, status_age_s=None):
        svc = c.services[name]
        self.dir = tempfile.mkdtemp(prefix="check-compose-retention-")
        bindir = os.path.join(self.dir, "bin")
        os.mkdir(bindir)
        for prog, text in (("psql", STUB_PSQL), ("sleep", STUB_SLEEP)):
            path = os.path.join(bindir, prog)
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, 0o755)
        env = {k: v for k, v in c.env(name).items()}
        # Its docker secrets: a stand-in file each, "stand-in <secret name>", where the env names them.
        self.secrets = {}
        for target, secret in secret_targets(svc).items():
            path = os.path.join(self.dir, "secret-" + re.sub(r"\W", "_", secret))
            with open(path, "w") as f:
                f.write(f"stand-in {secret}\n")
            self.secrets[target] = path
        env = {k: self.secrets.get(v, v) for k, v in env.items()}
        env.update(RETENTION_DAYS=days, RETENTION_STATUS_FILE=os.path.join(self.dir, "status"),
                   STUB_DIR=self.dir, STUB_PSQL_EXIT=str(psql_exit),
                   PATH=bindir + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"))
        self.env = env
        argv = [expand(a, c.env_defaults) for a in raw_list(svc.get("entrypoint")) + raw_list(svc.get("command"))]
        if status_age_s is None:
            r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
            self.code, self.out, self.err = r.returncode, r.stdout, r.stderr
        else:  # only the health check, over a status file written status_age_s ago
            with open(env["RETENTION_STATUS_FILE"], "w") as f:
                f.write("ok\n")
            t = os.path.getmtime(env["RETENTION_STATUS_FILE"]) - status_age_s
            os.utime(env["RETENTION_STATUS_FILE"], (t, t))
            self.code, self.out, self.err = None, "", ""
        self.psql = self._read("psql.calls")
        self.slept = self._read("sleep.calls").split()
        test = healthcheck_test(svc) or ["NONE"]
        if test[0] == "CMD-SHELL":
            hc = ["/bin/sh", "-c", expand(" ".join(test[1:]), c.env_defaults)]
        else:
            hc = [expand(a, c.env_defaults) for a in test[1:]]
        self.healthy = bool(hc) and subprocess.run(hc, env=env, capture_output=True, timeout=10).returncode == 0
        shutil.rmtree(self.dir, ignore_errors=True)

    def _read(self, name):
        path = os.path.join(self.dir, name)
        return open(path).read() if os.path.exists(path) else ""

    def looped(self):
        """Did the job end its pass by sleeping (killed by the sleep stand-in), rather than exit?"""
        return bool(self.slept) and self.code == -15

    def describe(self):
        return (f"exit {self.code}, slept {self.slept or 'never'}, healthy={self.healthy}\n"
                f"psql calls: {self.psql.strip() or 'none'}\nstdout: {self.out.strip()}\nstderr: {self.err.strip()}")


def check_retention(c, p):
    jobs = retention_jobs(c)
    if not p.need(len(jobs) == 1, f"expected one service that runs {RETENTION_FUNCTION}, found {jobs or 'none'}"):
        return
    name = jobs[0]
    svc = c.services[name]
    env = c.env(name)
    p.need("RETENTION_DAYS" in env, f"{name}: no RETENTION_DAYS in its environment")
    p.need("RETENTION_STATUS_FILE" in env, f"{name}: no RETENTION_STATUS_FILE (the status its health check reads)")
    argv = raw_list(svc.get("entrypoint")) + raw_list(svc.get("command"))
    if not p.need(argv[:2] == ["/bin/sh", "-c"] and len(argv) == 3,
                  f"{name}: not a /bin/sh -c script (entrypoint + command), which this check runs"):
        return
    if not p.need(os.access("/bin/sh", os.X_OK), "no /bin/sh here to run the retention script"):
        return

    # 0 keeps everything (SPEC section 5, "compose included"): no call at all, and healthy.
    r = RetentionRun(c, name, "0")
    p.need(not r.psql, f"{name}: RETENTION_DAYS=0 still calls psql (0 keeps everything):\n{r.describe()}")
    p.need(r.looped() and r.healthy, f"{name}: RETENTION_DAYS=0 is not a healthy pass that waits for the next:\n{r.describe()}")

    # A number of days: one call that psql can run, what it dropped logged, healthy.
    r = RetentionRun(c, name, "30")
    p.need(RETENTION_FUNCTION in r.psql and "30" in r.psql, f"{name}: RETENTION_DAYS=30 does not call {RETENTION_FUNCTION} with 30:\n{r.describe()}")
    # psql substitutes :name in what it reads, never in a -c command (the server gets ":days").
    args = r.psql.split("\n", 1)[0]
    variables = re.findall(r"(?:-v|--set|--variable)[ =]([A-Za-z_][A-Za-z0-9_]*)=", args)
    command = re.search(r" -c (.*)", args)
    in_command = [v for v in variables if command and re.search(rf":['\"]?{re.escape(v)}\b", command.group(1))]
    p.need(not in_command, f"{name}: psql gets :{', :'.join(in_command)} in a -c command, which it does not "
                           f"substitute (a syntax error at every run): {args}")
    p.need("readings_20200101" in r.out, f"{name}: a successful run does not log what it dropped:\n{r.describe()}")
    # The other tables (SPEC section 5: retention bounds every table): rounds of
    # heartbeat_expire_rows until one deletes nothing, and the total logged.
    rounds = r.psql.count("heartbeat_expire_rows")
    p.need(rounds == 2 and "deleted: 7" in r.out,
           f"{name}: a run does not delete the other tables' expired rows round after round "
           f"({rounds} rounds, two expected) and log how many:\n{r.describe()}")
    p.need(r.looped() and r.healthy, f"{name}: a successful run is not healthy, or does not wait for the next:\n{r.describe()}")
    # It logs in with the owner's password as the database got it: the value, or the secret's content.
    pg = (c.find("postgres") or [None])[0]
    if pg:
        owner = password_source(c.env(pg), c.services[pg], "POSTGRES_PASSWORD")
        want = owner and (f"stand-in {owner[1]}" if owner[0] == "secret" else owner[1])
        got = re.findall(r"(?m)^password: (.*)$", r.psql)
        p.need(want and got and set(got) == {want}, f"{name}: psql got the password {got[0] if got else '(none)'!r}, not the owner's "
                                       f"({'secret ' + owner[1] if owner and owner[0] == 'secret' else 'POSTGRES_PASSWORD'}):\n{r.describe()}")

    # A failed run: the error logged, unhealthy, tried again (not hidden by `|| true`).
    r = RetentionRun(c, name, "30", psql_exit=2)
    p.need("stand-in failure" in r.err, f"{name}: psql's error is not in the job's log:\n{r.describe()}")
    p.need(not r.healthy, f"{name}: healthy after a failed run:\n{r.describe()}")
    p.need(r.looped(), f"{name}: does not try again after a failed run:\n{r.describe()}")

    # Not a number of days: refused loudly, nothing dropped.
    for bad in ("-1", "thirty", ""):
        r = RetentionRun(c, name, bad)
        p.need(not r.psql and r.code not in (0, None, -15) and r.err.strip() and not r.healthy,
               f"{name}: RETENTION_DAYS={bad!r} is not refused with an error and a non-zero exit:\n{r.describe()}")

    # A job that stopped running (hung, or its loop died) goes unhealthy too.
    r = RetentionRun(c, name, "30", status_age_s=3 * 3600)
    p.need(not r.healthy, f"{name}: still healthy three hours after its last successful run")
    return f"{name}: 0 keeps everything, failures unhealthy, the owner's password"


# ----------------------------------------------------------------------------------------------
# images pinned, nothing unmaintained
# ----------------------------------------------------------------------------------------------
# Images whose project stopped, and what took over.
UNMAINTAINED = {re.compile(r"(^|/)provectuslabs/kafka-ui(:|@|$)"): "kafbat/kafka-ui"}
# A version of at least major.minor in the tag (15.18, v2.54.1, 1.95-bookworm, 12.13-slim), or a digest.
PINNED_TAG = re.compile(r"^v?\d+\.\d+")


def pinned(image):
    if "@sha256:" in image:
        return True
    name = image.rpartition("/")[2]
    return ":" in name and bool(PINNED_TAG.match(name.rpartition(":")[2]))


def check_images(c, p):
    """A floating tag (postgres:15, rust:1-bookworm) changes under a rebuild or a fresh pull: the
    stack that starts is not the one that was tested."""
    n = 0
    for name, svc in c.services.items():
        if svc.get("build") or builder(c, name):
            continue  # built here, from pinned bases (below)
        image = c.image(name)
        n += 1
        p.need(pinned(image), f"{name}: image {image} is not pinned to a version (at least major.minor) or a digest")
        for pattern, successor in UNMAINTAINED.items():
            p.need(not pattern.search(image), f"{name}: {image} is unmaintained; {successor} is its successor")
    dockerfiles = set()
    for name, svc in c.services.items():
        build = svc.get("build")
        if isinstance(build, str):
            build = {"context": build}
        if isinstance(build, dict):
            ctx = os.path.join(DEPLOY, build.get("context", "."))
            dockerfiles.add(os.path.normpath(os.path.join(ctx, build.get("dockerfile", "Dockerfile"))))
    for path in sorted(dockerfiles):
        if not os.path.isfile(path):
            continue
        text = open(path).read()
        args = dict(re.findall(r"(?m)^ARG\s+(\w+)=(\S+)", text))
        for base in re.findall(r"(?im)^FROM\s+(\S+)", text):
            m = re.fullmatch(r"\$\{?(\w+)\}?", base)
            image = args.get(m.group(1), base) if m else base
            n += 1
            p.need(pinned(image), f"{rel(path)}: FROM {image} is not pinned to a version (at least major.minor) or a digest")
    return f"{n} images"


# ----------------------------------------------------------------------------------------------
# secrets read from files, and the passwords the logins send
# ----------------------------------------------------------------------------------------------
def secret_targets(svc):
    """{container path: secret name} of a service's secrets (/run/secrets/<target>)."""
    out = {}
    for s in svc.get("secrets") or []:
        if isinstance(s, dict):
            target = s.get("target") or s.get("source")
            out[target if target.startswith("/") else f"/run/secrets/{target}"] = s.get("source")
        else:
            out[f"/run/secrets/{s}"] = str(s)
    return out


def check_secret_files(c, p):
    """VAR and VAR_FILE: the postgres image, postgres/initdb/10-roles.sh and the pipeline (a key and
    its *_file) each refuse both non-empty; a file under /run/secrets exists only if the service
    mounts that secret."""
    declared = c.doc.get("secrets") or {}
    n = 0
    for name, svc in c.services.items():
        env = c.env(name)
        targets = secret_targets(svc)
        for src in targets.values():
            p.need(src in declared, f"{name}: secret {src} is not declared under top-level secrets")
        for key, value in env.items():
            # A *_FILE that replaces a variable (the stem is set, or it is a secret), not any path.
            if not key.endswith("_FILE") or not value or not (key[:-len("_FILE")] in env or value.startswith("/run/secrets/")):
                continue
            n += 1
            p.need(not env.get(key[:-len("_FILE")]),
                   f"{name}: both {key[:-len('_FILE')]} and {key} are non-empty (set the first to \"\" where the file replaces it)")
            if value.startswith("/run/secrets/"):
                p.need(value in targets, f"{name}: {key} reads {value}, but the service mounts no such secret "
                                         f"(its secrets: {sorted(targets.values()) or 'none'})")
    return f"{n} *_FILE variables"


def password_source(env, svc, var):
    """Where a password comes from: ("secret", name) for VAR_FILE=/run/secrets/..., ("value", v), or None."""
    file = env.get(var + "_FILE", "")
    if file:
        return ("secret", secret_targets(svc).get(file, file))
    return ("value", env[var]) if env.get(var) else None


def check_logins(c, p):
    """Each PostgreSQL login sends the password the database was initialised with: the owner's
    (POSTGRES_PASSWORD[_FILE]) by migrate and the retention job, heartbeat_processor's
    (PROCESSOR_DB_PASSWORD[_FILE], 10-roles.sh) by the processor, grafana_reader's by Grafana."""
    pg = (c.find("postgres") or [None])[0]
    if not pg:
        return
    pgenv, pgsvc = c.env(pg), c.services[pg]
    owner = password_source(pgenv, pgsvc, "POSTGRES_PASSWORD")
    logins = {"owner": owner, "heartbeat_processor": password_source(pgenv, pgsvc, "PROCESSOR_DB_PASSWORD"),
              "grafana_reader": password_source(pgenv, pgsvc, "GRAFANA_DB_PASSWORD")}
    sent = {}
    for name in ("migrate", "processor"):
        if name not in c.services:
            continue
        pl = c.pipeline(name)
        m = re.match(r"postgres(?:ql)?://([^:@/]+)(?::([^@]*))?@", str(pl.get("database.url")))
        user = m and m.group(1)
        login = "owner" if user == pgenv.get("POSTGRES_USER") else user
        file = str(pl.get("database.password_file") or "")
        if file:
            src = ("secret", secret_targets(c.services[name]).get(file, file))
        elif pl.get("database.password"):
            src = ("value", str(pl.get("database.password")))
        else:
            src = ("value", m.group(2)) if m and m.group(2) else None
        sent[name] = (login, src)
    for name in retention_jobs(c):
        env = c.env(name)
        login = "owner" if env.get("PGUSER") == pgenv.get("POSTGRES_USER") else env.get("PGUSER")
        sent[name] = (login, password_source(env, c.services[name], "PGPASSWORD"))
    gf = (c.find("grafana") or [None])[0]
    if gf:
        for ds in grafana_postgres_datasources(c, gf):
            pw = str((ds.get("secureJsonData") or {}).get("password") or "")
            sent[gf] = (ds.get("user"), ("value", expand(pw, c.env(gf))) if pw else None)
    def said(src):
        return "no password" if src is None else f"secret {src[1]}" if src[0] == "secret" else "a value"
    for name, (login, src) in sent.items():
        if login not in logins:
            continue
        p.need(src is not None and src == logins[login],
               f"{name}: logs in as {login} with {said(src)}, but {pg} gave that login "
               f"{said(logins[login]) if src is None or logins[login] is None or src[0] != logins[login][0] else 'another value'}")
    return ", ".join(f"{n} as {l}" for n, (l, _) in sent.items())


# ----------------------------------------------------------------------------------------------
# TLS to PostgreSQL where its pg_hba.conf takes nothing else from the network
# ----------------------------------------------------------------------------------------------
TLS_MODES = ("require", "verify-ca", "verify-full")


def grafana_postgres_datasources(c, gf):
    prov = host_path(c.services[gf], c.env(gf).get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning"))
    out = []
    for root, _, files in os.walk(os.path.join(prov, "datasources") if prov else "/nonexistent"):
        for f in sorted(files):
            if f.endswith((".yml", ".yaml")):
                with open(os.path.join(root, f)) as fh:
                    out += [ds for ds in (yaml.safe_load(fh) or {}).get("datasources") or []
                            if "postgres" in str(ds.get("type"))]
    return out


def hba_needs_tls(c, pg):
    """Does the server's pg_hba.conf (hba_file=, mounted from the repo) take only hostssl from
    beyond the loopback? None when the image's own pg_hba.conf is used."""
    args = as_list(c.services[pg].get("command"))
    hba = next((a.split("=", 1)[1] for a in args if a.startswith("hba_file=")), None)
    path = hba and host_path(c.services[pg], hba)
    if not path or not os.path.isfile(path):
        return None
    network = []
    for line in open(path):
        fields = line.split("#", 1)[0].split()
        if fields and fields[0] in ("host", "hostnossl", "hostssl") and len(fields) >= 4 \
                and not fields[3].startswith(("127.", "::1")):
            network.append(fields[0])
    return bool(network) and all(t == "hostssl" for t in network)


def check_postgres_tls(c, p):
    """Under docker-compose.secure.yml pg_hba.conf takes only TLS from the network: a client without
    it (Grafana's sslmode: disable) is refused at every query."""
    pg = (c.find("postgres") or [None])[0]
    if not pg:
        return
    if not hba_needs_tls(c, pg):
        return "the server takes plain connections too"
    modes = {}
    for name in ("migrate", "processor"):
        if name in c.services:
            pl = c.pipeline(name)
            m = re.search(r"[?&]sslmode=([\w-]+)", str(pl.get("database.url")))
            modes[name] = str(pl.get("database.sslmode") or (m and m.group(1)) or "prefer")
    for name in retention_jobs(c):
        modes[name] = c.env(name).get("PGSSLMODE") or "prefer"
    gf = (c.find("grafana") or [None])[0]
    if gf:
        for ds in grafana_postgres_datasources(c, gf):
            modes[gf] = expand(str((ds.get("jsonData") or {}).get("sslmode") or "disable"), c.env(gf))
            if modes[gf] in ("verify-ca", "verify-full"):
                root = expand(str((ds.get("jsonData") or {}).get("sslRootCertFile") or ""), c.env(gf))
                p.need(root in secret_targets(c.services[gf]) or host_path(c.services[gf], root),
                       f"{gf}: datasource sslRootCertFile {root or '(empty)'} is neither a secret nor a mounted file")
    for name, mode in modes.items():
        p.need(mode in TLS_MODES, f"{name}: sslmode {mode}, but {pg}'s pg_hba.conf takes only TLS from the network "
                                  f"({', '.join(TLS_MODES)})")
    return ", ".join(f"{n} {m}" for n, m in modes.items())


# ----------------------------------------------------------------------------------------------
# what the published ports let anyone do
# ----------------------------------------------------------------------------------------------
def check_exposure(c, p):
    """With PUBLISH_ADDRESS=0.0.0.0 every published port is open to the network: nothing there may
    change state without a login by default."""
    for name in c.find("prometheus"):
        for flag in ("--web.enable-lifecycle", "--web.enable-admin-api"):
            p.need(flag not in as_list(c.services[name].get("command")),
                   f"{name}: {flag} lets anyone who reaches it shut it down or delete data (reload with SIGHUP instead)")
    for name in c.find("grafana"):
        raw = environment(c.services[name]).get("GF_AUTH_ANONYMOUS_ENABLED", "false")
        p.need(expand(raw, c.env_defaults).lower() != "true",
               f"{name}: anonymous viewers on by default (GF_AUTH_ANONYMOUS_ENABLED={raw}); make it opt-in from .env")
    for name in c.find("kafka-ui"):
        p.need(c.env(name).get("KAFKA_CLUSTERS_0_READONLY", "").lower() == "true",
               f"{name}: not read-only (KAFKA_CLUSTERS_0_READONLY): anyone who reaches it may delete topics")


CHECKS = [
    ("compose file parses, no obsolete `version`", check_parse),
    ("compose file and overlays valid against the compose-spec JSON schema", check_schema),
    ("Apache Kafka in KRaft mode", check_kafka),
    ("one-shot topic creator for the pipeline's topics", check_kafka_init),
    ("PostgreSQL", check_postgres),
    ("Grafana with datasources and dashboards provisioned from repo files", check_grafana),
    ("Prometheus with its config and rules mounted from repo files", check_prometheus),
    ("Alertmanager, pinned, config mounted from a repo file; Prometheus and the processor send to it", check_alertmanager),
    ("a Kafka UI on the broker", check_kafka_ui),
    ("generator and processor built from the repo's Dockerfile", check_pipeline_build),
    ("generator and processor: one role each, known config keys, broker and database are compose services", check_pipeline_roles),
    ("least privilege: processor a heartbeat_writer login, Grafana a heartbeat_reader login, a migrate job", check_least_privilege),
    ("every image pinned to a version, none unmaintained, the Dockerfile's bases too", check_images),
    ("healthcheck on every long-running service, none on one-shot jobs", check_healthchecks),
    ("depends_on: known services, service_healthy on Kafka and PostgreSQL", check_depends_on),
    ("processor waits for healthy Kafka and PostgreSQL, generator for Kafka", check_pipeline_waits),
    ("restart policy on every long-running service, none that repeats a one-shot job", check_restart),
    ("log rotation (max-size, max-file)", check_logging),
    ("named volumes on the data directories of stateful services", check_volumes),
    ("configuration bind-mounted read-only from repo files that exist", check_bind_mounts),
    ("no literal secret in the compose file", check_secrets),
    ("no variable set together with its _FILE, every /run/secrets file a mounted secret", check_secret_files),
    ("each PostgreSQL login sends the password the database was initialised with", check_logins),
    ("PostgreSQL clients use TLS where pg_hba.conf takes only TLS from the network", check_postgres_tls),
    ("nothing published is open without a login by default: Prometheus lifecycle, Grafana anonymous, Kafka UI writes", check_exposure),
    ("deploy/.env and env_files git-ignored and untracked, .env.example documents every variable", check_env_files),
    ("published ports bound to ${PUBLISH_ADDRESS}, not every interface", check_ports),
    ("processor scales out in one consumer group", check_scaling),
    ("Prometheus scrapes the processor and generator on their HTTP port", check_prometheus_targets),
    ("retention job: RETENTION_DAYS=0 keeps everything, a failed run is logged and unhealthy", check_retention),
]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(DEPLOY, "docker-compose.yml")
    try:
        compose = Compose(path)
    except Exception as e:  # unreadable or not YAML: nothing else can be checked
        print(f"FAIL  {os.path.basename(path)} parses")
        print("      " + str(e).replace("\n", "\n      "))
        print("0 passed, 1 failed")
        return 1
    # The file alone, then each overlay merged onto it (the stack `-f base -f overlay` starts).
    runs = [(compose, "")]
    for overlay in overlays(compose):
        label = os.path.basename(overlay)
        try:
            with open(overlay) as f:
                merged = merge_docs(compose.doc, yaml.safe_load(f) or {})
            runs.append((Compose(path, doc=merged, label=label), f"[+{label}] "))
        except Exception as e:
            print(f"FAIL  [+{label}] merges onto {os.path.basename(path)}")
            print("      " + str(e).replace("\n", "\n      "))
            runs.append((None, label))
    passed = failed = 0
    for c, prefix in runs:
        if c is None:
            failed += 1
            continue
        for title, check in CHECKS:
            problems = Problems()
            try:
                detail = check(c, problems)
            except Exception as e:  # a check that crashes is a failed check, the rest still run
                problems.append(f"check crashed: {type(e).__name__}: {e}")
                detail = None
            if problems:
                failed += 1
                print(f"FAIL  {prefix}{title}")
                for prob in dict.fromkeys(problems):
                    print("      " + str(prob).replace("\n", "\n      "))
            else:
                passed += 1
                print(f"ok    {prefix}{title}" + (f"  ({detail})" if detail else ""))
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
