//! A real Alertmanager on loopback and the webhook receiver it notifies, so a test sees what a
//! person would be sent (SPEC section 8).
//!
//! [`WebhookRecorder`] is a small HTTP/1.1 server on a free loopback port. It answers every
//! request 200 and keeps each POST body (Alertmanager's webhook payload, version 4) with the time
//! it arrived. It reads `Content-Length` and chunked bodies and keeps connections alive, since
//! Alertmanager reuses them.
//!
//! [`Alertmanager`] runs Debian's `prometheus-alertmanager` as a child: a single node
//! (`--cluster.listen-address=`), a data directory of its own, and one route to a webhook URL.
//! The route flushes a new group at once (`group_wait: 0s`), a changed group after
//! [`GROUP_INTERVAL`], and repeats an unchanged one only after an hour, so every notification
//! a test sees was caused by something that changed. Its log is kept in memory and printed when
//! a test fails or with `TEST_LOG=1`.
//!
//! What Alertmanager 0.25 does with what it is sent (tests/it/alertmanager_parts.rs shows each):
//! - A group whose alerts are all resolved at its first flush is never notified. That flush
//!   comes `group_wait` after the first alert's `startsAt`, or at once if that has passed: with
//!   `group_wait: 0s`, within milliseconds of the POST.
//! - A group already notified is flushed again only each `group_interval`: an alert that fires
//!   and resolves in between is notified resolved, never firing.
//! - The webhook's firing alerts carry `endsAt` `0001-01-01T00:00:00Z`, whatever was sent.
//! - Stopped by SIGTERM, it keeps its silences and notification log in its data directory;
//!   after SIGKILL it has neither. It never keeps alerts: senders send them again.
//!
//! [`http_post`] and [`http_request`] are the client side, for the Alertmanager API.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{log_enabled, wait_for};

pub const ALERTMANAGER_BIN: &str = "/usr/bin/prometheus-alertmanager";
pub const AMTOOL_BIN: &str = "/usr/bin/amtool";

/// What to do when either binary is missing.
const INSTALL_HINT: &str =
    "scripts/build-deps.sh --test installs it (Debian package prometheus-alertmanager)";

/// How long a changed group waits before it is notified again: short, so a resolution reaches
/// the webhook about a second after Alertmanager has it, and above zero, which Alertmanager
/// rejects.
const GROUP_INTERVAL: Duration = Duration::from_secs(1);

/// Far longer than any test, so an unchanged group is never notified twice.
const REPEAT_INTERVAL: &str = "1h";

/// Alertmanager starts in well under a second; this leaves room for a loaded machine.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// How long a request to Alertmanager may take before the test gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One alert of one webhook notification.
#[derive(Clone, Debug)]
pub struct NotifiedAlert {
    /// When the notification carrying it arrived.
    pub received: Instant,
    /// `firing` or `resolved`.
    pub status: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    pub ends_at: String,
    pub fingerprint: String,
}

impl NotifiedAlert {
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }

    pub fn is_firing(&self) -> bool {
        self.status == "firing"
    }

    pub fn is_resolved(&self) -> bool {
        self.status == "resolved"
    }
}

/// One POST the webhook got.
#[derive(Clone, Debug)]
pub struct Notification {
    pub received: Instant,
    /// The group's status: `firing` while any of its alerts fires, else `resolved`.
    pub status: String,
    pub receiver: String,
    pub group_labels: BTreeMap<String, String>,
    pub alerts: Vec<NotifiedAlert>,
    /// The whole payload (or the body as a JSON string when it was not JSON).
    pub body: Value,
}

