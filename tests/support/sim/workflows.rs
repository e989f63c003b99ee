//! The workflows the simulation's worlds run, and what the checks need of their states.
//!
//! Every node records its execution in the ledger (see `ledger.rs`) and keeps the mark in
//! the state (or its branch output) its step saves. Flakiness and slowness are functions of
//! the step's idempotency key and attempt only, so a crash (which starts the attempts over)
//! changes neither the path nor the final state.

use std::time::Duration;

use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

use super::ledger::{effect, effect_with, key_of};

pub fn fnv(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Fails the first one or two attempts of one step in three.
fn flaky(ctx: &NodeCtx) -> Result<(), NodeError> {
    let fails = (fnv(&ctx.idempotency_key()) % 3) as u32;
    if ctx.attempt() <= fails {
        return Err(format!("flaky: attempt {}", ctx.attempt()).into());
    }
    Ok(())
}

/// The first attempt of one step in two outlives its node's `timeout_ms = 50`.
async fn slow(ctx: &NodeCtx) {
    if fnv(&ctx.idempotency_key()).is_multiple_of(2) && ctx.attempt() == 1 {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// What the checks need of every state: its committed marks, and the state as a
/// crash-free run has it (marks without their execution ids, no world run id).
pub trait SimState: Clone + std::fmt::Debug + Send + Sync + 'static {
    fn marks(&self) -> Vec<&str>;
    fn normalized(&self) -> Self;
}

fn normalize(marks: &[String]) -> Vec<String> {
    marks.iter().map(|m| key_of(m)).collect()
}

/// Loops, retries, timeouts and an error edge; `finish` fails until an operator repairs
/// the state (`card_ok`) of a session that starts without it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Loop {
    pub run: u64,
    pub rounds: u32,
    pub count: u32,
    pub fail_check: bool,
    pub recovered: bool,
    /// Without it `finish` fails (no retry, no error edge): the run fails, and the session
    /// waits for an operator's edit.
    pub card_ok: bool,
    pub marks: Vec<String>,
    /// Large enough for incremental checkpoints (deltas) to be used.
    pub pad: String,
}

impl SimState for Loop {
    fn marks(&self) -> Vec<&str> {
        self.marks.iter().map(String::as_str).collect()
    }
    fn normalized(&self) -> Self {
        Loop {
            run: 0,
            marks: normalize(&self.marks),
            pad: format!("{} bytes", self.pad.len()),
            ..self.clone()
        }
    }
}

#[workflow(state = Loop)]
pub mod looping {
    use super::*;

    edge!(START -> step);
    edge!(step -> tick);
    edge!(tick -> step | check);
    edge!(check -> finish);
    edge!(check -> recover on error);
    edge!(recover -> finish);
    edge!(finish -> END);

    #[node(retry = 2, timeout_ms = 50, backoff_ms = 5, jitter = false)]
    async fn step(s: &mut Loop, ctx: &NodeCtx) -> Result<(), NodeError> {
        s.marks.push(effect(s.run, ctx));
        s.count += 1;
        slow(ctx).await;
        flaky(ctx)
    }

    #[node]
    async fn tick(s: &mut Loop, ctx: &NodeCtx) -> tick::Next {
        s.marks.push(effect(s.run, ctx));
        if s.count < s.rounds {
            tick::Next::Step
        } else {
            tick::Next::Check
        }
    }

    #[node(retry = 1, backoff_ms = 5, jitter = false)]
    async fn check(s: &mut Loop, ctx: &NodeCtx) -> Result<(), NodeError> {
        s.marks.push(effect(s.run, ctx));
        if s.fail_check {
            return Err("the check fails".into());
        }
        Ok(())
    }

    #[node]
    async fn recover(s: &mut Loop, ctx: &NodeCtx) {
        s.marks.push(effect(s.run, ctx));
        s.recovered = ctx.failure().is_some();
    }

    #[node]
    async fn finish(s: &mut Loop, ctx: &NodeCtx) -> Result<(), NodeError> {
        s.marks.push(effect(s.run, ctx));
        if !s.card_ok {
            return Err("the card was declined".into());
        }
        Ok(())
    }
}

/// Fan-out with two interrupt branches answered late, a retried and a timed-out branch, then
/// a map; an operator may change the map's width while the branches wait.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Fan {
    pub run: u64,
    pub width: u32,
    /// Set by the operator's edit (which also widens the map).
    pub edited: bool,
    pub marks: Vec<String>,
    pub items: Vec<String>,
}

