//! The state of one item, kept flat: stage, watched fields, seen ids, echoes.

use super::*;

// Item state ----------------------------------------------------------------------------

pub(crate) const NO_STAGE: u32 = u32::MAX;

/// Fingerprints of an item's last event ids, as a ring: when full, the oldest goes.
/// The first two live in the item's own slot.
#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) marks: SmallVec<[u64; 2]>,
    /// Where the oldest is, once full.
    pub(crate) next: u32,
}

impl Seen {
    pub(crate) fn contains(&self, mark: u64) -> bool {
        self.marks.contains(&mark)
    }

    pub(crate) fn len(&self) -> usize {
        self.marks.len()
    }

    pub(crate) fn push(&mut self, mark: u64, window: usize) {
        if self.marks.len() < window {
            self.marks.push(mark);
        } else {
            self.marks[self.next as usize] = mark;
            self.next = (self.next + 1) % window as u32;
        }
    }

    /// Oldest first.
    pub(crate) fn in_order(&self) -> impl Iterator<Item = &u64> {
        let next = self.next as usize;
        self.marks[next..].iter().chain(self.marks[..next].iter())
    }
}

/// An item's watched fields in one allocation: (name id, value as JSON text) pairs,
/// ordered by name, each written as name (u32), length (u32), text.
pub(crate) struct Fields(pub(crate) Box<[u8]>);

impl Fields {
    pub(crate) fn new<'v>(pairs: impl Iterator<Item = (u32, &'v str)>) -> Fields {
        let mut out = Vec::new();
        for (name, value) in pairs {
            out.extend_from_slice(&name.to_le_bytes());
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        Fields(out.into_boxed_slice())
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &str)> {
        let mut at = 0;
        let bytes = &self.0;
        std::iter::from_fn(move || {
            let head = bytes.get(at..at + 8)?;
            let name = u32::from_le_bytes(head[..4].try_into().unwrap());
            let len = u32::from_le_bytes(head[4..].try_into().unwrap()) as usize;
            let value = std::str::from_utf8(&bytes[at + 8..at + 8 + len]).unwrap_or("null");
            at += 8 + len;
            Some((name, value))
        })
    }

    pub(crate) fn get(&self, name: u32) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

pub(crate) struct ItemState {
    pub(crate) category: u32,
    pub(crate) stage: u32,
    pub(crate) seen: Seen,
    pub(crate) echoes: Option<Box<[(u64, u32)]>>,
    pub(crate) fields: Option<Fields>,
}

impl ItemState {
    pub(crate) fn new(category: u32, stage: u32) -> Self {
        ItemState {
            category,
            stage,
            seen: Seen::default(),
            echoes: None,
            fields: None,
        }
    }

    pub(crate) fn remember(&mut self, mark: u64, window: usize) {
        self.seen.push(mark, window);
    }
}

#[derive(Default)]
pub(crate) struct Names {
    pub(crate) ids: HashMap<Box<str>, u32>,
    pub(crate) names: Vec<Box<str>>,
}

impl Names {
    pub(crate) fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    pub(crate) fn find(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    pub(crate) fn text(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
}