impl Notification {
    fn parse(body: &[u8], received: Instant) -> Notification {
        let body = serde_json::from_slice::<Value>(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
        let alerts = body["alerts"]
            .as_array()
            .map(|alerts| {
                alerts
                    .iter()
                    .map(|a| NotifiedAlert {
                        received,
                        status: text(&a["status"]),
                        labels: string_map(&a["labels"]),
                        annotations: string_map(&a["annotations"]),
                        starts_at: text(&a["startsAt"]),
                        ends_at: text(&a["endsAt"]),
                        fingerprint: text(&a["fingerprint"]),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Notification {
            received,
            status: text(&body["status"]),
            receiver: text(&body["receiver"]),
            group_labels: string_map(&body["groupLabels"]),
            alerts,
            body,
        }
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), text(v))).collect())
        .unwrap_or_default()
}

/// A webhook receiver on 127.0.0.1 that records every notification; stops when dropped.
pub struct WebhookRecorder {
    addr: SocketAddr,
    notifications: Arc<Mutex<Vec<Notification>>>,
    stopping: Arc<AtomicBool>,
}

impl WebhookRecorder {
    pub fn start() -> WebhookRecorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the webhook recorder");
        let addr = listener.local_addr().expect("the recorder's address");
        let notifications = Arc::new(Mutex::new(Vec::new()));
        let stopping = Arc::new(AtomicBool::new(false));
        let (sink, stop) = (notifications.clone(), stopping.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (sink, stop) = (sink.clone(), stop.clone());
                // One thread per connection: Alertmanager opens one per group being notified
                // at the same time and keeps them alive between notifications.
                thread::spawn(move || serve(stream, &sink, &stop));
            }
        });
        WebhookRecorder {
            addr,
            notifications,
            stopping,
        }
    }

    /// The URL to give Alertmanager's `webhook_configs`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn notifications(&self) -> Vec<Notification> {
        self.notifications.lock().unwrap().clone()
    }

    /// Every alert of every notification, in the order they arrived: an alert notified twice
    /// (firing, then resolved) is here twice.
    pub fn alerts(&self) -> Vec<NotifiedAlert> {
        self.notifications()
            .into_iter()
            .flat_map(|n| n.alerts)
            .collect()
    }

    /// The notified alerts of `customer_id`.
    pub fn alerts_for(&self, customer_id: &str) -> Vec<NotifiedAlert> {
        self.alerts()
            .into_iter()
            .filter(|a| a.label("customer_id") == customer_id)
            .collect()
    }

    /// The alerts of `customer_id` notified firing.
    pub fn firing_for(&self, customer_id: &str) -> Vec<NotifiedAlert> {
        self.alerts_for(customer_id)
            .into_iter()
            .filter(NotifiedAlert::is_firing)
            .collect()
    }

    /// The alerts of `customer_id` notified resolved.
    pub fn resolved_for(&self, customer_id: &str) -> Vec<NotifiedAlert> {
        self.alerts_for(customer_id)
            .into_iter()
            .filter(NotifiedAlert::is_resolved)
            .collect()
    }

    /// Polls until `pred` holds for the notified alerts so far and returns them, or panics with
    /// `what` after `timeout`.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&[NotifiedAlert]) -> bool,
    ) -> Vec<NotifiedAlert> {
        wait_for(what, timeout, || {
            let alerts = self.alerts();
            pred(&alerts).then_some(alerts)
        })
    }

    /// Waits for the first alert of `customer_id` notified with `status` (`firing` or
    /// `resolved`) and returns it.
    pub fn wait_for_status(
        &self,
        customer_id: &str,
        status: &str,
        timeout: Duration,
    ) -> NotifiedAlert {
        let what = format!("{customer_id} notified {status}");
        wait_for(&what, timeout, || {
            self.alerts_for(customer_id)
                .into_iter()
                .find(|a| a.status == status)
        })
    }

    /// Watches for `window` that no notified alert matches `pred`; panics with `what` and the
    /// alert as soon as one does. For a negative, after a positive that arrived later has shown
    /// that the notifications in question had their chance.
    pub fn assert_none_within(
        &self,
        what: &str,
        window: Duration,
        mut pred: impl FnMut(&NotifiedAlert) -> bool,
    ) {
        let deadline = Instant::now() + window;
        loop {
            if let Some(a) = self.alerts().into_iter().find(|a| pred(a)) {
                panic!("{what}, but the webhook got {a:#?}");
            }
            if Instant::now() >= deadline {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn dump(&self) {
        eprintln!("--- webhook notifications ---");
        for n in self.notifications() {
            eprintln!("{}", n.body);
        }
    }
}

impl Drop for WebhookRecorder {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if thread::panicking() {
            self.dump();
        }
    }
}

/// Answers each request on one connection until the client closes it.
fn serve(stream: TcpStream, sink: &Mutex<Vec<Notification>>, stopping: &AtomicBool) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Ok(Some(request)) = read_message(&mut reader, false) {
        let received = Instant::now();
        if request.start_line.starts_with("POST ") {
            let n = Notification::parse(&request.body, received);
            if log_enabled() {
                eprintln!("[webhook] {}", n.body);
            }
            sink.lock().unwrap().push(n);
        }
        let close = stopping.load(Ordering::SeqCst) || !request.keep_alive();
        let connection = if close { "Connection: close\r\n" } else { "" };
        let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n{connection}\r\n");
        if writer.write_all(answer.as_bytes()).is_err() || close {
            return;
        }
    }
}

/// One HTTP/1.1 request or response.
struct Message {
    start_line: String,
    /// Names in lower case.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn keep_alive(&self) -> bool {
        let close = self
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        !close && !self.start_line.ends_with("HTTP/1.0")
    }
}

