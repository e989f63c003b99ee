//! A world: its settings, its sessions (each with the operator's verb for it), the runners
//! of one process life, and what the clients keep outside the store.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use graph_runtime::prelude::*;

use super::store::SimStore;
use super::workflows::*;

/// How soon a map parent waiting for children on workers reads their statuses again.
const RECHECK: Duration = Duration::from_millis(200);

/// Whether a session is run in-process or by workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    InProcess,
    Workers,
}

/// What an operator does to a session, at a point of its run that every run of the world
/// reaches (so that the crash-free run does the same there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    None,
    /// Edits the state while the session waits (`Runner::edit`).
    Edit,
    /// Cancels the session (and its unfinished children) once it waits with every child
    /// settled.
    Cancel,
    /// Deletes the session once it completed, with its children (tickets and claims have
    /// some): the store takes the whole tree in one transaction, and refuses a child that a
    /// run of the deleted parent still in flight would start again.
    Delete,
    /// Once it completed, forks it from a checkpoint of its history (`Runner::fork`), or
    /// with a corrected state (`fork_with`), and runs the fork to its end.
    Fork {
        with_state: bool,
    },
}

/// A session's initial state, by workflow.
#[derive(Debug, Clone)]
pub enum Initial {
    Loop(Loop),
    Fan(Fan),
    Memo(Memo),
    Ticket(Ticket),
    Claim(Claim),
    Deal(Deal),
}

/// One session of a world.
#[derive(Debug, Clone)]
pub struct Spec {
    pub id: String,
    pub mode: Mode,
    pub verb: Verb,
    pub initial: Initial,
}

/// The settings of a world, fixed by its seed (the crash-free run uses the same, on the
/// memory store).
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// Two service instances drive each in-process session at once.
    pub racing: bool,
    pub retention: Retention,
    /// The faulty run keeps its sessions in SQLite.
    pub sqlite: bool,
}

impl Setup {
    pub fn of(seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x2ace);
        let racing = rng.bool();
        let retention = if rng.u32(0..10) < 4 {
            Retention::KeepLast(rng.u64(1..=4))
        } else {
            Retention::KeepAll
        };
        let one_in = sqlite_one_in();
        let sqlite = one_in > 0 && rng.u32(0..one_in) == 0;
        Setup {
            racing,
            retention,
            sqlite,
        }
    }

    /// Lease time to live. On the memory store, virtual time: short, so that stalls (up to
    /// 900 ms) outlive leases. SQLite counts leases on the wall clock while renewals come
    /// every third of it in virtual time (much faster): a live worker's lease lapses only
    /// when the process does not get to renew it in wall time; a dead life's leases must
    /// lapse in wall time before the next life's workers take its sessions, so they are
    /// short.
    pub fn lease_ttl(&self, sqlite: bool) -> Duration {
        if sqlite {
            Duration::from_millis(30)
        } else {
            Duration::from_millis(300)
        }
    }
}

/// One world in this many runs on SQLite (`SIM_SQLITE_ONE_IN` sets it: 1, every world; 0,
/// none).
pub const SQLITE_ONE_IN: u32 = 25;

fn sqlite_one_in() -> u32 {
    static ONE_IN: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *ONE_IN.get_or_init(|| {
        std::env::var("SIM_SQLITE_ONE_IN")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(SQLITE_ONE_IN)
    })
}

/// The sessions of world `seed`, for world run `run`.
pub fn world(seed: u64, run: u64) -> Vec<Spec> {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x005e_ed0f_5eed);
    let mut specs = Vec::new();
    let mut add = |id: String, mode, verb, initial| {
        specs.push(Spec {
            id,
            mode,
            verb,
            initial,
        })
    };
    for (mode, tag) in [(Mode::InProcess, "p"), (Mode::Workers, "w")] {
        for i in 0..rng.usize(1..=2) {
            let state = Loop {
                run,
                rounds: rng.u32(1..=4),
                fail_check: rng.bool(),
                card_ok: rng.u32(0..4) != 0,
                pad: "p".repeat(5_000),
                ..Loop::default()
            };
            let verb = match rng.u32(0..6) {
                0 => Verb::Fork { with_state: false },
                1 => Verb::Fork { with_state: true },
                2 => Verb::Delete,
                _ => Verb::None,
            };
            add(format!("{tag}-loop-{i}"), mode, verb, Initial::Loop(state));
        }
        if rng.u32(0..10) < 6 {
            let fan = Fan {
                run,
                width: rng.u32(0..=3),
                ..Fan::default()
            };
            let verb = match rng.u32(0..4) {
                0 | 1 => Verb::Edit,
                2 => Verb::Delete,
                _ => Verb::None,
            };
            add(format!("{tag}-fan-0"), mode, verb, Initial::Fan(fan));
        }
        if rng.u32(0..10) < 6 {
            let ticket = Ticket {
                run,
                text: format!("question {}", rng.u32(0..100)),
                reviewed: mode == Mode::InProcess && rng.bool(),
                ..Ticket::default()
            };
            let verb = if ticket.reviewed && rng.bool() {
                Verb::Cancel
            } else if rng.u32(0..4) == 0 {
                Verb::Delete
            } else {
                Verb::None
            };
            add(
                format!("{tag}-ticket-0"),
                mode,
                verb,
                Initial::Ticket(ticket),
            );
        }
        if rng.u32(0..10) < 6 {
            let lines: Vec<u32> = (0..rng.u32(0..=4))
                .map(|_| {
                    if rng.u32(0..3) == 0 {
                        rng.u32(CHECK_ABOVE + 1..1_000)
                    } else {
                        rng.u32(1..=CHECK_ABOVE)
                    }
                })
                .collect();
            let waits = lines.iter().any(|&cents| cents > CHECK_ABOVE);
            let verb = if waits && rng.u32(0..3) == 0 {
                Verb::Cancel
            } else if rng.u32(0..4) == 0 {
                Verb::Delete
            } else {
                Verb::None
            };
            let claim = Claim {
                run,
                lines,
                ..Claim::default()
            };
            add(format!("{tag}-claim-0"), mode, verb, Initial::Claim(claim));
        }
        if rng.u32(0..10) < 5 {
            let verb = match rng.u32(0..4) {
                0 | 1 => Verb::Edit,
                2 => Verb::Delete,
                _ => Verb::None,
            };
            let deal = Deal {
                run,
                ..Deal::default()
            };
            add(format!("{tag}-deal-0"), mode, verb, Initial::Deal(deal));
        }
    }
    if rng.bool() {
        let memo = Memo {
            run,
            ..Memo::default()
        };
        // Always run by workers: only a worker runs a node whose wait is over.
        add(
            "w-memo-0".to_owned(),
            Mode::Workers,
            Verb::None,
            Initial::Memo(memo),
        );
    }
    if Setup::of(seed).sqlite {
        // A SQLite call costs a hundred times a memory store's: half the sessions (the
        // same ones in the crash-free run, which runs this world too).
        let mut keep = fastrand::Rng::with_seed(seed ^ 0x0059_171e);
        specs.retain(|_| keep.bool());
    }
    specs
}

