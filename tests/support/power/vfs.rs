//! The power-loss VFS: SQLite's files on the simulated [`Disk`]s, registered as the process's
//! default VFS (so that `SqliteStore::open` uses it with no option), through the
//! `sqlite-plugin` crate, which keeps every `unsafe` FFI detail on its side.
//!
//! It does what SQLite's unix VFS does for files on one host, in memory: byte-range file
//! locks become a lock table per file, the memory-mapped `-shm` file becomes regions shared
//! by every connection of the database. It tells SQLite what the unix VFS tells it on Linux
//! (4 KiB sectors, `POWERSAFE_OVERWRITE`: a write leaves the bytes around it alone), and a
//! torn write honours that: only the bytes written can change.

use std::borrow::Cow;
use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Once};

use sqlite_plugin::flags::{AccessFlags, CreateMode, LockLevel, OpenMode, OpenOpts, ShmLockMode};
use sqlite_plugin::vars;
use sqlite_plugin::vfs::{RegisterOpts, Vfs, VfsHandle, VfsResult, register_static};

use super::disk::{Denied, Disk, FileLocks, MappedShm, Shm, ShmLocks, disk_of, write_at};

const NAME: &str = "power-loss";

/// Registers the VFS as SQLite's default, once per process.
pub(super) fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        register_static(
            CString::new(NAME).expect("no NUL"),
            PowerLossVfs,
            RegisterOpts { make_default: true },
        )
        .unwrap_or_else(|code| panic!("registering the power-loss VFS failed with {code}"));
    });
}

struct PowerLossVfs;

/// A file SQLite opened.
pub(super) enum Handle {
    /// A file on a disk.
    OnDisk(OnDisk),
    /// A temporary file without a name (statement journals, sorting): private to its
    /// connection and gone when closed, so never on the disk.
    Temporary(Vec<u8>),
}

pub(super) struct OnDisk {
    disk: Arc<Disk>,
    name: String,
    generation: u64,
    id: u64,
    lock: LockLevel,
    /// The WAL index, once this connection has mapped it (main database files only).
    shm: Option<Arc<Shm>>,
    /// The WAL index lock slots this connection holds, as bit masks.
    shm_shared: u8,
    shm_exclusive: u8,
    delete_on_close: bool,
}

impl VfsHandle for Handle {
    fn readonly(&self) -> bool {
        false
    }

    fn in_memory(&self) -> bool {
        false
    }
}

fn io_error(denied: Denied, code: i32) -> i32 {
    match denied {
        Denied::PowerOff => code,
        Denied::Missing => vars::SQLITE_IOERR,
    }
}

impl OnDisk {
    /// Releases what the connection holds in the lock tables (when it closes, or unlocks).
    fn unlock_to(&mut self, level: LockLevel) {
        let mut state = self.disk.lock();
        if state.generation == self.generation
            && let Some(locks) = state.locks.get_mut(&self.name)
        {
            if self.lock > LockLevel::Shared && level <= LockLevel::Shared {
                for holder in [
                    &mut locks.reserved,
                    &mut locks.pending,
                    &mut locks.exclusive,
                ] {
                    if *holder == Some(self.id) {
                        *holder = None;
                    }
                }
            }
            if self.lock >= LockLevel::Shared && level == LockLevel::Unlocked {
                locks.shared -= 1;
            }
        }
        self.lock = self.lock.min(level);
    }

    fn unmap_shm(&mut self) {
        let Some(shm) = self.shm.take() else {
            return;
        };
        let mut state = self.disk.lock();
        if state.generation != self.generation {
            return;
        }
        if let Some(mapped) = state.shm.get_mut(&self.name)
            && Arc::ptr_eq(&mapped.shm, &shm)
        {
            for slot in 0..8 {
                if self.shm_shared & (1 << slot) != 0 {
                    mapped.locks.shared[slot] -= 1;
                }
                if self.shm_exclusive & (1 << slot) != 0 {
                    mapped.locks.exclusive[slot] = None;
                }
            }
            mapped.users -= 1;
            if mapped.users == 0 {
                state.shm.remove(&self.name);
            }
        }
        self.shm_shared = 0;
        self.shm_exclusive = 0;
    }
}