impl SimState for Fan {
    fn marks(&self) -> Vec<&str> {
        self.marks
            .iter()
            .chain(&self.items)
            .map(String::as_str)
            .collect()
    }
    fn normalized(&self) -> Self {
        Fan {
            run: 0,
            marks: normalize(&self.marks),
            items: normalize(&self.items),
            ..self.clone()
        }
    }
}

#[workflow(state = Fan)]
pub mod fanout {
    use super::*;

    edge!(START -> open);
    edge!(open -> left & right & ask1 & ask2);
    edge!(left & right & ask1 & ask2 -> join);
    edge!(join -> plan);
    edge!(plan -> each item);
    edge!(item -> total);
    edge!(total -> END);

    #[node]
    async fn open(f: &mut Fan, ctx: &NodeCtx) {
        f.marks.push(effect(f.run, ctx));
    }

    #[node(retry = 2, backoff_ms = 5, jitter = false)]
    async fn left(f: &Fan, ctx: &NodeCtx) -> Result<String, NodeError> {
        let mark = effect(f.run, ctx);
        flaky(ctx)?;
        Ok(mark)
    }

    #[node(retry = 1, timeout_ms = 50, backoff_ms = 5, jitter = false)]
    async fn right(f: &Fan, ctx: &NodeCtx) -> Result<String, NodeError> {
        let mark = effect(f.run, ctx);
        slow(ctx).await;
        Ok(mark)
    }

    #[node(interrupt)]
    async fn ask1(f: &Fan, answer: String, ctx: &NodeCtx) -> String {
        format!("{}={answer}", effect_with(f.run, ctx, &answer))
    }

    #[node(interrupt)]
    async fn ask2(f: &Fan, answer: String, ctx: &NodeCtx) -> String {
        format!("{}={answer}", effect_with(f.run, ctx, &answer))
    }

    #[node]
    async fn join(f: &mut Fan, left: String, right: String, ask1: String, ask2: String) {
        f.marks.extend([left, right, ask1, ask2]);
    }

    #[node]
    async fn plan(f: &mut Fan, ctx: &NodeCtx) -> Vec<u32> {
        f.marks.push(effect(f.run, ctx));
        (0..f.width).collect()
    }

    #[node(concurrency = 2, retry = 2, backoff_ms = 5, jitter = false)]
    async fn item(f: &Fan, item: u32, ctx: &NodeCtx) -> Result<String, NodeError> {
        let mark = effect(f.run, ctx);
        flaky(ctx)?;
        Ok(format!("{mark}:{item}"))
    }

    #[node]
    async fn total(f: &mut Fan, item: Vec<String>) {
        f.items = item;
    }
}

/// Deadlines of single nodes: `review` is never answered (a worker runs it with `None`
/// after 20 ms), `approve` is answered long before its deadline of a day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Memo {
    pub run: u64,
    pub marks: Vec<String>,
    pub review: Option<u32>,
    pub approve: Option<u32>,
}

impl SimState for Memo {
    fn marks(&self) -> Vec<&str> {
        self.marks.iter().map(String::as_str).collect()
    }
    fn normalized(&self) -> Self {
        Memo {
            run: 0,
            marks: normalize(&self.marks),
            ..self.clone()
        }
    }
}

#[workflow(state = Memo)]
pub mod deadline {
    use super::*;

    edge!(START -> prep);
    edge!(prep -> review);
    edge!(review -> approve);
    edge!(approve -> done);
    edge!(done -> END);

