use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Chat {
    pub turns: u32,
}

// `ask` and `answer` call each other forever: no path from them reaches `END`.
#[workflow(state = Chat)]
mod agent {
    use super::*;

    edge!(START -> plan);
    edge!(plan -> ask | END);
    edge!(ask -> answer);
    edge!(answer -> ask);

    #[node]
    async fn plan(chat: &mut Chat) -> plan::Next {
        if chat.turns > 0 {
            plan::Next::Ask
        } else {
            plan::Next::End
        }
    }

    #[node]
    async fn ask(chat: &mut Chat) {
        chat.turns += 1;
    }

    #[node]
    async fn answer(chat: &mut Chat) {
        chat.turns += 1;
    }
}

fn main() {}
