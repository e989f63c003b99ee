use graph_runtime::prelude::*;

#[derive(StateSchema)]
pub union Bits {
    pub int: u32,
    pub float: f32,
}

fn main() {}