    #[node]
    async fn prep(m: &mut Memo, ctx: &NodeCtx) {
        m.marks.push(effect(m.run, ctx));
    }

    #[node(interrupt, wait_ms = 20)]
    async fn review(m: &mut Memo, decision: Option<u32>, ctx: &NodeCtx) {
        m.marks.push(effect_with(m.run, ctx, &decision));
        m.review = decision;
    }

    #[node(interrupt, wait_ms = 86_400_000)]
    async fn approve(m: &mut Memo, decision: Option<u32>, ctx: &NodeCtx) {
        m.marks.push(effect_with(m.run, ctx, &decision));
        m.approve = decision;
    }

    #[node]
    async fn done(m: &mut Memo, ctx: &NodeCtx) {
        m.marks.push(effect(m.run, ctx));
    }
}

/// Deadlines of parallel branches. `early` waits a day and is answered in time; `late` and
/// `racy` wait [`BRANCH_WAIT_MS`] of the wall clock (branch deadlines are counted on the
/// wall clock, see the client): nobody answers `late` before its deadline passes, and its
/// answer given afterwards must be refused; `racy` is answered just as its deadline passes,
/// racing the worker that takes it: either may win, never both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Deal {
    pub run: u64,
    pub marks: Vec<String>,
    /// Set by the operator's edit while the branches wait.
    pub note: String,
    pub branches: Vec<String>,
}

/// The deadline of `late` and `racy`, in milliseconds of the wall clock.
pub const BRANCH_WAIT_MS: u64 = 1;

/// What a branch ran with, at the end of its output.
pub fn verdict(decision: &Option<String>) -> String {
    decision.clone().unwrap_or_else(|| "escalated".to_owned())
}

impl SimState for Deal {
    fn marks(&self) -> Vec<&str> {
        self.marks
            .iter()
            .chain(&self.branches)
            .map(|m| m.split('=').next().unwrap_or(m))
            .collect()
    }
    fn normalized(&self) -> Self {
        // Which of `racy`'s answer and deadline won is the race's to decide: the checks
        // compare the rest, and check `racy`'s outcome on its own.
        let branches = normalize(&self.branches)
            .into_iter()
            .map(|b| match b.split_once("/racy/") {
                Some((session, rest)) => {
                    let step = rest.split('=').next().unwrap_or(rest);
                    format!("{session}/racy/{step}=answer or deadline")
                }
                None => b,
            })
            .collect();
        Deal {
            run: 0,
            marks: normalize(&self.marks),
            branches,
            ..self.clone()
        }
    }
}

#[workflow(state = Deal)]
pub mod approvals {
    use super::*;

    edge!(START -> intake);
    edge!(intake -> early & late & racy & quote);
    edge!(early & late & racy & quote -> decide);
    edge!(decide -> END);

    #[node]
    async fn intake(d: &mut Deal, ctx: &NodeCtx) {
        d.marks.push(effect(d.run, ctx));
    }

    #[node(interrupt, wait_ms = 86_400_000)]
    async fn early(d: &Deal, ctx: &NodeCtx, decision: Option<String>) -> String {
        format!(
            "{}={}",
            effect_with(d.run, ctx, &decision),
            verdict(&decision)
        )
    }

    #[node(interrupt, wait_ms = 1)]
    async fn late(d: &Deal, ctx: &NodeCtx, decision: Option<String>) -> String {
        format!(
            "{}={}",
            effect_with(d.run, ctx, &decision),
            verdict(&decision)
        )
    }

    #[node(interrupt, wait_ms = 1)]
    async fn racy(d: &Deal, ctx: &NodeCtx, decision: Option<String>) -> String {
        format!(
            "{}={}",
            effect_with(d.run, ctx, &decision),
            verdict(&decision)
        )
    }

    #[node(retry = 2, backoff_ms = 5, jitter = false)]
    async fn quote(d: &Deal, ctx: &NodeCtx) -> Result<String, NodeError> {
        let mark = effect(d.run, ctx);
        flaky(ctx)?;
        Ok(mark)
    }

