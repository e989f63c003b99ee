//! A loop: an agent plans, acts and observes until its (fake) model says it is done.
//!
//! Run: `cargo run --example agent`

use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, StateSchema)]
pub struct Agent {
    pub goal: u32,
    pub total: u32,
    pub plan: Option<u32>,
    pub transcript: Vec<String>,
}

/// A fake model: proposes the next addend, or nothing once the goal is reached.
fn fake_model(agent: &Agent) -> Option<u32> {
    let left = agent.goal.saturating_sub(agent.total);
    (left > 0).then(|| left.min(7))
}

#[workflow(state = Agent)]
pub mod agent {
    use super::*;

    edge!(START -> plan);
    edge!(plan -> act | END);
    edge!(act -> observe);
    edge!(observe -> plan);

    #[node]
    async fn plan(agent: &mut Agent) -> plan::Next {
        agent.plan = fake_model(agent);
        match agent.plan {
            Some(step) => {
                agent.transcript.push(format!("plan: add {step}"));
                plan::Next::Act
            }
            None => {
                agent.transcript.push("plan: done".into());
                plan::Next::End
            }
        }
    }

    #[node]
    async fn act(agent: &mut Agent, ctx: &NodeCtx) {
        if let Some(step) = agent.plan.take() {
            agent.total += step;
            agent
                .transcript
                .push(format!("act #{}: total = {}", ctx.seq(), agent.total));
        }
    }

    #[node]
    async fn observe(agent: &Agent) {
        // A real agent would read tool output here; `&Agent` shows a read-only node.
        let _ = agent.total;
    }
}

#[tokio::main]
async fn main() -> Result<(), graph_runtime::Error> {
    println!("{}", agent::MERMAID);
    let runner = Runner::new(agent::Workflow, MemoryStore::new()).max_steps(1_000);
    let done = runner
        .start(
            "agent-1",
            Agent {
                goal: 30,
                ..Agent::default()
            },
        )
        .await?
        .into_state();
    for line in &done.transcript {
        println!("{line}");
    }
    println!(
        "{} checkpoints kept",
        runner.history("agent-1").await?.len()
    );
    Ok(())
}
