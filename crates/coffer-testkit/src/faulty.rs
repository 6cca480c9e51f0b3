//! A [`Storage`] wrapper that fails on demand: for faults a real target
//! cannot give when a test wants them (a lock refresh that keeps failing
//! while everything else works, a full disk on one kind of object). Each
//! rule names the operations and the key prefix it applies to, the error
//! kind to answer with and how many times (or for ever); operations no rule
//! matches go to the wrapped storage.

use std::sync::{Arc, Mutex};

use coffer_targets::{ObjectInfo, Storage, StorageError, StorageErrorKind, StorageResult};

/// An operation a rule can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `put` and `put_parts`.
    Put,
    /// `get`, `get_range` and `get_ranges`.
    Get,
    /// `list`.
    List,
    /// `delete`.
    Delete,
}

/// One injected fault.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The operations it applies to.
    pub ops: Vec<Op>,
    /// Keys starting with this ("" for every key).
    pub prefix: String,
    /// What the failure looks like to the caller.
    pub kind: StorageErrorKind,
    /// How many more times it fires (`None`: until [`FaultyStorage::heal`]).
    pub times: Option<u64>,
}

impl Rule {
    /// Fails `ops` on keys under `prefix` with `kind` until healed.
    pub fn always(ops: &[Op], prefix: &str, kind: StorageErrorKind) -> Self {
        Self {
            ops: ops.to_vec(),
            prefix: prefix.to_owned(),
            kind,
            times: None,
        }
    }
}

/// The wrapper (see the module's documentation).
#[derive(Debug)]
pub struct FaultyStorage {
    inner: Arc<dyn Storage>,
    rules: Mutex<Vec<Rule>>,
    fired: Mutex<u64>,
}

impl FaultyStorage {
    /// Wraps `inner`, with no fault yet.
    pub fn new(inner: Arc<dyn Storage>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            rules: Mutex::new(Vec::new()),
            fired: Mutex::new(0),
        })
    }

    /// Adds a fault.
    pub fn inject(&self, rule: Rule) {
        self.rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(rule);
    }

    /// Removes every fault.
    pub fn heal(&self) {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// How many operations failed by a rule so far.
    pub fn fired(&self) -> u64 {
        *self.fired.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check(&self, op: Op, key: &str, name: &'static str) -> StorageResult<()> {
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        let Some(i) = rules
            .iter()
            .position(|r| r.ops.contains(&op) && key.starts_with(&r.prefix))
        else {
            return Ok(());
        };
        let kind = rules[i].kind;
        if let Some(n) = &mut rules[i].times {
            *n = n.saturating_sub(1);
            if *n == 0 {
                rules.remove(i);
            }
        }
        *self.fired.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Err(StorageError::new(
            kind,
            &self.inner.location(),
            name,
            key,
            "injected fault",
        ))
    }
}

impl Storage for FaultyStorage {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn put_parts(&self, key: &str, parts: &[&[u8]]) -> StorageResult<()> {
        self.check(Op::Put, key, "put")?;
        self.inner.put_parts(key, parts)
    }

    fn get(&self, key: &str) -> StorageResult<Vec<u8>> {
        self.check(Op::Get, key, "get")?;
        self.inner.get(key)
    }

    fn get_range(&self, key: &str, offset: u64, length: u64) -> StorageResult<Vec<u8>> {
        self.check(Op::Get, key, "get_range")?;
        self.inner.get_range(key, offset, length)
    }

    fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectInfo>> {
        self.check(Op::List, prefix, "list")?;
        self.inner.list(prefix)
    }

    fn delete(&self, key: &str) -> StorageResult<()> {
        self.check(Op::Delete, key, "delete")?;
        self.inner.delete(key)
    }

    fn parallel_reads(&self) -> usize {
        self.inner.parallel_reads()
    }

    fn parallel_writes(&self) -> usize {
        self.inner.parallel_writes()
    }

    fn ensure_prefix(&self, prefix: &str) -> StorageResult<()> {
        self.inner.ensure_prefix(prefix)
    }
}