    #[node]
    async fn decide(d: &mut Deal, early: String, late: String, racy: String, quote: String) {
        d.branches = vec![early, late, racy, quote];
    }
}

/// The child workflow of `support`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Question {
    pub run: u64,
    pub text: String,
    /// Whether the child waits for a review (only children of in-process parents).
    pub reviewed: bool,
    pub marks: Vec<String>,
    pub summary: String,
}

impl SimState for Question {
    fn marks(&self) -> Vec<&str> {
        self.marks.iter().map(String::as_str).collect()
    }
    fn normalized(&self) -> Self {
        Question {
            run: 0,
            marks: normalize(&self.marks),
            ..self.clone()
        }
    }
}

#[workflow(state = Question)]
pub mod research_agent {
    use super::*;

    edge!(START -> search);
    edge!(search -> review | summarize);
    edge!(review -> summarize);
    edge!(summarize -> END);

    #[node(retry = 2, backoff_ms = 5, jitter = false)]
    async fn search(q: &mut Question, ctx: &NodeCtx) -> Result<search::Next, NodeError> {
        q.marks.push(effect(q.run, ctx));
        flaky(ctx)?;
        Ok(if q.reviewed {
            search::Next::Review
        } else {
            search::Next::Summarize
        })
    }

    /// A wait inside the child: its parent waits at `research/review`, and the client
    /// answers through the parent (`support::Input::Research(Input::Review(…))`).
    #[node(interrupt)]
    async fn review(q: &mut Question, verdict: String, ctx: &NodeCtx) {
        q.marks
            .push(format!("{}={verdict}", effect_with(q.run, ctx, &verdict)));
    }

    #[node]
    async fn summarize(q: &mut Question, ctx: &NodeCtx) {
        q.marks.push(effect(q.run, ctx));
        q.summary = format!("{} mark(s) on {}", q.marks.len(), q.text);
    }
}

/// The parent: a subgraph node whose child is a session of `research_agent`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Ticket {
    pub run: u64,
    pub text: String,
    pub reviewed: bool,
    pub marks: Vec<String>,
    pub child_marks: Vec<String>,
    pub notes: String,
}

impl SimState for Ticket {
    fn marks(&self) -> Vec<&str> {
        self.marks.iter().map(String::as_str).collect()
    }
    fn normalized(&self) -> Self {
        Ticket {
            run: 0,
            marks: normalize(&self.marks),
            child_marks: normalize(&self.child_marks),
            ..self.clone()
        }
    }
}

#[workflow(state = Ticket)]
pub mod support {
    use super::*;

    edge!(START -> intake);
    edge!(intake -> research);
    edge!(research -> reply);
    edge!(reply -> END);

    #[node]
    async fn intake(t: &mut Ticket, ctx: &NodeCtx) {
        t.marks.push(effect(t.run, ctx));
    }

    #[node(subgraph = research_agent, retry = 1, backoff_ms = 5, jitter = false)]
    async fn research(
        t: &mut Ticket,
        ctx: &NodeCtx,
        child: Child<research_agent::Workflow>,
    ) -> Result<(), NodeError> {
        t.marks.push(effect(t.run, ctx));
        let question = Question {
            run: t.run,
            text: t.text.clone(),
            reviewed: t.reviewed,
            ..Question::default()
        };
        let found = child.run(question).await?;
        t.child_marks = found.marks;
        t.notes = found.summary;
        Ok(())
    }

    #[node]
    async fn reply(t: &mut Ticket, ctx: &NodeCtx) {
        t.marks.push(effect(t.run, ctx));
    }
}

/// Lines above this many cents wait for a check in their child.
pub const CHECK_ABOVE: u32 = 500;

/// The child of a map item: one line of a claim.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Line {
    pub run: u64,
    pub index: u32,
    pub cents: u32,
    pub marks: Vec<String>,
    pub checked_by: String,
    pub payable: u32,
}

