//! Power loss under SQLite, simulated: a VFS whose files live on in-memory disks that keep
//! only what SQLite synced when the power is cut (`disk.rs`, `vfs.rs`), and a store wrapper
//! that records what the store acknowledged (`recorder.rs`).

mod disk;
mod vfs;

pub use disk::{At, Disk, Fates, SECTOR, Unsynced};
mod recorder;

pub use recorder::{Ack, AfterAcks, Log, Recorder};