impl Vfs for PowerLossVfs {
    type Handle = Handle;

    fn canonical_path<'a>(&self, path: Cow<'a, str>) -> VfsResult<Cow<'a, str>> {
        Ok(path)
    }

    fn open(&self, path: Option<&str>, opts: OpenOpts) -> VfsResult<Handle> {
        let Some(name) = path else {
            return Ok(Handle::Temporary(Vec::new()));
        };
        let disk = disk_of(name).ok_or(vars::SQLITE_CANTOPEN)?;
        let mut state = disk.lock();
        let exists = state.exists(name);
        let may_create = match opts.mode() {
            OpenMode::ReadWrite { create } => create != CreateMode::None,
            OpenMode::ReadOnly => false,
        };
        if state.alive(state.generation).is_err()
            || (exists && opts.mode().must_create())
            || (!exists && !may_create)
        {
            return Err(vars::SQLITE_CANTOPEN);
        }
        state.create(name);
        let id = state.next_handle;
        state.next_handle += 1;
        let generation = state.generation;
        drop(state);
        Ok(Handle::OnDisk(OnDisk {
            disk,
            name: name.to_owned(),
            generation,
            id,
            lock: LockLevel::Unlocked,
            shm: None,
            shm_shared: 0,
            shm_exclusive: 0,
            delete_on_close: opts.delete_on_close(),
        }))
    }

    fn delete(&self, path: &str) -> VfsResult<()> {
        let disk = disk_of(path).ok_or(vars::SQLITE_IOERR_DELETE)?;
        let mut state = disk.lock();
        let generation = state.generation;
        state
            .delete(generation, path)
            .map_err(|denied| match denied {
                Denied::Missing => vars::SQLITE_IOERR_DELETE_NOENT,
                Denied::PowerOff => vars::SQLITE_IOERR_DELETE,
            })
    }

    fn access(&self, path: &str, _flags: AccessFlags) -> VfsResult<bool> {
        Ok(disk_of(path).is_some_and(|disk| disk.lock().exists(path)))
    }

    fn file_size(&self, handle: &mut Handle) -> VfsResult<usize> {
        match handle {
            Handle::Temporary(bytes) => Ok(bytes.len()),
            Handle::OnDisk(file) => {
                let state = file.disk.lock();
                state
                    .alive(file.generation)
                    .and_then(|()| state.len(&file.name))
                    .map_err(|d| io_error(d, vars::SQLITE_IOERR_FSTAT))
            }
        }
    }

    fn truncate(&self, handle: &mut Handle, size: usize) -> VfsResult<()> {
        match handle {
            Handle::Temporary(bytes) => {
                bytes.truncate(size);
                Ok(())
            }
            Handle::OnDisk(file) => file
                .disk
                .lock()
                .truncate(file.generation, &file.name, size)
                .map_err(|d| io_error(d, vars::SQLITE_IOERR_TRUNCATE)),
        }
    }

    fn write(&self, handle: &mut Handle, offset: usize, data: &[u8]) -> VfsResult<usize> {
        match handle {
            Handle::Temporary(bytes) => write_at(bytes, offset, data),
            Handle::OnDisk(file) => file
                .disk
                .lock()
                .write(file.generation, &file.name, offset, data)
                .map_err(|d| io_error(d, vars::SQLITE_IOERR_WRITE))?,
        }
        Ok(data.len())
    }

    fn read(&self, handle: &mut Handle, offset: usize, data: &mut [u8]) -> VfsResult<usize> {
        match handle {
            Handle::Temporary(bytes) => {
                let available = bytes.len().saturating_sub(offset).min(data.len());
                if available > 0 {
                    data[..available].copy_from_slice(&bytes[offset..offset + available]);
                }
                Ok(available)
            }
            Handle::OnDisk(file) => file
                .disk
                .lock()
                .read(file.generation, &file.name, offset, data)
                .map_err(|d| io_error(d, vars::SQLITE_IOERR_READ)),
        }
    }

    fn sync(&self, handle: &mut Handle) -> VfsResult<()> {
        match handle {
            Handle::Temporary(_) => Ok(()),
            Handle::OnDisk(file) => file
                .disk
                .lock()
                .sync(file.generation, &file.name)
                .map_err(|d| io_error(d, vars::SQLITE_IOERR_FSYNC)),
        }
    }

    fn lock(&self, handle: &mut Handle, level: LockLevel) -> VfsResult<()> {
        let Handle::OnDisk(file) = handle else {
            return Ok(());
        };
        if file.lock >= level {
            return Ok(());
        }
        let mut state = file.disk.lock();
        state
            .alive(file.generation)
            .map_err(|_| vars::SQLITE_IOERR_LOCK)?;
        let locks: &mut FileLocks = state.locks.entry(file.name.clone()).or_default();
        let me = Some(file.id);
        let other = |holder: Option<u64>| holder.is_some() && holder != me;
        match level {
            LockLevel::Unlocked => {}
            LockLevel::Shared => {
                if other(locks.pending) || other(locks.exclusive) {
                    return Err(vars::SQLITE_BUSY);
                }
                locks.shared += 1;
            }
            LockLevel::Reserved => {
                if other(locks.reserved) || other(locks.pending) || other(locks.exclusive) {
                    return Err(vars::SQLITE_BUSY);
                }
                locks.reserved = me;
            }
            LockLevel::Pending | LockLevel::Exclusive => {
                if other(locks.pending) || other(locks.exclusive) || other(locks.reserved) {
                    return Err(vars::SQLITE_BUSY);
                }
                // Pending first: no new reader gets in while the others finish.
                locks.pending = me;
                if level == LockLevel::Pending || locks.shared > 1 {
                    file.lock = LockLevel::Pending;
                    return if level == LockLevel::Pending {
                        Ok(())
                    } else {
                        Err(vars::SQLITE_BUSY)
                    };
                }
                locks.exclusive = me;
            }
        }
        file.lock = level;
        Ok(())
    }

    fn unlock(&self, handle: &mut Handle, level: LockLevel) -> VfsResult<()> {
        if let Handle::OnDisk(file) = handle {
            file.unlock_to(level);
        }
        Ok(())
    }

    fn check_reserved_lock(&self, handle: &mut Handle) -> VfsResult<bool> {
        let Handle::OnDisk(file) = handle else {
            return Ok(false);
        };
        let state = file.disk.lock();
        Ok(state.locks.get(&file.name).is_some_and(|locks| {
            locks.reserved.is_some() || locks.pending.is_some() || locks.exclusive.is_some()
        }))
    }

    fn close(&self, handle: Handle) -> VfsResult<()> {
        if let Handle::OnDisk(mut file) = handle {
            file.unmap_shm();
            file.unlock_to(LockLevel::Unlocked);
            if file.delete_on_close {
                let mut state = file.disk.lock();
                let _ = state.delete(file.generation, &file.name);
            }
        }
        Ok(())
    }

    fn device_characteristics(&self, _handle: &mut Handle) -> VfsResult<i32> {
        Ok(vars::SQLITE_IOCAP_POWERSAFE_OVERWRITE)
    }

    fn sector_size(&self, _handle: &mut Handle) -> VfsResult<i32> {
        Ok(4096)
    }

    fn shm_map(
        &self,
        handle: &mut Handle,
        region: usize,
        region_size: usize,
        extend: bool,
    ) -> VfsResult<Option<NonNull<u8>>> {
        let Handle::OnDisk(file) = handle else {
            return Err(vars::SQLITE_IOERR_SHMMAP);
        };
        let shm = match &file.shm {
            Some(shm) => Arc::clone(shm),
            None => {
                let mut state = file.disk.lock();
                state
                    .alive(file.generation)
                    .map_err(|_| vars::SQLITE_IOERR_SHMMAP)?;
                let mapped = state
                    .shm
                    .entry(file.name.clone())
                    .or_insert_with(|| MappedShm {
                        shm: Arc::default(),
                        users: 0,
                        locks: ShmLocks::default(),
                    });
                mapped.users += 1;
                file.shm = Some(Arc::clone(&mapped.shm));
                Arc::clone(&mapped.shm)
            }
        };
        let mut regions = shm.regions.lock().unwrap();
        if regions.len() <= region {
            if !extend {
                return Ok(None);
            }
            while regions.len() <= region {
                let words = region_size.div_ceil(8);
                regions.push((0..words).map(|_| AtomicU64::new(0)).collect());
            }
        }
        // The region's bytes never move (a boxed slice) and live as long as `shm`, which this
        // connection holds until SQLite unmaps it.
        Ok(NonNull::new(
            regions[region].as_ptr().cast::<u8>().cast_mut(),
        ))
    }

    fn shm_lock(
        &self,
        handle: &mut Handle,
        offset: u32,
        count: u32,
        mode: ShmLockMode,
    ) -> VfsResult<()> {
        let Handle::OnDisk(file) = handle else {
            return Err(vars::SQLITE_IOERR_SHMLOCK);
        };
        let mask: u8 = (offset..offset + count).fold(0, |mask, slot| mask | (1 << slot));
        let mut state = file.disk.lock();
        let alive = state.alive(file.generation).is_ok();
        let Some(mapped) = state.shm.get_mut(&file.name).filter(|_| alive) else {
            // Unlocking after the power went off: nothing to release.
            return match mode {
                ShmLockMode::UnlockShared | ShmLockMode::UnlockExclusive => Ok(()),
                _ => Err(vars::SQLITE_IOERR_SHMLOCK),
            };
        };
        let locks = &mut mapped.locks;
        let slots = || (0..8).filter(move |slot| mask & (1 << slot) != 0);
        match mode {
            ShmLockMode::LockShared => {
                if slots().any(|s| locks.exclusive[s].is_some_and(|h| h != file.id)) {
                    return Err(vars::SQLITE_BUSY);
                }
                for s in slots().filter(|s| file.shm_shared & (1 << s) == 0) {
                    locks.shared[s] += 1;
                }
                file.shm_shared |= mask;
            }
            ShmLockMode::LockExclusive => {
                let mine = |s: usize| usize::from(file.shm_shared & (1 << s) != 0);
                if slots().any(|s| {
                    locks.exclusive[s].is_some_and(|h| h != file.id) || locks.shared[s] > mine(s)
                }) {
                    return Err(vars::SQLITE_BUSY);
                }
                for s in slots() {
                    locks.exclusive[s] = Some(file.id);
                }
                file.shm_exclusive |= mask;
            }
            ShmLockMode::UnlockShared => {
                for s in slots().filter(|s| file.shm_shared & (1 << s) != 0) {
                    locks.shared[s] -= 1;
                }
                file.shm_shared &= !mask;
            }
            ShmLockMode::UnlockExclusive => {
                for s in slots().filter(|s| file.shm_exclusive & (1 << s) != 0) {
                    locks.exclusive[s] = None;
                }
                file.shm_exclusive &= !mask;
            }
        }
        Ok(())
    }

    fn shm_barrier(&self, _handle: &mut Handle) {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    }

    fn shm_unmap(&self, handle: &mut Handle, _delete: bool) -> VfsResult<()> {
        if let Handle::OnDisk(file) = handle {
            file.unmap_shm();
        }
        Ok(())
    }
}
