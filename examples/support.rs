//! A support ticket whose `research` node runs a research workflow as a child session, on the
//! embedded durable store (`support.db` in the working directory).
//!
//! The ticket is triaged, then its research child looks the topic up and stops for a human
//! `check` of its sources: the ticket waits too, at `research/check`. The check is answered
//! through the ticket (`support::Input::Research(research_agent::Input::Check(…))`), which runs the
//! child on to its end and the ticket on to its reply. Both runs are spawned, and their live
//! events are printed as they happen.
//!
//! Then a backlog of tickets is researched as a map of children (one research child per
//! ticket, three at a time): the refund tickets' children wait for their check on their own
//! while the others finish, the backlog's progress is printed live from its events, and each
//! waiting child is answered at its own id before the backlog is resumed.
//!
//! ```sh
//! cargo run --example support
//! ```
//!
//! The workflows are in `support/tickets.rs`.

use graph_runtime::prelude::*;
use graph_runtime::{BranchOutcome, Error, Event, Events, Status};

#[path = "support/tickets.rs"]
mod tickets;
use tickets::{Backlog, Ticket, Verdict, backlog, research_agent, support};

/// Prints a spawned run's events as they come, until the run ends.
async fn print_events(session: String, mut events: Events) {
    while let Some(event) = events.next().await {
        let line = match event {
            Event::StepStarted { node, seq, .. } => format!("step {seq}: {node}"),
            Event::StepFinished { node, duration, .. } => format!("  {node} took {duration:?}"),
            Event::CheckpointSaved { seq, bytes } => {
                format!("  checkpoint {seq} saved ({bytes} B)")
            }
            Event::Interrupted { node } => format!("waiting at {node}"),
            Event::Completed => "completed".to_owned(),
            Event::Failed { error } => format!("failed: {error}"),
            other => format!("{other:?}"),
        };
        println!("  [{session}] {line}");
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    println!(
        "support graph (hash {:#018x}):\n{}",
        support::GRAPH_HASH,
        support::MERMAID
    );
    let store = SqliteStore::open("support.db")?;
    let tickets = Runner::new(support::Workflow, store.clone());
    // The child's own runner: to read the child session (a worker or the ticket's runner
    // runs it; this one only looks).
    let researchers = Runner::new(research_agent::Workflow, store);

    // A new ticket per run of the example (children's ids have a `/`, tickets' none).
    let earlier = tickets.sessions().await?;
    let id = format!(
        "ticket-{}",
        earlier.iter().filter(|id| !id.contains('/')).count() + 1
    );
    let ticket = Ticket {
        customer: "Ada".into(),
        text: "I would like a refund for order 42".into(),
        ..Ticket::default()
    };
    println!("\n{id}: {:?}", ticket.text);
    let mut run = tickets.spawn(&id, ticket);
    let printer = tokio::spawn(print_events(id.clone(), run.events()));
    let outcome = run.await?;
    printer.await.expect("the event printer");
    let Outcome::Interrupted { node, .. } = outcome else {
        panic!("the ticket should wait for its research child's check: {outcome:?}");
    };
    println!("{id} waits at `{node}`");

    // Where it waits: the ticket's snapshot names the path; the child is a session of its
    // own, at the id of the ticket's step that runs `research`.
    let snapshot = tickets.state(&id).await?.expect("the ticket");
    println!(
        "  ticket: status {:?}, waiting {:?}, topic {:?}",
        snapshot.status, snapshot.waiting, snapshot.state.topic
    );
    let child = format!("{id}/research/{}", snapshot.seq);
    let question = researchers
        .state(&child)
        .await?
        .expect("the research child");
    println!(
        "  child {child}: waiting {:?}, sources {:?}",
        question.waiting, question.state.sources
    );

    // A support agent confirms the sources, through the ticket (the same answer in JSON:
    // {"research":{"check":"Confirm"}}).
    let answer = support::Input::Research(research_agent::Input::Check(Verdict::Confirm));
    println!("\nan agent answers {id} at `research/check`: {answer:?}");
    let mut run = tickets.spawn_resume_with(&id, answer);
    let printer = tokio::spawn(print_events(id.clone(), run.events()));
    let done = run.await?;
    printer.await.expect("the event printer");
    let Outcome::Completed(ticket) = done else {
        panic!("the ticket should be done: {done:?}");
    };
    println!("\nfinal state of {id}: {ticket:#?}");

    for (session, nodes) in [
        (&id, tickets.history(&id).await?),
        (&child, researchers.history(&child).await?),
    ] {
        let path: Vec<String> = nodes
            .iter()
            .map(|c| match &c.status {
                Status::Waiting { node } => format!("{}:{} (waiting at {node})", c.seq, c.node),
                _ => format!("{}:{}", c.seq, c.node),
            })
            .collect();
        println!("history of {session}: {}", path.join(" -> "));
    }

    backlog_of_tickets(&tickets, &researchers).await
}

/// The map of children: a backlog researched one child per ticket.
async fn backlog_of_tickets(
    tickets: &Runner<support::Workflow, SqliteStore>,
    researchers: &Runner<research_agent::Workflow, SqliteStore>,
) -> Result<(), Error> {
    let backlogs = Runner::new(backlog::Workflow, tickets.store().clone());
    let earlier = backlogs.sessions().await?;
    let id = format!(
        "backlog-{}",
        earlier
            .iter()
            .filter(|id| id.starts_with("backlog-") && !id.contains('/'))
            .count()
            + 1
    );
    let texts = [
        "How do I change my password?",
        "Refund for a damaged parcel",
        "Where is my order?",
        "Refund: charged twice",
        "Do you ship to Norway?",
    ];
    let work = Backlog {
        texts: texts.iter().map(|t| (*t).to_owned()).collect(),
        ..Backlog::default()
    };
    println!(
        "
{id}: {} tickets, one research child each",
        texts.len()
    );
    let mut run = backlogs.spawn(&id, work);
    let mut events = run.events();
    let progress = tokio::spawn(async move {
        let (mut done, mut waiting) = (0, 0);
        while let Some(event) = events.next().await {
            match event {
                Event::RegionOpened {
                    branches, items, ..
                } => {
                    println!(
                        "  [{}] {} children to run",
                        branches.join(", "),
                        items.unwrap_or(0)
                    );
                }
                Event::BranchSettled { item, outcome, .. } => {
                    match outcome {
                        BranchOutcome::Waiting => waiting += 1,
                        _ => done += 1,
                    }
                    println!(
                        "  item {}: {outcome:?} — {done} done, {waiting} waiting",
                        item.unwrap_or(0)
                    );
                }
                Event::Child { path, event } if matches!(*event, Event::Interrupted { .. }) => {
                    println!("  a child of `{path}` stops: {event:?}");
                }
                _ => {}
            }
        }
    });
    let outcome = run.await?;
    progress.await.expect("the progress printer");
    let Outcome::Interrupted { node, .. } = outcome else {
        panic!("the refund tickets' children should wait: {outcome:?}");
    };
    let snapshot = backlogs.state(&id).await?.expect("the backlog");
    if let Some(progress) = &snapshot.progress {
        println!(
            "{id} waits at `{node}`: {} of {} done, {} waiting",
            progress.done, progress.total, progress.waiting
        );
    }

    // Each waiting child is answered at its own id (through the backlog's `Input` the answer
    // would not say which ticket's child it is for).
    for (item, text) in texts.iter().enumerate() {
        let child = format!("{id}/research/{}/{item}", snapshot_opened(&snapshot));
        if let Some(question) = researchers.state(&child).await?
            && !question.waiting.is_empty()
        {
            println!("an agent confirms the sources of {child} ({text:?})");
            researchers
                .resume_with(&child, research_agent::Input::Check(Verdict::Confirm))
                .by("agent-7")
                .await?;
        }
    }
    let Outcome::Completed(done) = backlogs.resume(&id).await? else {
        panic!("every child has finished: the backlog completes");
    };
    for (text, summary) in texts.iter().zip(&done.summaries) {
        println!("  {text:?} -> {summary}");
    }
    Ok(())
}

/// The sequence number of the step that opened the backlog's map, which its children's ids
/// carry.
fn snapshot_opened<S>(snapshot: &graph_runtime::Snapshot<S>) -> u64 {
    snapshot.progress.as_ref().map_or(0, |p| p.opened)
}
