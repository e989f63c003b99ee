//! The support workflows of `examples/support.rs`: a ticket (`support`, the parent) whose
//! `research` node runs a research workflow (`research_agent`, the child) as a durable child
//! session. Each workflow is a module of its own, so a new one (another child, or a parent
//! that runs several children) is added next to these without changing them.

use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// A customer's ticket: the parent's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Ticket {
    pub customer: String,
    pub text: String,
    /// Set by `triage`.
    pub topic: String,
    /// The research child's summary.
    pub notes: String,
    pub reply: String,
}

/// What the research child works on: its own state, built from the ticket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Question {
    pub topic: String,
    pub sources: Vec<String>,
    /// The human check's verdict.
    pub confirmed: Option<bool>,
    pub summary: String,
}

impl From<&Ticket> for Question {
    fn from(t: &Ticket) -> Self {
        Question {
            topic: t.topic.clone(),
            ..Question::default()
        }
    }
}

/// A support agent's answer at the research child's `check`.
#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub enum Verdict {
    /// The sources found answer the question.
    Confirm,
    /// They do not: the agent says what to use instead.
    Correct { source: String },
}

/// The child: looks the topic up, has a human check what it found when money is involved,
/// then summarizes.
#[workflow(state = Question)]
pub mod research_agent {
    use super::*;

    edge!(START -> search);
    edge!(search -> check | summarize);
    edge!(check -> summarize);
    edge!(summarize -> END);

    #[node]
    async fn search(q: &mut Question) -> search::Next {
        // A stand-in for a knowledge-base search.
        q.sources.push(format!("kb/{}.md", q.topic));
        q.sources.push(format!("faq#{}", q.topic));
        if q.topic == "refunds" {
            search::Next::Check
        } else {
            search::Next::Summarize
        }
    }

    /// A human checks the sources before they reach the customer.
    #[node(interrupt)]
    async fn check(q: &mut Question, verdict: Verdict) {
        match verdict {
            Verdict::Confirm => q.confirmed = Some(true),
            Verdict::Correct { source } => {
                q.confirmed = Some(false);
                q.sources = vec![source];
            }
        }
    }

    #[node]
    async fn summarize(q: &mut Question) {
        q.summary = format!("{} (from {})", q.topic, q.sources.join(", "));
    }
}

/// The parent: triages a ticket, hands its question to the research child, replies.
#[workflow(state = Ticket)]
pub mod support {
    use super::*;

    edge!(START -> triage);
    edge!(triage -> research);
    edge!(research -> reply);
    edge!(reply -> END);

    #[node]
    async fn triage(t: &mut Ticket) {
        t.topic = if t.text.contains("refund") {
            "refunds".to_owned()
        } else {
            "general".to_owned()
        };
    }

    /// Runs the research child (a session of its own, `{ticket}/research/{seq}`) and waits
    /// for it, durably: while the child waits at `check`, so does the ticket, at
    /// `research/check`.
    #[node(subgraph = research_agent)]
    async fn research(
        t: &mut Ticket,
        child: Child<research_agent::Workflow>,
    ) -> Result<(), NodeError> {
        let found = child.run(Question::from(&*t)).await?;
        t.notes = found.summary;
        Ok(())
    }

    #[node]
    async fn reply(t: &mut Ticket) {
        t.reply = format!("Hi {}, about {}", t.customer, t.notes);
    }
}

/// A backlog of tickets, researched together: the parent of a map of children.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Backlog {
    pub texts: Vec<String>,
    /// One summary per ticket, in the backlog's order.
    pub summaries: Vec<String>,
}

/// The parent of a map: one research child per ticket of the backlog, three at a time.
/// Children about refunds wait for their check on their own; the others go on.
#[workflow(state = Backlog)]
pub mod backlog {
    use super::*;

    edge!(START -> plan);
    edge!(plan -> each research);
    edge!(research -> collect);
    edge!(collect -> END);

    #[node]
    async fn plan(b: &mut Backlog) -> Vec<Question> {
        b.texts
            .iter()
            .map(|text| Question {
                topic: if text.to_lowercase().contains("refund") {
                    "refunds".to_owned()
                } else {
                    "general".to_owned()
                },
                ..Question::default()
            })
            .collect()
    }

    /// One child session per ticket, `{backlog}/research/{seq}/{item}`.
    #[node(subgraph = research_agent, concurrency = 3)]
    async fn research(
        _b: &Backlog,
        question: Question,
        child: Child<research_agent::Workflow>,
    ) -> Result<String, NodeError> {
        Ok(child.run(question).await?.summary)
    }

    #[node]
    async fn collect(b: &mut Backlog, research: Vec<String>) {
        b.summaries = research;
    }
}
