//! Trees: the walk's entries, in walk order, become restic tree blobs.
//!
//! Files are read by other threads while the walk goes on; the assembler
//! takes the entries in order and waits for each file's content list where
//! it is not there yet. A directory's tree is stored when the directory
//! ends, so every tree names its subtrees by id, as restic's do.

use std::sync::mpsc::Receiver;

use rustic_core::repofile::{BlobType, Node, NodeType, SnapshotSummary, Tree};
use rustic_core::{DataId, Id};

use super::index::Known;
use super::pack::{OpenPack, Sealer};
use super::parent::Match;
use super::{Sink, TREE_PACK_SIZE};
use crate::{EngineError, EngineResult};

/// A file's content list and size as a reader made it; `None` when the
/// file could not be read (the gate holds the reason).
pub(crate) type FileResult = Option<(Vec<DataId>, u64)>;

/// One step of the walk, in order.
pub(crate) enum Event {
    /// A directory starts (its node, how it compares with the parent, and
    /// the parent's subtree id).
    Enter(Node, Match, Option<Id>),
    /// The current directory ends.
    Leave,
    /// A non-directory entry; files being read come with where their
    /// content list will arrive.
    Entry(Node, Match, Option<Receiver<FileResult>>),
}

/// Builds the trees from the events.
pub(crate) struct Assembler<'a> {
    known: &'a Known,
    sink: &'a Sink,
    sealer: Sealer,
    pack: OpenPack,
    current: Tree,
    stack: Vec<(Node, Match, Option<Id>, Tree)>,
    summary: SnapshotSummary,
}

impl<'a> Assembler<'a> {
    pub(crate) fn new(known: &'a Known, sink: &'a Sink, sealer: Sealer) -> Self {
        Self {
            known,
            sink,
            sealer,
            pack: OpenPack::default(),
            current: Tree::default(),
            stack: Vec::new(),
            summary: SnapshotSummary::default(),
        }
    }

    /// Takes one event. Returns false when a file could not be read.
    pub(crate) fn add(&mut self, event: Event) -> EngineResult<bool> {
        match event {
            Event::Enter(node, matched, parent) => {
                let outer = std::mem::take(&mut self.current);
                self.stack.push((node, matched, parent, outer));
            }
            Event::Leave => {
                let (mut node, matched, parent, outer) = self
                    .stack
                    .pop()
                    .ok_or_else(|| EngineError::Engine("the walk left the root".into()))?;
                let tree = std::mem::replace(&mut self.current, outer);
                node.subtree = Some(self.store(&tree, matched, parent)?.into());
                self.current.nodes.push(node);
            }
            Event::Entry(mut node, matched, reading) => {
                // Bytes of file content: what was read, or an unchanged
                // file's size (a symlink's size is its target's length).
                let mut size = if node.node_type == NodeType::File {
                    node.meta.size
                } else {
                    0
                };
                if let Some(reply) = reading {
                    // A reader that stopped (an abort) drops its sender.
                    let Ok(Some((content, read))) = reply.recv() else {
                        return Ok(false);
                    };
                    node.content = Some(content);
                    size = read;
                }
                let s = &mut self.summary;
                match matched {
                    Match::New => s.files_new += 1,
                    Match::Changed => s.files_changed += 1,
                    Match::Unchanged => s.files_unmodified += 1,
                }
                s.total_files_processed += 1;
                s.total_bytes_processed += size;
                self.current.nodes.push(node);
            }
        }
        Ok(true)
    }

    /// Stores `tree` unless the repository has it, and counts it.
    fn store(&mut self, tree: &Tree, matched: Match, parent: Option<Id>) -> EngineResult<Id> {
        let (bytes, id) = tree
            .serialize()
            .map_err(|e| EngineError::Engine(format!("serializing a tree: {e}")))?;
        let id = *id;
        let s = &mut self.summary;
        s.total_dirs_processed += 1;
        s.total_dirsize_processed += bytes.len() as u64;
        match (matched, parent) {
            (_, Some(p)) if p == id => s.dirs_unmodified += 1,
            (Match::New, _) => s.dirs_new += 1,
            _ => s.dirs_changed += 1,
        }
        if self.known.take_on(id, BlobType::Tree, bytes.len()) {
            if self.pack.is_empty() {
                self.pack = OpenPack::with_capacity(TREE_PACK_SIZE);
            }
            let sealed = self.sealer.seal_into(
                super::pack::hash(&bytes),
                BlobType::Tree,
                &bytes,
                &mut self.pack,
            );
            s.tree_blobs += 1;
            s.data_added += bytes.len() as u64;
            s.data_added_trees += bytes.len() as u64;
            s.data_added_packed += sealed.packed;
            s.data_added_trees_packed += sealed.packed;
            if self.pack.len() >= TREE_PACK_SIZE {
                self.sink.store(std::mem::take(&mut self.pack))?;
            }
        }
        Ok(id)
    }

    /// Stores the root tree (compared with the parent snapshot's) and the
    /// last pack of trees; returns the root's id and what was counted.
    pub(crate) fn finish(mut self, parent_root: Option<Id>) -> EngineResult<(Id, SnapshotSummary)> {
        if !self.stack.is_empty() {
            return Err(EngineError::Engine(
                "the walk ended inside a directory".into(),
            ));
        }
        let root = std::mem::take(&mut self.current);
        let matched = if parent_root.is_some() {
            Match::Changed
        } else {
            Match::New
        };
        let id = self.store(&root, matched, parent_root)?;
        if !self.pack.is_empty() {
            self.sink.store(std::mem::take(&mut self.pack))?;
        }
        Ok((id, self.summary))
    }
}
