//! Fault injection for tests, compiled in only with the cargo feature `fault-injection`
//! (`scripts/test.sh` turns it on; release builds for use leave it off, and then every hook is
//! an empty inline function).
//!
//! `HEARTBEAT_TEST_PANIC=<actor>:<n>` makes the named actor (`validator`, `anomaly_detector`,
//! `db_writer`) panic on each of the first `n` batches it handles in this process, counted across
//! restarts: `validator:1` panics once, and a large `n` panics past any restart intensity.
//! `generator` panics as it starts instead, on each of its first `n` starts (it handles no
//! batches): a group that fails at every start.
//!
//! `HEARTBEAT_TEST_LEAVE_GROUP=1` makes the subscriber's consumer unsubscribe, once per process,
//! the first time it is seen holding partitions it has read from: the consumer is then out of
//! its group without knowing, as the local broker left one after a freeze
//! (`kafka_subscriber::watch_progress`).

/// The environment variable that arms the panic hook.
pub const PANIC_VAR: &str = "HEARTBEAT_TEST_PANIC";
/// The environment variable that arms the leave-group hook.
pub const LEAVE_GROUP_VAR: &str = "HEARTBEAT_TEST_LEAVE_GROUP";

#[cfg(feature = "fault-injection")]
mod imp {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    /// The armed actor and how many panics are left.
    static ARMED: OnceLock<Option<(String, AtomicU64)>> = OnceLock::new();

    fn armed() -> &'static Option<(String, AtomicU64)> {
        ARMED.get_or_init(|| {
            let spec = std::env::var(super::PANIC_VAR).ok()?;
            let (actor, n) = spec.split_once(':')?;
            Some((actor.to_owned(), AtomicU64::new(n.parse().ok()?)))
        })
    }

    pub fn maybe_panic(actor: &'static str) {
        let Some((target, left)) = armed() else {
            return;
        };
        if target == actor
            && left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            panic!("injected fault in {actor} ({} set)", super::PANIC_VAR);
        }
    }

    pub fn describe() -> Option<String> {
        armed().as_ref().map(|(actor, left)| {
            format!(
                "{actor} panics on its next {} batches",
                left.load(Ordering::SeqCst)
            )
        })
    }

    /// `true` once per process when the leave-group hook is armed.
    pub fn leave_group_once() -> bool {
        static LEFT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        std::env::var_os(super::LEAVE_GROUP_VAR).is_some_and(|v| v == "1")
            && !LEFT.swap(true, Ordering::SeqCst)
    }
}

#[cfg(not(feature = "fault-injection"))]
mod imp {
    #[inline(always)]
    pub fn maybe_panic(_actor: &'static str) {}

    pub fn describe() -> Option<String> {
        None
    }

    #[inline(always)]
    pub fn leave_group_once() -> bool {
        false
    }
}

/// Panics if the hook is armed for `actor` and has panics left; nothing otherwise.
pub use imp::maybe_panic;

/// What the hook is armed to do, for a warning at start; `None` when it is not armed.
pub use imp::describe;

/// `true` the first time it is asked in this process when the leave-group hook is armed.
pub use imp::leave_group_once;
