use graph_runtime::prelude::*;

pub struct Order {
    pub total: u64,
}

#[node]
async fn charge(order: &mut Order) {
    order.total = 0;
}

fn main() {
    let _ = charge;
}