impl SimState for Line {
    fn marks(&self) -> Vec<&str> {
        self.marks.iter().map(String::as_str).collect()
    }
    fn normalized(&self) -> Self {
        Line {
            run: 0,
            marks: normalize(&self.marks),
            ..self.clone()
        }
    }
}

#[workflow(state = Line)]
pub mod assessment {
    use super::*;

    edge!(START -> price);
    edge!(price -> check | settle);
    edge!(check -> settle);
    edge!(settle -> END);

    #[node(retry = 2, backoff_ms = 5, jitter = false)]
    async fn price(l: &mut Line, ctx: &NodeCtx) -> Result<price::Next, NodeError> {
        l.marks.push(effect(l.run, ctx));
        flaky(ctx)?;
        l.payable = l.cents * 9 / 10;
        Ok(if l.cents > CHECK_ABOVE {
            price::Next::Check
        } else {
            price::Next::Settle
        })
    }

    /// A wait inside a map item's child: the client answers the child itself.
    #[node(interrupt)]
    async fn check(l: &mut Line, adjuster: String, ctx: &NodeCtx) {
        l.marks.push(effect_with(l.run, ctx, &adjuster));
        l.checked_by = adjuster;
    }

    #[node]
    async fn settle(l: &mut Line, ctx: &NodeCtx) {
        l.marks.push(effect(l.run, ctx));
    }
}

/// A map item's result, as its child ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Assessed {
    pub mark: String,
    pub payable: u32,
    pub checked_by: String,
    pub child_marks: Vec<String>,
}

/// A claim: a map over a subgraph node, one child session per line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Claim {
    pub run: u64,
    pub lines: Vec<u32>,
    pub marks: Vec<String>,
    pub assessed: Vec<Assessed>,
    pub payable: u32,
}

impl SimState for Claim {
    fn marks(&self) -> Vec<&str> {
        self.marks
            .iter()
            .chain(self.assessed.iter().map(|a| &a.mark))
            .map(String::as_str)
            .collect()
    }
    fn normalized(&self) -> Self {
        // A parent whose children run on workers saves its wait again each time a child
        // that ends wakes it while others still run: how many times depends on who ends
        // when, and so the sequence number of the step after the map.
        let marks = normalize(&self.marks)
            .into_iter()
            .map(|m| match m.split_once("/total/") {
                Some((session, _)) => format!("{session}/total/after the map"),
                None => m,
            })
            .collect();
        Claim {
            run: 0,
            marks,
            assessed: self
                .assessed
                .iter()
                .map(|a| Assessed {
                    mark: key_of(&a.mark),
                    child_marks: normalize(&a.child_marks),
                    ..a.clone()
                })
                .collect(),
            ..self.clone()
        }
    }
}

#[workflow(state = Claim)]
pub mod claims {
    use super::*;

    edge!(START -> plan);
    edge!(plan -> each assess);
    edge!(assess -> total);
    edge!(total -> END);

    #[node]
    async fn plan(c: &mut Claim, ctx: &NodeCtx) -> Vec<Line> {
        c.marks.push(effect(c.run, ctx));
        c.lines
            .iter()
            .enumerate()
            .map(|(index, &cents)| Line {
                run: c.run,
                index: index as u32,
                cents,
                ..Line::default()
            })
            .collect()
    }

    #[node(subgraph = assessment, concurrency = 2, retry = 1, backoff_ms = 5, jitter = false)]
    async fn assess(
        c: &Claim,
        line: Line,
        ctx: &NodeCtx,
        child: Child<assessment::Workflow>,
    ) -> Result<Assessed, NodeError> {
        let mark = effect(c.run, ctx);
        let done = child.run(line).await?;
        Ok(Assessed {
            mark,
            payable: done.payable,
            checked_by: done.checked_by,
            child_marks: done.marks,
        })
    }

    #[node]
    async fn total(c: &mut Claim, assess: Vec<Assessed>, ctx: &NodeCtx) {
        c.marks.push(effect(c.run, ctx));
        c.payable = assess.iter().map(|a| a.payable).sum();
        c.assessed = assess;
    }
}
