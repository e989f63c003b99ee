use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Ticket {
    pub notes: String,
}

#[workflow(state = Ticket)]
pub mod research_agent {
    use super::*;

    edge!(START -> search);
    edge!(search -> END);

    #[node]
    async fn search(t: &mut Ticket) {
        t.notes.push_str("found");
    }
}

#[workflow(state = Ticket)]
pub mod other_agent {
    use super::*;

    edge!(START -> guess);
    edge!(guess -> END);

    #[node]
    async fn guess(t: &mut Ticket) {
        t.notes.clear();
    }
}

#[workflow(state = Ticket)]
pub mod support {
    use super::*;

    edge!(START -> research);
    edge!(research -> END);

    #[node(subgraph = research_agent)]
    async fn research(t: &mut Ticket, child: Child<other_agent::Workflow>) -> Result<(), NodeError> {
        t.notes = child.run(Ticket::default()).await?.notes;
        Ok(())
    }
}

fn main() {}