/// The runners of one process life, configured as the world says.
#[derive(Clone)]
pub struct Runners {
    pub looping: Runner<looping::Workflow, SimStore>,
    pub fanout: Runner<fanout::Workflow, SimStore>,
    pub deadline: Runner<deadline::Workflow, SimStore>,
    pub support: Runner<support::Workflow, SimStore>,
    pub claims: Runner<claims::Workflow, SimStore>,
    pub assessment: Runner<assessment::Workflow, SimStore>,
    pub approvals: Runner<approvals::Workflow, SimStore>,
}

impl Runners {
    pub fn new(store: &SimStore, setup: &Setup) -> Self {
        let retention = setup.retention;
        Runners {
            looping: Runner::new(looping::Workflow, store.clone()).retention(retention),
            fanout: Runner::new(fanout::Workflow, store.clone()).retention(retention),
            deadline: Runner::new(deadline::Workflow, store.clone()).retention(retention),
            support: Runner::new(support::Workflow, store.clone()).retention(retention),
            // A parent whose children's wake-ups were lost in crashes moves on at its next
            // re-check: short here, so that a world waits for it in moments, not minutes.
            claims: Runner::new(claims::Workflow, store.clone())
                .retention(retention)
                .recheck_children(RECHECK),
            assessment: Runner::new(assessment::Workflow, store.clone()).retention(retention),
            approvals: Runner::new(approvals::Workflow, store.clone()).retention(retention),
        }
    }
}

/// What the clients of a world keep outside the store, across crashes (a service's own
/// database), and what they saw go wrong.
#[derive(Debug, Default)]
pub struct Clients {
    /// Sessions a client set out to delete (written before the delete is sent: after a
    /// crash, a session that is gone was deleted, not never started).
    deleting: Mutex<HashSet<String>>,
    /// Sessions an operator set out to cancel (a cancel that failed half-way, its children
    /// cancelled and not the parent, is made again, whatever the session shows).
    cancelling: Mutex<HashSet<String>>,
    /// Answers the runner accepted (`Ok`), by session and node: those must win.
    accepted: Mutex<HashSet<(String, &'static str)>>,
    /// What a client saw that must not happen (an answer accepted after its deadline).
    violations: Mutex<Vec<String>>,
    /// How many times each verb or race outcome happened (what the worlds covered).
    counts: Mutex<BTreeMap<&'static str, u64>>,
}

impl Clients {
    pub fn new() -> Arc<Self> {
        Arc::new(Clients::default())
    }

    pub fn intend_delete(&self, id: &str) {
        self.deleting.lock().unwrap().insert(id.to_owned());
    }

    pub fn deleting(&self, id: &str) -> bool {
        self.deleting.lock().unwrap().contains(id)
    }

    pub fn intend_cancel(&self, id: &str) {
        self.cancelling.lock().unwrap().insert(id.to_owned());
    }

    pub fn cancelling(&self, id: &str) -> bool {
        self.cancelling.lock().unwrap().contains(id)
    }

    pub fn accepted(&self, id: &str, node: &'static str) {
        self.accepted.lock().unwrap().insert((id.to_owned(), node));
    }

    pub fn was_accepted(&self, id: &str, node: &'static str) -> bool {
        self.accepted
            .lock()
            .unwrap()
            .contains(&(id.to_owned(), node))
    }

    pub fn count(&self, what: &'static str) {
        *self.counts.lock().unwrap().entry(what).or_default() += 1;
    }

    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.counts.lock().unwrap().clone()
    }

    pub fn violation(&self, what: String) {
        self.violations.lock().unwrap().push(what);
    }

    pub fn take_violations(&self) -> Vec<String> {
        std::mem::take(&mut *self.violations.lock().unwrap())
    }
}
