//! A real Alertmanager for the delivery benchmarks (Debian's `prometheus-alertmanager`, which
//! `scripts/build-deps.sh` installs), routing to a webhook recorder in this process that notes
//! when each notification arrived: for latency configured as the tests configure theirs
//! ([`Route::Test`]: `group_wait: 0s`, `group_interval: 1s`, every alert its own group), for
//! throughput as the compose stack routes ([`Route::Deployed`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::services::{free_port, unique};

/// One alert of a webhook notification, as received.
#[derive(Debug, Clone)]
pub(super) struct Received {
    pub(super) at: Instant,
    /// `firing` or `resolved`.
    pub(super) status: String,
    pub(super) customer_id: String,
    pub(super) kind: String,
}

/// An HTTP server on loopback that answers every POST 200 and keeps the alerts of each
/// Alertmanager webhook notification with the time it arrived.
pub(super) struct Webhook {
    pub(super) url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Webhook {
    pub(super) fn start() -> anyhow::Result<Webhook> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}/", listener.local_addr()?);
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let store = store.clone();
                std::thread::spawn(move || serve(stream, &store));
            }
        });
        Ok(Webhook { url, received })
    }

    pub(super) fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// Serves one keep-alive connection: each request's body is read by its Content-Length.
fn serve(stream: std::net::TcpStream, store: &Mutex<Vec<Received>>) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        // The request line, then headers up to the blank line.
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let at = Instant::now();
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
            let alerts = v["alerts"].as_array().cloned().unwrap_or_default();
            if let Ok(mut store) = store.lock() {
                for a in alerts {
                    let label = |k: &str| a["labels"][k].as_str().unwrap_or_default().to_owned();
                    store.push(Received {
                        at,
                        status: a["status"].as_str().unwrap_or_default().to_owned(),
                        customer_id: label("customer_id"),
                        kind: label("kind"),
                    });
                }
            }
        }
        let answer = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// How the benchmark's Alertmanager groups and times notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// As the tests: every alert its own group, flushed at once, then every second.
    Test,
    /// As deploy/alertmanager/alertmanager.yml routes the customers' episodes: by customer and
    /// alert name, 30 s to the first flush and between flushes.
    Deployed,
}

impl Route {
    fn yaml(self) -> &'static str {
        match self {
            Route::Test => "  group_by: ['...']\n  group_wait: 0s\n  group_interval: 1s\n",
            Route::Deployed => {
                "  group_by: [customer_id, alertname]\n  group_wait: 30s\n  group_interval: 30s\n"
            }
        }
    }
}

/// A private Alertmanager on a free loopback port; killed when dropped.
pub(super) struct Alertmanager {
    pub(super) url: String,
    child: Child,
    dir: PathBuf,
}

impl Alertmanager {
    pub(super) fn start(webhook_url: &str, route: Route) -> anyhow::Result<Alertmanager> {
        let dir = std::env::temp_dir().join(unique("hb-bench-am"));
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "route:\n  receiver: recorder\n{}  repeat_interval: 1h\nreceivers:\n  - name: \
                 recorder\n    webhook_configs:\n      - url: {webhook_url}\n        \
                 send_resolved: true\n",
                route.yaml()
            ),
        )?;
        let port = free_port()?;
        let child = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context(
                "start prometheus-alertmanager (scripts/build-deps.sh --test installs it: Debian \
                 package prometheus-alertmanager)",
            )?;
        let am = Alertmanager {
            url: format!("http://127.0.0.1:{port}"),
            child,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready(port) {
            if Instant::now() > deadline {
                bail!("the Alertmanager on port {port} did not become ready in 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(am)
    }
}

impl Alertmanager {
    /// CPU seconds the Alertmanager has used so far (user and system, from /proc).
    pub(super) fn cpu_seconds(&self) -> f64 {
        crate::processors::cpu_seconds(self.child.id())
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `GET /-/ready` answers 200.
fn ready(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET /-/ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let mut answer = String::new();
    s.write_all(request.as_bytes()).is_ok()
        && s.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}
