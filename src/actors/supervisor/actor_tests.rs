//! The supervisor with real actors: a child that panics is seen and its group restarted, and a
//! group that keeps failing makes the supervisor give up.

use std::cell::RefCell;
use std::rc::Rc;

use actix::prelude::*;

use super::*;
use crate::actors::ExitGuard;

/// Test groups never fail to start.
type Groups = Vec<Box<dyn ChildGroup<StartError = std::convert::Infallible>>>;

/// Panics when told to.
struct Fragile {
    _exit: ExitGuard,
}

impl Actor for Fragile {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "()")]
struct Explode;

impl Handler<Explode> for Fragile {
    type Result = ();
    fn handle(&mut self, _: Explode, _: &mut Self::Context) {
        panic!("injected fault");
    }
}

/// A group of one `Fragile` that panics `explosions` times in all, once per start.
struct FragileGroup {
    starts: Rc<RefCell<Vec<u64>>>,
    explosions: usize,
    arbiter: Option<Arbiter>,
    /// Held like a real group holds its actors: an actor with no address left stops.
    actor: Option<Addr<Fragile>>,
}

impl ChildGroup for FragileGroup {
    type StartError = std::convert::Infallible;
    fn name(&self) -> &'static str {
        "fragile"
    }
    fn actors(&self) -> &'static [&'static str] {
        &["fragile"]
    }
    fn start(
        &mut self,
        generation: u64,
        exits: UnboundedSender<ChildExit>,
    ) -> BoxFuture<'_, Result<(), Self::StartError>> {
        self.starts.borrow_mut().push(generation);
        let arbiter = Arbiter::new();
        let addr = Fragile::start_in_arbiter(&arbiter.handle(), move |_| Fragile {
            _exit: ExitGuard::new("fragile", generation, exits),
        });
        if self.starts.borrow().len() <= self.explosions {
            addr.do_send(Explode);
        }
        self.arbiter = Some(arbiter);
        self.actor = Some(addr);
        Box::pin(async { Ok(()) })
    }
    fn drain(&mut self) -> BoxFuture<'_, bool> {
        Box::pin(async { true })
    }
    fn stop(&mut self) {
        if let Some(a) = self.arbiter.take() {
            a.stop();
        }
    }
}

fn fast_policy(max_restarts: usize) -> RestartPolicy {
    RestartPolicy {
        max_restarts,
        window: Duration::from_secs(60),
        backoff_min: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
    }
}

/// Keeps the expected panics out of the test output; every other panic (a failing
/// assertion anywhere in this test binary) is still printed by the previous hook.
fn silence_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&"injected fault") {
                previous(info);
            }
        }));
    });
}

#[actix::test]
async fn a_panicking_actor_is_restarted_with_its_group() {
    silence_panics();
    let starts = Rc::new(RefCell::new(Vec::new()));
    let group = FragileGroup {
        starts: starts.clone(),
        explosions: 2,
        arbiter: None,
        actor: None,
    };
    let metrics = Arc::new(Metrics::new());
    let observed = starts.clone();
    // Stop once the third incarnation has started (two panics survived).
    let shutdown = async move {
        while observed.borrow().len() < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        supervise(
            vec![Box::new(group)],
            fast_policy(5),
            shutdown,
            Duration::from_secs(1),
            metrics.clone(),
            Arc::new(Health::new()),
            crate::telemetry::discard(),
        ),
    )
    .await
    .expect("supervisor returns");
    assert_eq!(outcome, Outcome::Stopped);
    assert_eq!(*starts.borrow(), vec![1, 2, 3]);
    assert_eq!(
        metrics.actor_restarts.with_label_values(&["fragile"]).get(),
        2
    );
}

/// A group that never fails and notes what the supervisor asks of it.
struct Steady {
    name: &'static str,
    actors: &'static [&'static str],
    asked: Rc<RefCell<Vec<&'static str>>>,
    /// What its drain answers.
    drains_in_time: bool,
    /// Its start never finishes.
    hangs: bool,
}

impl Steady {
    fn new(asked: &Rc<RefCell<Vec<&'static str>>>) -> Steady {
        Steady {
            name: "steady",
            actors: &["steady"],
            asked: asked.clone(),
            drains_in_time: true,
            hangs: false,
        }
    }
}

