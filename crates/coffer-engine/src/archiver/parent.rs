//! The parent snapshot's trees, walked alongside the source: a file whose
//! size, modification time, change time and inode are those of its entry
//! in the parent is not read again (restic's rule), its content is taken
//! from the parent.

use std::cmp::Ordering;
use std::ffi::OsStr;

use rustic_core::Id;
use rustic_core::repofile::{Node, NodeType, Tree};

use super::index::Known;
use crate::EngineResult;
use crate::fetch::Fetcher;

/// How an entry compares with the parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Match {
    /// Not in the parent.
    New,
    /// In the parent, but changed.
    Changed,
    /// In the parent, unchanged.
    Unchanged,
}

/// A cursor over one parent directory's entries (sorted by name, like the
/// walk).
struct Cursor {
    tree: Tree,
    next: usize,
}

impl Cursor {
    fn find(&mut self, name: &OsStr) -> Option<&Node> {
        while let Some(node) = self.tree.nodes.get(self.next) {
            match (*node.name()).cmp(name) {
                Ordering::Less => self.next += 1,
                Ordering::Equal => return self.tree.nodes.get(self.next),
                Ordering::Greater => return None,
            }
        }
        None
    }
}

/// The parent's directory at the walk's position (`None` where the parent
/// has no such directory).
pub(crate) struct Parent<'a> {
    known: &'a Known,
    fetcher: &'a Fetcher,
    current: Option<Cursor>,
    stack: Vec<Option<Cursor>>,
}

/// restic's test for an unchanged file.
fn unchanged(old: &Node, new: &Node) -> bool {
    let (o, n) = (&old.meta, &new.meta);
    old.node_type == new.node_type
        && o.size == n.size
        && o.mtime == n.mtime
        && o.ctime.zip(n.ctime).is_none_or(|(a, b)| a == b)
        && (o.inode == 0 || n.inode == 0 || o.inode == n.inode)
}

impl<'a> Parent<'a> {
    /// Starts at the parent snapshot's root tree (none: everything is new).
    pub(crate) fn new(
        known: &'a Known,
        fetcher: &'a Fetcher,
        root: Option<rustic_core::Id>,
    ) -> EngineResult<Self> {
        let current = root
            .map(|id| known.read_tree(fetcher, id))
            .transpose()?
            .map(|tree| Cursor { tree, next: 0 });
        Ok(Self {
            known,
            fetcher,
            current,
            stack: Vec::new(),
        })
    }

    /// Compares the file `node` with its parent entry; an unchanged file
    /// gets the parent's content (when every blob of it is still held), a
    /// changed one comes with its parent chunks (ids and plain lengths) as
    /// hints for the chunker.
    pub(crate) fn file(&mut self, node: &mut Node) -> (Match, Option<Vec<(Id, u32)>>) {
        let Some(old) = self.current.as_mut().and_then(|c| c.find(&node.name())) else {
            return (Match::New, None);
        };
        if !unchanged(old, node) {
            let chunks = old
                .content
                .as_deref()
                .filter(|_| old.node_type == NodeType::File && node.node_type == NodeType::File)
                .and_then(|content| {
                    let lengths = self.known.data_lengths(content)?;
                    Some(content.iter().map(|c| **c).zip(lengths).collect())
                });
            return (Match::Changed, chunks);
        }
        let matched = match &old.content {
            Some(content) if self.known.has_all_data(content) => {
                node.content = Some(content.clone());
                Match::Unchanged
            }
            // Pruned since, or not a regular file: read it again.
            Some(_) => Match::Changed,
            None => Match::Unchanged,
        };
        (matched, None)
    }

    /// Enters the directory `node`: the parent's subtree of the same name
    /// becomes the current one. Returns the parent subtree's id, to tell an
    /// unchanged directory.
    pub(crate) fn enter(&mut self, node: &Node) -> EngineResult<(Match, Option<rustic_core::Id>)> {
        let old = self
            .current
            .as_mut()
            .and_then(|c| c.find(&node.name()))
            .filter(|old| old.is_dir())
            .and_then(|old| old.subtree);
        let next = old
            .map(|id| self.known.read_tree(self.fetcher, *id))
            .transpose()?
            .map(|tree| Cursor { tree, next: 0 });
        self.stack.push(std::mem::replace(&mut self.current, next));
        Ok(match old {
            Some(id) => (Match::Changed, Some(*id)),
            None => (Match::New, None),
        })
    }

    /// Leaves the current directory.
    pub(crate) fn leave(&mut self) {
        self.current = self.stack.pop().flatten();
    }
}
