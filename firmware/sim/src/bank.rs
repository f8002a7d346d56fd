//! The simulated device memory: four Modbus tables per unit id, plus the fault plan.
//!
//! A `Bank` is a cheap, cloneable handle (`Arc` inside) so a test can keep one
//! copy, hand another to a [`crate::SimServer`], and poke values or faults while
//! clients are connected. Registers are stored sparsely in per-unit `BTreeMap`s:
//! a benchmark with hundreds of units times a hundred points costs only the points
//! actually set, and a range read is one ordered walk instead of N hash lookups.
//! Unset addresses read as 0 / false, like a device with zero-initialised RAM.
//!
//! Locks are `std::sync::RwLock`s held only for the copy in or out of a request,
//! never across an `.await`, so many connections can read concurrently.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// One of the four Modbus data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// Holding registers (FC3 read, FC6/FC16 write).
    Holding,
    /// Input registers (FC4 read).
    Input,
    /// Coils (FC1 read, FC5/FC15 write).
    Coil,
    /// Discrete inputs (FC2 read).
    Discrete,
}

/// Sparse storage of one unit's tables. Bits are stored as `u16` 0/1 so all four
/// tables share one map type and one code path.
#[derive(Default)]
struct UnitTables {
    tables: [BTreeMap<u16, u16>; 4],
}

impl UnitTables {
    fn table(&self, table: Table) -> &BTreeMap<u16, u16> {
        &self.tables[table_index(table)]
    }

    fn table_mut(&mut self, table: Table) -> &mut BTreeMap<u16, u16> {
        &mut self.tables[table_index(table)]
    }
}

fn table_index(table: Table) -> usize {
    match table {
        Table::Holding => 0,
        Table::Input => 1,
        Table::Coil => 2,
        Table::Discrete => 3,
    }
}

/// An exception injected with [`Bank::add_exception`].
#[derive(Debug, Clone, Copy)]
struct InjectedException {
    unit: u8,
    function: u8,
    start: u16,
    count: u16,
    code: u8,
}

/// How a serial (RTU) answer is damaged on its way out, to test the master's resynchronisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Corruption {
    #[default]
    None,
    /// The CRC is wrong.
    BadCrc,
    /// Only the first half of the frame is sent.
    Truncate,
}

#[derive(Default)]
struct Faults {
    corruption: HashMap<u8, Corruption>,
    ignore_writes: HashSet<u8>,
    delay_all: Duration,
    delay_unit: HashMap<u8, Duration>,
    silent: HashSet<u8>,
    exceptions: Vec<InjectedException>,
}

#[derive(Default)]
struct Inner {
    units: RwLock<HashMap<u8, UnitTables>>,
    faults: RwLock<Faults>,
    requests: AtomicU64,
}

/// Shared register banks and fault plan, keyed by unit id (slave id).
#[derive(Clone, Default)]
pub struct Bank {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Bank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bank")
            .field("requests", &self.requests())
            .finish_non_exhaustive()
    }
}

// Nothing panics while a lock is held, but a poisoned lock must never take the
// simulator down: recover the guard either way.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

impl Bank {
    /// An empty bank: every address of every unit reads as zero, no faults.
    pub fn new() -> Bank {
        Bank::default()
    }

    /// Set one value in any table (bits: nonzero = on).
    pub fn set(&self, unit: u8, table: Table, addr: u16, value: u16) {
        let value = normalise(table, value);
        write(&self.inner.units)
            .entry(unit)
            .or_default()
            .table_mut(table)
            .insert(addr, value);
    }

    /// Read one value from any table (bits read as 0/1).
    pub fn get(&self, unit: u8, table: Table, addr: u16) -> u16 {
        read(&self.inner.units)
            .get(&unit)
            .and_then(|t| t.table(table).get(&addr).copied())
            .unwrap_or(0)
    }

    /// Set consecutive values starting at `addr`; values past address 65535 are dropped.
    fn set_many(&self, unit: u8, table: Table, addr: u16, values: impl Iterator<Item = u16>) {
        let mut units = write(&self.inner.units);
        let map = units.entry(unit).or_default().table_mut(table);
        for (a, v) in (addr..=u16::MAX).zip(values) {
            map.insert(a, normalise(table, v));
        }
    }

    /// Set one holding register.
    pub fn set_holding(&self, unit: u8, addr: u16, value: u16) {
        self.set(unit, Table::Holding, addr, value);
    }

    /// Set consecutive holding registers starting at `addr`.
    pub fn set_holdings(&self, unit: u8, addr: u16, values: &[u16]) {
        self.set_many(unit, Table::Holding, addr, values.iter().copied());
    }

    /// Set one input register.
    pub fn set_input(&self, unit: u8, addr: u16, value: u16) {
        self.set(unit, Table::Input, addr, value);
    }

    /// Set consecutive input registers starting at `addr`.
    pub fn set_inputs(&self, unit: u8, addr: u16, values: &[u16]) {
        self.set_many(unit, Table::Input, addr, values.iter().copied());
    }

    /// Set one coil.
    pub fn set_coil(&self, unit: u8, addr: u16, value: bool) {
        self.set(unit, Table::Coil, addr, u16::from(value));
    }

    /// Set one discrete input.
    pub fn set_discrete(&self, unit: u8, addr: u16, value: bool) {
        self.set(unit, Table::Discrete, addr, u16::from(value));
    }

    /// Current holding register value (0 if never set).
    pub fn holding(&self, unit: u8, addr: u16) -> u16 {
        self.get(unit, Table::Holding, addr)
    }

