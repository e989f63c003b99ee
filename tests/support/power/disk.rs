//! The simulated disk: each file's synced image, what was written since, and what a power cut
//! leaves of it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

/// The unit a torn write is torn at: a disk writes a sector whole or not at all, but the
/// sectors of one write reach it in any order, and a cut can fall between any two of them.
pub const SECTOR: usize = 512;

/// What a power cut does to the writes a file received since it was last synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsynced {
    /// All of them are lost: only what was synced survives.
    Lost,
    /// Each one, on its own (a disk reorders what it has not been told to flush): survives
    /// whole, is lost, or (`tear`) survives in part, each of its sectors kept or lost.
    Random { tear: bool },
    /// Each one that spans several sectors survives in part: some of its sectors and not
    /// the others. A write of one sector survives or not.
    Torn,
}

/// How the writes pending at a cut fared, over every file of the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fates {
    pub kept: usize,
    pub lost: usize,
    /// Writes of which some sectors survived and others did not.
    pub torn: usize,
    /// Torn writes to the main database file (during a checkpoint), rather than to the WAL.
    pub torn_in_database: usize,
}

/// What a cut left: the image of every file, and what happened to the unsynced writes.
#[derive(Debug, Clone)]
pub struct Cut {
    /// The operation the cut fell on (it and every later one failed).
    pub at_op: u64,
    pub fates: Fates,
    /// The last operation that synced each file before the cut, by file name.
    pub last_sync: HashMap<String, u64>,
    images: BTreeMap<String, Vec<u8>>,
}

/// One write or truncation a file received since its last sync, in order.
#[derive(Debug, Clone)]
enum Pending {
    Write { offset: usize, data: Vec<u8> },
    Truncate(usize),
}

/// One file: what survives a cut for sure, and what the running program reads.
#[derive(Debug, Default)]
struct File {
    /// The bytes as of the last sync.
    synced: Vec<u8>,
    /// The bytes as the program sees them: `synced` with `pending` applied.
    current: Vec<u8>,
    pending: Vec<Pending>,
}

pub(super) fn write_at(bytes: &mut Vec<u8>, offset: usize, data: &[u8]) {
    if bytes.len() < offset {
        // A hole: zeros, as a file system reads them.
        bytes.resize(offset, 0);
    }
    let overlap = (bytes.len() - offset).min(data.len());
    bytes[offset..offset + overlap].copy_from_slice(&data[..overlap]);
    bytes.extend_from_slice(&data[overlap..]);
}

impl File {
    fn with(bytes: Vec<u8>) -> File {
        File {
            synced: bytes.clone(),
            current: bytes,
            pending: Vec::new(),
        }
    }

    fn write(&mut self, offset: usize, data: &[u8]) {
        write_at(&mut self.current, offset, data);
        self.pending.push(Pending::Write {
            offset,
            data: data.to_vec(),
        });
    }

    fn truncate(&mut self, len: usize) {
        self.current.truncate(len);
        self.pending.push(Pending::Truncate(len));
    }

    fn sync(&mut self) {
        for pending in self.pending.drain(..) {
            match pending {
                Pending::Write { offset, data } => write_at(&mut self.synced, offset, &data),
                Pending::Truncate(len) => self.synced.truncate(len),
            }
        }
    }

