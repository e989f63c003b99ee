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

pub mod helpers {
    pub struct Workflow;
}

#[workflow(state = Ticket)]
pub mod support {
    use super::*;

    edge!(START -> research);
    edge!(research -> END);

    #[node(subgraph = helpers)]
    async fn research(t: &mut Ticket, child: Child<research_agent::Workflow>) -> Result<(), NodeError> {
        t.notes = child.run(Ticket::default()).await?.notes;
        Ok(())
    }
}

fn main() {}