    /// Current input register value (0 if never set).
    pub fn input(&self, unit: u8, addr: u16) -> u16 {
        self.get(unit, Table::Input, addr)
    }

    /// Current coil state (false if never set).
    pub fn coil(&self, unit: u8, addr: u16) -> bool {
        self.get(unit, Table::Coil, addr) != 0
    }

    /// Current discrete input state (false if never set).
    pub fn discrete(&self, unit: u8, addr: u16) -> bool {
        self.get(unit, Table::Discrete, addr) != 0
    }

    // ---- fault injection -------------------------------------------------

    /// Delay every answer. `None` sets the delay of all units (and drops any
    /// per-unit setting); `Some(unit)` overrides it for one unit. The last call
    /// covering a unit wins; `Duration::ZERO` means "answer immediately".
    pub fn set_delay(&self, unit: Option<u8>, delay: Duration) {
        let mut faults = write(&self.inner.faults);
        match unit {
            None => {
                faults.delay_all = delay;
                faults.delay_unit.clear();
            }
            Some(unit) => {
                faults.delay_unit.insert(unit, delay);
            }
        }
    }

    /// Make a unit dead: its requests are read, counted and never answered.
    pub fn set_silent(&self, unit: u8, silent: bool) {
        let mut faults = write(&self.inner.faults);
        if silent {
            faults.silent.insert(unit);
        } else {
            faults.silent.remove(&unit);
        }
    }

    /// Answer any request with function `function` to `unit` whose address range
    /// overlaps `[start, start + count)` with exception `code`.
    pub fn add_exception(&self, unit: u8, function: u8, start: u16, count: u16, code: u8) {
        write(&self.inner.faults)
            .exceptions
            .push(InjectedException {
                unit,
                function,
                start,
                count,
                code,
            });
    }

    /// Damage every serial answer of `unit` (TCP answers are not affected).
    pub fn set_corruption(&self, unit: u8, corruption: Corruption) {
        write(&self.inner.faults)
            .corruption
            .insert(unit, corruption);
    }

    /// Acknowledge writes to `unit` without applying them (a device in local mode, a
    /// write-protected register): the master's read-back must catch it.
    pub fn set_ignore_writes(&self, unit: u8, ignore: bool) {
        let mut f = write(&self.inner.faults);
        if ignore {
            f.ignore_writes.insert(unit);
        } else {
            f.ignore_writes.remove(&unit);
        }
    }

    pub(crate) fn ignores_writes(&self, unit: u8) -> bool {
        read(&self.inner.faults).ignore_writes.contains(&unit)
    }

    pub(crate) fn corruption(&self, unit: u8) -> Corruption {
        read(&self.inner.faults)
            .corruption
            .get(&unit)
            .copied()
            .unwrap_or_default()
    }

    /// Remove every delay, silent unit and injected exception (values stay).
    pub fn clear_faults(&self) {
        *write(&self.inner.faults) = Faults::default();
    }

    /// Total requests handled (answered, excepted or dropped) since creation.
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    // ---- crate-internal access for the PDU engine -------------------------

    pub(crate) fn count_request(&self) {
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn is_silent(&self, unit: u8) -> bool {
        read(&self.inner.faults).silent.contains(&unit)
    }

    /// How long to wait before answering `unit`; zero for silent units, which
    /// are never answered so there is nothing to wait for.
    pub(crate) fn response_delay(&self, unit: u8) -> Duration {
        let faults = read(&self.inner.faults);
        if faults.silent.contains(&unit) {
            return Duration::ZERO;
        }
        faults
            .delay_unit
            .get(&unit)
            .copied()
            .unwrap_or(faults.delay_all)
    }

    /// The injected exception code for this request, if any (first match wins).
    pub(crate) fn injected_exception(
        &self,
        unit: u8,
        function: u8,
        start: u16,
        count: u16,
    ) -> Option<u8> {
        let faults = read(&self.inner.faults);
        let req_start = u32::from(start);
        let req_end = req_start + u32::from(count);
        faults
            .exceptions
            .iter()
            .find(|e| {
                let inj_start = u32::from(e.start);
                let inj_end = inj_start + u32::from(e.count);
                e.unit == unit
                    && e.function == function
                    && req_start < inj_end
                    && inj_start < req_end
            })
            .map(|e| e.code)
    }

    /// Copy `count` values starting at `start` into `out` (zeros for gaps).
    /// The caller has validated that the range does not pass 65535.
    pub(crate) fn read_range(
        &self,
        unit: u8,
        table: Table,
        start: u16,
        count: u16,
        out: &mut [u16],
    ) {
        out.iter_mut().for_each(|v| *v = 0);
        let units = read(&self.inner.units);
        let Some(tables) = units.get(&unit) else {
            return;
        };
        if count == 0 {
            return;
        }
        // Saturating: an unvalidated range is clipped at 65535, never wrapped.
        let last = start.saturating_add(count - 1);
        for (&addr, &value) in tables.table(table).range(start..=last) {
            if let Some(slot) = out.get_mut(usize::from(addr - start)) {
                *slot = value;
            }
        }
    }

    /// Store consecutive values starting at `start` in one lock acquisition.
    pub(crate) fn write_range(&self, unit: u8, table: Table, start: u16, values: &[u16]) {
        self.set_many(unit, table, start, values.iter().copied());
    }
}

fn normalise(table: Table, value: u16) -> u16 {
    match table {
        Table::Coil | Table::Discrete => u16::from(value != 0),
        Table::Holding | Table::Input => value,
    }
}

#[cfg(test)]
mod tests;
