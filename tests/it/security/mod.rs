//! Security (docs/SECURITY.md): Kafka over TLS with mutual TLS, a refused SASL login,
//! PostgreSQL with verify-full, the least-privilege roles, injection strings at the edges, and
//! secrets that never reach any output.
//!
//! Certificates come from a CA each test makes with the `openssl` command. Kafka's TLS is
//! terminated by stunnel4 in front of a private tansu broker (tansu's own TLS listener does not
//! answer librdkafka); the broker advertises stunnel's port. `scripts/build-deps.sh --test`
//! installs both tools; a test without them fails and says so, it never skips.
//!
//! # Parts
//! - `mod.rs`: the tools, the test CA ([`Pki`]) and log matching the parts share.
//! - `kafka.rs`: mutual TLS through stunnel, and a refused SASL login.
//! - `postgres.rs`: verify-full, and the least-privilege roles.
//! - `edges.rs`: injection strings at the edges, and what HTTP serves.
//! - `secrets.rs`: no secret in any output.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::helpers::*;

mod edges;
mod kafka;
mod postgres;
mod secrets;

/// Long enough for a group join over TLS plus the work.
const STORE_DEADLINE: Duration = Duration::from_secs(120);
/// How long a refused login or handshake is watched for retries.
const WATCH: Duration = Duration::from_secs(20);

/// A tool the tests need, found on PATH, or a failure that says how to get it.
fn tool(names: &[&str]) -> PathBuf {
    for name in names {
        if let Ok(out) = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
        {
            let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if out.status.success() && !path.is_empty() {
                return PathBuf::from(path);
            }
        }
    }
    panic!(
        "{} not found: scripts/build-deps.sh --test installs it (Debian package {})",
        names[0],
        if names[0] == "openssl" {
            "openssl"
        } else {
            "stunnel4"
        }
    );
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA with a server certificate (for 127.0.0.1 and localhost), a client certificate
/// whose key is encrypted with `key_password`, and a second CA that signed neither.
struct Pki {
    dir: tempfile::TempDir,
    key_password: String,
}

impl Pki {
    fn new() -> Pki {
        let openssl = tool(&["openssl"]);
        let dir = tempfile::Builder::new().prefix("hb_pki").tempdir().unwrap();
        let d = dir.path();
        // Readable by the postgres user, which runs the private PostgreSQL server.
        run_ok(Command::new("chmod").arg("755").arg(d));
        let key_password = unique("keypw");
        let ossl = |args: &[&str]| {
            run_ok(Command::new(&openssl).current_dir(d).args(args));
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        for ca in ["ca", "other-ca"] {
            let mut args = vec!["req", "-x509", "-nodes", "-days", "2"];
            args.extend(ec);
            let (key, pem, subj) = (
                format!("{ca}.key"),
                format!("{ca}.pem"),
                format!("/CN=heartbeat test {ca}"),
            );
            args.extend(["-keyout", &key, "-out", &pem, "-subj", &subj]);
            ossl(&args);
        }
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for (name, cn) in [("server", "localhost"), ("client", "heartbeat-pipeline")] {
            let mut args = vec!["req", "-nodes"];
            args.extend(ec);
            let (key, csr, subj) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("/CN={cn}"),
            );
            args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
            ossl(&args);
            let (pem, ext) = (format!("{name}.pem"), format!("{name}.ext"));
            ossl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &pem,
                "-extfile",
                &ext,
            ]);
        }
        let pass = format!("pass:{key_password}");
        ossl(&[
            "pkey",
            "-in",
            "client.key",
            "-aes256",
            "-passout",
            &pass,
            "-out",
            "client-enc.key",
        ]);
        Pki { dir, key_password }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    /// Settings for a client of the TLS broker: `ca` to trust, the client certificate with its
    /// encrypted key, the key's passphrase from the environment.
    fn kafka_tls(&self, setup: Setup, brokers: &str, ca: &str, protocol: &str) -> Setup {
        setup
            .with("HEARTBEAT__KAFKA__BROKERS", brokers)
            .with("HEARTBEAT__KAFKA__SECURITY_PROTOCOL", protocol)
            .with("HEARTBEAT__KAFKA__SSL_CA_FILE", &self.path(ca))
            .with(
                "HEARTBEAT__KAFKA__SSL_CERTIFICATE_FILE",
                &self.path("client.pem"),
            )
            .with(
                "HEARTBEAT__KAFKA__SSL_KEY_FILE",
                &self.path("client-enc.key"),
            )
            .with("HEARTBEAT__KAFKA__SSL_KEY_PASSWORD", &self.key_password)
    }
}

/// Every line the daemon logged since `from` whose text contains `needle`.
fn lines_with(daemon: &Daemon, from: usize, needle: &str) -> usize {
    daemon.log_lines()[from..]
        .iter()
        .filter(|l| l.contains(needle))
        .count()
}