    /// What a cut leaves of this file: the synced image, and of the pending writes what
    /// `unsynced` and `rng` choose, applied in the order they were made.
    fn after_cut(
        &self,
        unsynced: Unsynced,
        rng: &mut fastrand::Rng,
        database: bool,
        fates: &mut Fates,
    ) -> Vec<u8> {
        let mut image = self.synced.clone();
        for pending in &self.pending {
            match (pending, unsynced) {
                (_, Unsynced::Lost) => fates.lost += 1,
                (Pending::Truncate(len), _) => {
                    if rng.bool() {
                        image.truncate(*len);
                        fates.kept += 1;
                    } else {
                        fates.lost += 1;
                    }
                }
                (Pending::Write { offset, data }, _) => {
                    let sectors = sectors(*offset, data.len());
                    let fate = match unsynced {
                        Unsynced::Torn if sectors.len() > 1 => 2,
                        Unsynced::Random { tear } if tear && sectors.len() > 1 => rng.u8(0..4),
                        _ => rng.u8(0..2),
                    };
                    match fate {
                        0 => fates.lost += 1,
                        1 => {
                            write_at(&mut image, *offset, data);
                            fates.kept += 1;
                        }
                        _ => {
                            let mut kept: Vec<bool> = sectors.iter().map(|_| rng.bool()).collect();
                            if unsynced == Unsynced::Torn {
                                // Some sectors and not the others.
                                let n = kept.len();
                                let (one, other) = (rng.usize(0..n), rng.usize(1..n));
                                kept[one] = true;
                                kept[(one + other) % n] = false;
                            }
                            for (&(start, end), _) in
                                sectors.iter().zip(&kept).filter(|(_, kept)| **kept)
                            {
                                write_at(&mut image, offset + start, &data[start..end]);
                            }
                            if kept.iter().all(|k| *k) {
                                fates.kept += 1;
                            } else if kept.iter().any(|k| *k) {
                                fates.torn += 1;
                                fates.torn_in_database += usize::from(database);
                            } else {
                                fates.lost += 1;
                            }
                        }
                    }
                }
            }
        }
        image
    }
}

/// The sector-aligned pieces of a write of `len` bytes at `offset`, as ranges of the data.
fn sectors(offset: usize, len: usize) -> Vec<(usize, usize)> {
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < len {
        let next_boundary = (offset + start) / SECTOR * SECTOR + SECTOR;
        let end = (next_boundary - offset).min(len);
        pieces.push((start, end));
        start = end;
    }
    pieces
}

/// The shared memory (`-shm`) of one database: the WAL index, which SQLite's connections
/// read and write in place. Atomic words, so that SQLite writing them through the pointers
/// the VFS hands out aliases nothing Rust assumes unchanged. It is not on the disk: a cut
/// discards it and SQLite rebuilds it from the WAL, as it does after a reboot.
#[derive(Debug, Default)]
pub(super) struct Shm {
    pub(super) regions: Mutex<Vec<Box<[AtomicU64]>>>,
}

/// The locks of one file, between the connections of this process (SQLite's five levels).
#[derive(Debug, Default)]
pub(super) struct FileLocks {
    pub(super) shared: usize,
    pub(super) reserved: Option<u64>,
    pub(super) pending: Option<u64>,
    pub(super) exclusive: Option<u64>,
}

/// The locks on a WAL index's eight lock slots.
#[derive(Debug, Default)]
pub(super) struct ShmLocks {
    pub(super) shared: [usize; 8],
    pub(super) exclusive: [Option<u64>; 8],
}

/// A WAL index and how many connections have it mapped: the first to map it after none had
/// finds it empty (as SQLite's unix VFS empties the `-shm` file then).
#[derive(Debug)]
pub(super) struct MappedShm {
    pub(super) shm: Arc<Shm>,
    pub(super) users: usize,
    pub(super) locks: ShmLocks,
}

/// Where an armed cut falls: just before an operation, counted over every file of the disk
/// or over the main database files only (which, in WAL mode, only checkpoints of the WAL
/// write to, once the file exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    Op(u64),
    DatabaseOp(u64),
}

/// What a cut is armed with: where it falls, and how it treats pending writes.
#[derive(Debug, Clone, Copy)]
struct Armed {
    at: At,
    unsynced: Unsynced,
    seed: u64,
}

/// Whether `name` is a main database file (not a WAL or a rollback journal).
fn is_database(name: &str) -> bool {
    !name.ends_with("-wal") && !name.ends_with("-journal")
}

#[derive(Debug, Default)]
pub(super) struct DiskState {
    /// Bumped at each reboot: connections opened before it belong to the old power cycle and
    /// can do nothing more.
    pub(super) generation: u64,
    files: BTreeMap<String, File>,
    /// Writes, truncations and syncs so far (the clock a cut is placed on), and those of
    /// main database files.
    ops: u64,
    database_ops: u64,
    armed: Option<Armed>,
    /// Set by the cut: from then on every operation of this generation fails.
    cut: Option<Cut>,
    last_sync: HashMap<String, u64>,
    pub(super) locks: HashMap<String, FileLocks>,
    pub(super) shm: HashMap<String, MappedShm>,
    pub(super) next_handle: u64,
}