/// Reads one message, or `None` at a clean end of the stream. A body is delimited by chunked
/// encoding or `Content-Length`; without either it is empty in a request and runs to the end
/// of the stream in a response (`body_to_eof`).
fn read_message(r: &mut impl BufRead, body_to_eof: bool) -> io::Result<Option<Message>> {
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let start_line = line.trim_end().to_owned();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let mut message = Message {
        start_line,
        headers,
        body: Vec::new(),
    };
    let chunked = message
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        message.body = read_chunked(r)?;
    } else if let Some(length) = message.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad content-length"))?;
        message.body = vec![0; length];
        r.read_exact(&mut message.body)?;
    } else if body_to_eof {
        r.read_to_end(&mut message.body)?;
    }
    Ok(Some(message))
}

fn read_chunked(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            // Trailers, then the empty line that ends the body.
            loop {
                line.clear();
                if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        line.clear();
        r.read_line(&mut line)?;
    }
}

/// One request to `url` (`http://host:port/path`), one connection: (status, body).
pub fn http_request(method: &str, url: &str, body: Option<&str>) -> io::Result<(u16, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "only http:// URLs"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        request.push_str("\r\n");
    }
    (&stream).write_all(request.as_bytes())?;
    let response = read_message(&mut BufReader::new(&stream), true)?
        .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
    let status = response
        .start_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, String::from_utf8_lossy(&response.body).into_owned()))
}

/// POSTs the JSON `body` to `url`: (status, body). Panics when the server cannot be reached.
pub fn http_post(url: &str, body: &str) -> (u16, String) {
    http_request("POST", url, Some(body)).unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

/// An alert as Alertmanager holds it (`GET /api/v2/alerts`).
#[derive(Clone, Debug)]
pub struct HeldAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    pub ends_at: String,
    pub fingerprint: String,
    /// `status.state`: `active`, `suppressed` (silenced or inhibited) or `unprocessed`.
    pub state: String,
    pub silenced_by: Vec<String>,
}

impl HeldAlert {
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

/// How the route groups and times notifications; [`Default`] is every alert in a group of its
/// own, flushed at once.
#[derive(Clone, Debug)]
pub struct Routing {
    /// Label names, or `["..."]` for all of them.
    pub group_by: Vec<String>,
    pub group_wait: Duration,
    pub group_interval: Duration,
}

impl Default for Routing {
    fn default() -> Routing {
        Routing {
            group_by: vec!["...".to_owned()],
            group_wait: Duration::ZERO,
            group_interval: GROUP_INTERVAL,
        }
    }
}

/// A single-node Alertmanager of a test's own, on a free loopback port, routing every alert to
/// one webhook; killed when dropped.
pub struct Alertmanager {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    config: PathBuf,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Alertmanager {
    /// Starts one that notifies `webhook_url` with the default [`Routing`].
    pub fn start(webhook_url: &str) -> Alertmanager {
        Self::start_with(webhook_url, &Routing::default())
    }

    pub fn start_with(webhook_url: &str, routing: &Routing) -> Alertmanager {
        assert!(
            std::path::Path::new(ALERTMANAGER_BIN).exists(),
            "{ALERTMANAGER_BIN} is missing: {INSTALL_HINT}"
        );
        let dir = tempfile::Builder::new()
            .prefix("hb_alertmanager")
            .tempdir()
            .expect("a data directory for alertmanager");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, config_text(webhook_url, routing)).expect("write its config");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut am = Alertmanager {
            child: None,
            port,
            dir,
            config,
            lines: Arc::new(Mutex::new(Vec::new())),
        };
        am.start_again();
        am
    }