impl ChildGroup for Steady {
    type StartError = std::convert::Infallible;
    fn name(&self) -> &'static str {
        self.name
    }
    fn actors(&self) -> &'static [&'static str] {
        self.actors
    }
    fn start(
        &mut self,
        _: u64,
        _: UnboundedSender<ChildExit>,
    ) -> BoxFuture<'_, Result<(), Self::StartError>> {
        self.asked.borrow_mut().push("start");
        if self.hangs {
            Box::pin(std::future::pending())
        } else {
            Box::pin(async { Ok(()) })
        }
    }
    fn drain(&mut self) -> BoxFuture<'_, bool> {
        self.asked.borrow_mut().push("drain");
        let drained = self.drains_in_time;
        Box::pin(async move { drained })
    }
    fn stop(&mut self) {
        self.asked.borrow_mut().push("stop");
    }
}

/// A `FragileGroup` that fails at every start, and a policy that waits a minute before
/// each restart.
fn always_failing(starts: &Rc<RefCell<Vec<u64>>>) -> (FragileGroup, RestartPolicy) {
    let group = FragileGroup {
        starts: starts.clone(),
        explosions: usize::MAX,
        arbiter: None,
        actor: None,
    };
    let policy = RestartPolicy {
        max_restarts: 5,
        window: Duration::from_secs(60),
        backoff_min: Duration::from_secs(60),
        backoff_max: Duration::from_secs(60),
    };
    (group, policy)
}

/// Runs the supervisor over `groups` until `shutdown`, at most ten seconds.
async fn supervise_until(
    groups: Groups,
    policy: RestartPolicy,
    shutdown: impl Future<Output = ()>,
    metrics: Arc<Metrics>,
) -> Outcome {
    tokio::time::timeout(
        Duration::from_secs(10),
        supervise(
            groups,
            policy,
            shutdown,
            Duration::from_secs(1),
            metrics,
            Arc::new(Health::new()),
            crate::telemetry::discard(),
        ),
    )
    .await
    .expect("supervisor returns")
}

#[actix::test]
async fn a_stop_while_another_group_backs_off_drains_the_running_group() {
    silence_panics();
    for drains_in_time in [true, false] {
        let asked = Rc::new(RefCell::new(Vec::new()));
        let starts = Rc::new(RefCell::new(Vec::new()));
        let (fragile, policy) = always_failing(&starts);
        let steady = Steady {
            drains_in_time,
            ..Steady::new(&asked)
        };
        let metrics = Arc::new(Metrics::new());
        let seen = metrics.clone();
        // The stop comes once the fragile group has died: the supervisor is then in its
        // minute of backoff.
        let shutdown = async move {
            while seen.actor_restarts.with_label_values(&["fragile"]).get() < 1 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let groups: Groups = vec![Box::new(steady), Box::new(fragile)];
        let outcome = supervise_until(groups, policy, shutdown, metrics).await;
        let want = if drains_in_time {
            Outcome::Stopped
        } else {
            Outcome::DrainTimedOut
        };
        assert_eq!(outcome, want);
        assert_eq!(*asked.borrow(), ["start", "drain", "stop"]);
        assert_eq!(*starts.borrow(), [1], "not restarted after the stop");
    }
}

#[actix::test]
async fn a_stop_while_a_group_starts_drains_the_groups_already_running() {
    let asked = Rc::new(RefCell::new(Vec::new()));
    let hanging = Rc::new(RefCell::new(Vec::new()));
    let slow = Steady {
        name: "slow",
        actors: &["slow"],
        hangs: true,
        ..Steady::new(&hanging)
    };
    let seen = hanging.clone();
    let shutdown = async move {
        while seen.borrow().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let groups: Groups = vec![Box::new(Steady::new(&asked)), Box::new(slow)];
    let outcome = supervise_until(groups, fast_policy(5), shutdown, Arc::new(Metrics::new())).await;
    assert_eq!(outcome, Outcome::Stopped);
    assert_eq!(*asked.borrow(), ["start", "drain", "stop"]);
    // Never started, so nothing to drain: its half-start is stopped.
    assert_eq!(*hanging.borrow(), ["start", "stop"]);
}

#[actix::test]
async fn a_group_failing_past_the_intensity_gives_up() {
    silence_panics();
    let starts = Rc::new(RefCell::new(Vec::new()));
    let group = FragileGroup {
        starts: starts.clone(),
        explosions: usize::MAX,
        arbiter: None,
        actor: None,
    };
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        supervise(
            vec![Box::new(group)],
            fast_policy(3),
            std::future::pending(),
            Duration::from_secs(1),
            Arc::new(Metrics::new()),
            Arc::new(Health::new()),
            crate::telemetry::discard(),
        ),
    )
    .await
    .expect("supervisor returns");
    assert_eq!(outcome, Outcome::GaveUp);
    // The first start and three restarts; the fourth failure is past the intensity.
    assert_eq!(starts.borrow().len(), 4);
}
