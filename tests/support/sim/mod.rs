pub mod checks;
pub mod clients;
pub mod ledger;
pub mod store;
pub mod workflows;
pub mod world;