    /// Starts the process again after [`stop`](Self::stop) or [`kill`](Self::kill): same port,
    /// same data directory (its silences and notification log, if it wrote them), and waits
    /// until it is ready. Alerts are not kept across a restart: Alertmanager holds them in
    /// memory only, and the senders re-send them.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "alertmanager is already running");
        let mut child = Command::new(ALERTMANAGER_BIN)
            .arg(format!("--config.file={}", self.config.display()))
            .arg(format!("--storage.path={}", self.dir.path().display()))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg("--cluster.listen-address=")
            // Debug logs say when each group was flushed and notified: what a failure needs.
            .arg("--log.level=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {ALERTMANAGER_BIN}: {e}"));
        let stdout = child.stdout.take().expect("stdout piped");
        let stderr = child.stderr.take().expect("stderr piped");
        collect(stdout, self.lines.clone());
        collect(stderr, self.lines.clone());
        self.child = Some(child);
        let ready = format!("{}/-/ready", self.url());
        wait_for("alertmanager to be ready", READY_DEADLINE, || {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.dump();
                panic!("alertmanager exited before it was ready: {status}");
            }
            let answer = http_request("GET", &ready, None).ok()?;
            (answer.0 == 200).then_some(())
        });
    }

    /// The base URL, `http://127.0.0.1:PORT`, as `alerts.alertmanager.urls` takes it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGTERM, and waits for the exit: Alertmanager writes its silences and notification log
    /// to its data directory on the way out, as under `systemctl stop`.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let exited = wait_for("alertmanager to exit", Duration::from_secs(30), || {
            child.try_wait().ok().flatten()
        });
        if !exited.success() && log_enabled() {
            eprintln!("[alertmanager] exited {exited}");
        }
    }

    /// SIGKILL, and waits: a crash, which loses whatever it had not written yet.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Runs `amtool` against this Alertmanager with `args`, e.g.
    /// `["silence", "add", "customer_id=c1", "--duration", "1h", "--comment", "test"]`.
    pub fn amtool(&self, args: &[&str]) -> Output {
        let out = Command::new(AMTOOL_BIN)
            .arg(format!("--alertmanager.url={}", self.url()))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {AMTOOL_BIN}: {e}: {INSTALL_HINT}"));
        if log_enabled() {
            eprintln!(
                "[amtool] {args:?}: {}\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out
    }

    /// POSTs `alerts` (a JSON array, as a sender would) to `/api/v2/alerts`; panics unless 200.
    pub fn post_alerts(&self, alerts: &Value) {
        let url = format!("{}/api/v2/alerts", self.url());
        let (status, body) = http_post(&url, &alerts.to_string());
        assert_eq!(status, 200, "POST {url}: {body}");
    }

    /// The alerts Alertmanager holds now and has not seen resolved (`GET /api/v2/alerts`).
    pub fn alerts(&self) -> Vec<HeldAlert> {
        let url = format!("{}/api/v2/alerts", self.url());
        let (status, body) =
            http_request("GET", &url, None).unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(status, 200, "GET {url}: {body}");
        let alerts: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"));
        alerts
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| HeldAlert {
                labels: string_map(&a["labels"]),
                annotations: string_map(&a["annotations"]),
                starts_at: text(&a["startsAt"]),
                ends_at: text(&a["endsAt"]),
                fingerprint: text(&a["fingerprint"]),
                state: text(&a["status"]["state"]),
                silenced_by: a["status"]["silencedBy"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(text)
                    .collect(),
            })
            .collect()
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn dump(&self) {
        eprintln!("--- alertmanager log (127.0.0.1:{}) ---", self.port);
        for l in self.log_lines() {
            eprintln!("{l}");
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            self.dump();
        }
    }
}

/// Keeps a child's output lines in `lines`, and prints them as they come with `TEST_LOG=1`.
fn collect(output: impl Read + Send + 'static, lines: Arc<Mutex<Vec<String>>>) {
    thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            if log_enabled() {
                eprintln!("[alertmanager] {line}");
            }
            lines.lock().unwrap().push(line);
        }
    });
}

/// The configuration: one route, to the webhook, resolutions included.
fn config_text(webhook_url: &str, routing: &Routing) -> String {
    let group_by = routing
        .group_by
        .iter()
        .map(|l| format!("'{l}'"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "route:\n  receiver: webhook\n  group_by: [{group_by}]\n  group_wait: {}ms\n  \
         group_interval: {}ms\n  repeat_interval: {REPEAT_INTERVAL}\n\
         receivers:\n  - name: webhook\n    webhook_configs:\n      - url: '{webhook_url}'\n        \
         send_resolved: true\n",
        routing.group_wait.as_millis(),
        routing.group_interval.as_millis(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_on_a_kept_alive_connection_and_chunked_bodies_are_read_whole() {
        let wire = "POST / HTTP/1.1\r\nContent-Length: 7\r\n\r\n{\"a\":1}\
                    POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n\
                    4\r\n{\"b\"\r\n3;x=y\r\n:2}\r\n0\r\n\r\n\
                    GET / HTTP/1.0\r\n\r\n";
        let mut r = BufReader::new(wire.as_bytes());
        let first = read_message(&mut r, false).unwrap().unwrap();
        assert_eq!(first.body, b"{\"a\":1}");
        assert!(first.keep_alive());
        let second = read_message(&mut r, false).unwrap().unwrap();
        assert_eq!(second.body, b"{\"b\":2}");
        let third = read_message(&mut r, false).unwrap().unwrap();
        assert!(third.body.is_empty());
        assert!(!third.keep_alive(), "HTTP/1.0 closes");
        assert!(read_message(&mut r, false).unwrap().is_none());
    }

    #[test]
    fn a_response_without_a_length_runs_to_the_end_of_the_stream() {
        let wire = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n[1,2]";
        let response = read_message(&mut BufReader::new(wire.as_bytes()), true)
            .unwrap()
            .unwrap();
        assert_eq!(response.body, b"[1,2]");
        assert!(!response.keep_alive());
    }
}