/// What the VFS is told when it asks to change a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Denied {
    /// The power is off (or the connection belongs to an earlier power cycle).
    PowerOff,
    /// There is no such file.
    Missing,
}

impl DiskState {
    /// Counts an operation that changes what is on the disk, and cuts the power first if the
    /// armed cut falls on it.
    fn tick(&mut self, generation: u64, name: &str) -> Result<u64, Denied> {
        if generation != self.generation || self.cut.is_some() {
            return Err(Denied::PowerOff);
        }
        let (op, database) = (self.ops, is_database(name));
        if let Some(armed) = self.armed {
            let due = match armed.at {
                At::Op(at) => at <= op,
                At::DatabaseOp(at) => database && at <= self.database_ops,
            };
            if due {
                self.cut_now(armed.unsynced, armed.seed);
                return Err(Denied::PowerOff);
            }
        }
        self.ops += 1;
        self.database_ops += u64::from(database);
        Ok(op)
    }

    fn cut_now(&mut self, unsynced: Unsynced, seed: u64) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut fates = Fates::default();
        let images = self
            .files
            .iter()
            .map(|(name, file)| {
                let database = is_database(name);
                (
                    name.clone(),
                    file.after_cut(unsynced, &mut rng, database, &mut fates),
                )
            })
            .collect();
        self.armed = None;
        self.cut = Some(Cut {
            at_op: self.ops,
            fates,
            last_sync: self.last_sync.clone(),
            images,
        });
    }

    pub(super) fn alive(&self, generation: u64) -> Result<(), Denied> {
        if generation != self.generation || self.cut.is_some() {
            return Err(Denied::PowerOff);
        }
        Ok(())
    }

    pub(super) fn exists(&self, name: &str) -> bool {
        self.files.contains_key(name)
    }

    pub(super) fn create(&mut self, name: &str) {
        self.files.entry(name.to_owned()).or_default();
    }

    /// Deleting is durable at once: a journaling file system's metadata, which SQLite's
    /// unix VFS also relies on for the WAL it deletes when the last connection closes.
    pub(super) fn delete(&mut self, generation: u64, name: &str) -> Result<(), Denied> {
        self.alive(generation)?;
        self.files.remove(name).map(drop).ok_or(Denied::Missing)
    }

    pub(super) fn len(&self, name: &str) -> Result<usize, Denied> {
        self.files
            .get(name)
            .map(|f| f.current.len())
            .ok_or(Denied::Missing)
    }

    pub(super) fn read(
        &self,
        generation: u64,
        name: &str,
        offset: usize,
        buf: &mut [u8],
    ) -> Result<usize, Denied> {
        self.alive(generation)?;
        let bytes = &self.files.get(name).ok_or(Denied::Missing)?.current;
        let available = bytes.len().saturating_sub(offset).min(buf.len());
        if available > 0 {
            buf[..available].copy_from_slice(&bytes[offset..offset + available]);
        }
        Ok(available)
    }

    pub(super) fn write(
        &mut self,
        generation: u64,
        name: &str,
        offset: usize,
        data: &[u8],
    ) -> Result<(), Denied> {
        self.tick(generation, name)?;
        self.files
            .get_mut(name)
            .ok_or(Denied::Missing)?
            .write(offset, data);
        Ok(())
    }

    pub(super) fn truncate(
        &mut self,
        generation: u64,
        name: &str,
        len: usize,
    ) -> Result<(), Denied> {
        self.tick(generation, name)?;
        self.files
            .get_mut(name)
            .ok_or(Denied::Missing)?
            .truncate(len);
        Ok(())
    }

    pub(super) fn sync(&mut self, generation: u64, name: &str) -> Result<(), Denied> {
        let op = self.tick(generation, name)?;
        self.files.get_mut(name).ok_or(Denied::Missing)?.sync();
        self.last_sync.insert(name.to_owned(), op);
        Ok(())
    }
}

