//! The `heartbeat-pipeline` binary: parse the command line, load the configuration, build the
//! logger, run the command, map its result to the exit code of SPEC section 2.

use clap::Parser;

use heartbeat_pipeline::cli::{Cli, Command};
use heartbeat_pipeline::commands::{self, exit, generate::GenerateArgs, produce::ProduceArgs};
use heartbeat_pipeline::config::{ConfigError, Settings};
use heartbeat_pipeline::telemetry;

fn main() {
    limit_malloc_arenas();
    // clap exits 2 on a usage error and 0 for --help/--version by itself.
    let cli = Cli::parse();
    if prints_for_a_reader(&cli.command) {
        restore_sigpipe();
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(exit::USAGE);
        }
    };
    let problems = heartbeat_pipeline::kafka::check_properties(&settings.kafka);
    if !problems.is_empty() {
        eprintln!("error: {}", ConfigError { problems });
        std::process::exit(exit::USAGE);
    }
    if let Command::CheckConfig = cli.command {
        print!("{}", settings.to_redacted_toml());
        eprintln!("configuration is valid");
        std::process::exit(exit::OK);
    }
    let (log, guard) = match telemetry::init(&settings.log) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(exit::USAGE);
        }
    };
    install_panic_hook(log.clone());

    let code = match cli.command {
        Command::CheckConfig => exit::OK,
        Command::Migrate => commands::migrate::migrate(&settings, &log),
        Command::Inspect => commands::inspect::inspect(&settings, &log),
        Command::Rules { action } => commands::rules::rules(&settings, &action, &log),
        Command::Run => actix::System::new().block_on(commands::run::run(settings, log.clone())),
        Command::Generate {
            count,
            rate,
            customers,
            seed,
            profile,
        } => actix::System::new().block_on(commands::generate::generate(
            settings,
            GenerateArgs {
                count,
                rate,
                customers,
                seed,
                profile,
            },
            log.clone(),
        )),
        Command::Produce { topic, file } => actix::System::new().block_on(
            commands::produce::produce(settings, ProduceArgs { topic, file }, log.clone()),
        ),
        Command::Tail {
            topic,
            from_beginning,
        } => actix::System::new().block_on(commands::tail::tail(
            settings,
            topic,
            from_beginning,
            log.clone(),
        )),
    };
    // Flush the asynchronous log drains before exiting: exiting skips destructors.
    drop(log);
    drop(guard);
    exit_now(code)
}

/// Ends the process without running the C library's exit handlers. Everything this program
/// writes is flushed by now (log guards dropped, stdout below); what is still running are
/// library threads: r2d2 filling a pool through libpq, librdkafka's brokers. `exit()` would run
/// OpenSSL's cleanup under them, and a thread inside a TLS handshake then crashes on freed locks
/// (seen: a SIGTERM right after start ended in a segmentation fault, 2 stops in 20, instead of
/// exit code 0).
fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` takes a plain integer and never returns; no Rust state is left to clean
    // up that the operating system does not reclaim.
    unsafe { libc::_exit(code) }
}

/// Logs a panic through slog (with the thread that panicked) before the default hook prints it.
/// The supervisor sees the panicking actor go and restarts its group.
fn install_panic_hook(log: slog::Logger) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        heartbeat_pipeline::actors::note_panic();
        let thread = std::thread::current();
        slog::error!(log, "panic"; "thread" => thread.name().unwrap_or("?"), "info" => %info);
        default(info);
    }));
}

/// The commands whose output is for a reader (`inspect | head`, `tail | grep -m1`): when the
/// reader goes away they end as `cat` does, killed by SIGPIPE, instead of panicking in
/// `println!` with a trace. Not `run`, `generate` and `produce`, which hold records in flight
/// and must drain them whatever becomes of their output.
fn prints_for_a_reader(command: &Command) -> bool {
    matches!(
        command,
        Command::CheckConfig | Command::Inspect | Command::Tail { .. } | Command::Rules { .. }
    )
}

/// Rust starts every program with SIGPIPE ignored, so a write to a closed pipe is an error
/// (which `println!` turns into a panic); this puts back the default, death by the signal.
fn restore_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_DFL before any thread is started; no
    // handler runs Rust code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// glibc's malloc gives each thread that allocates concurrently an arena of its own, up to eight
/// per core, and memory freed in one arena is not reused by another. The processor's threads
/// (actors, writers, librdkafka's) held some 20 MiB more at its peak that way: at 100,000
/// customers, 243-255 MiB against 213-229 with two arenas, at the same readings/s
/// (docs/PERFORMANCE.md, "Fleet scale"). Before any thread starts; a `MALLOC_ARENA_MAX` in the
/// environment wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a tunable of the allocator; no thread runs yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
