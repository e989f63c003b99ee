use graph_runtime::prelude::*;

pub struct Order;

#[workflow(state = Order)]
fn checkout() {}

fn main() {
    checkout();
}
