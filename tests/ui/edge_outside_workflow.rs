use graph_runtime::prelude::*;

edge!(START -> charge);

fn main() {}