/// A disk that SQLite's files live on in memory, each under its own directory name, and
/// whose power can be cut. Every SQLite connection of the test process goes through the
/// power-loss VFS (see `vfs.rs`), which finds its disk by the file's directory.
#[derive(Debug)]
pub struct Disk {
    dir: String,
    pub(super) state: Mutex<DiskState>,
}

/// The disks that exist, by directory name.
fn disks() -> &'static Mutex<HashMap<String, Weak<Disk>>> {
    static DISKS: OnceLock<Mutex<HashMap<String, Weak<Disk>>>> = OnceLock::new();
    DISKS.get_or_init(Default::default)
}

/// The disk that holds the file `name`, if any.
pub(super) fn disk_of(name: &str) -> Option<Arc<Disk>> {
    let (dir, _) = name.rsplit_once('/')?;
    disks().lock().unwrap().get(dir).and_then(Weak::upgrade)
}

impl Disk {
    /// A new, empty disk under the directory `/power-loss/<label>` (no real file is ever
    /// made); `label` must be unique among the disks alive at once.
    pub fn new(label: &str) -> Arc<Disk> {
        super::vfs::install();
        let dir = format!("/power-loss/{label}");
        let disk = Arc::new(Disk {
            dir: dir.clone(),
            state: Mutex::new(DiskState::default()),
        });
        let previous = disks().lock().unwrap().insert(dir, Arc::downgrade(&disk));
        assert!(
            previous.and_then(|d| d.upgrade()).is_none(),
            "two disks labelled `{label}`"
        );
        disk
    }

    /// The path of the file `name` on this disk.
    pub fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, DiskState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes, truncations and syncs made so far: a clock on which cuts are placed.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Writes, truncations and syncs of main database files made so far.
    pub fn database_ops(&self) -> u64 {
        self.lock().database_ops
    }

    /// Cuts the power just before the operation `at` names (it and every later one fail),
    /// treating the writes not yet synced as `unsynced` says, with choices drawn from `seed`.
    pub fn arm(&self, at: At, unsynced: Unsynced, seed: u64) {
        self.lock().armed = Some(Armed { at, unsynced, seed });
    }

    /// Cuts the power now, if no armed cut has already.
    pub fn cut(&self, unsynced: Unsynced, seed: u64) {
        let mut state = self.lock();
        if state.cut.is_none() {
            state.cut_now(unsynced, seed);
        }
    }

    /// Whether the power is off: the cut has happened, and the disk not rebooted yet.
    pub fn is_cut(&self) -> bool {
        self.lock().cut.is_some()
    }

    /// Powers the disk back on with what the cut left: the connections of before can do
    /// nothing more, new ones see each file as the cut left it, and no WAL index.
    pub fn reboot(&self) -> Cut {
        let mut state = self.lock();
        let cut = state.cut.take().expect("reboot after a cut");
        state.generation += 1;
        state.files = cut
            .images
            .iter()
            .map(|(name, bytes)| (name.clone(), File::with(bytes.clone())))
            .collect();
        state.locks.clear();
        state.shm.clear();
        state.last_sync.clear();
        cut
    }

    /// The bytes of file `name` as the running program sees them.
    pub fn contents(&self, name: &str) -> Option<Vec<u8>> {
        self.lock()
            .files
            .get(&self.path(name))
            .map(|f| f.current.clone())
    }

    /// Replaces file `name` with `bytes`, synced (what a disk that tore a write it had
    /// reported done would leave). Only while no connection has the file open.
    pub fn overwrite(&self, name: &str, bytes: Vec<u8>) {
        self.lock().files.insert(self.path(name), File::with(bytes));
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        let mut disks = disks().lock().unwrap_or_else(|e| e.into_inner());
        if disks.get(&self.dir).is_some_and(|d| d.upgrade().is_none()) {
            disks.remove(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sectors_split_at_disk_boundaries() {
        assert_eq!(sectors(0, 1024), vec![(0, 512), (512, 1024)]);
        assert_eq!(sectors(500, 30), vec![(0, 12), (12, 30)]);
        assert_eq!(sectors(512, 100), vec![(0, 100)]);
    }
}
