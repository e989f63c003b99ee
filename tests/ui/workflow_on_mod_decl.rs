use graph_runtime::prelude::*;

pub struct Order;

#[workflow(state = Order)]
mod checkout;

fn main() {}
