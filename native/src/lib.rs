//! The decision hot path of crm-triggers, compiled: an event's bytes in, its outcome out.
//!
//! `state/board.py` is the reference: this module decides exactly as it does, and
//! the test suite holds the two to the same outputs. It keeps the items of one key
//! group as flat records and decodes the common well-formed event itself; anything
//! it does not take (a record to reject, an unusual shape), the trigger table's
//! views and the trigger conditions are asked of Python through `hooks` (see
//! `state/native.py`), so every message and every rule has a single source.

// pyo3's generated wrappers convert each method's error into itself.
#![allow(clippy::useless_conversion)]

// Shared by every module (each starts with `use super::*`).
use std::borrow::Cow;
use std::collections::HashMap as StdHashMap;
use std::fmt;
use std::sync::Arc;

use compact_str::CompactString;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use smallvec::{smallvec, SmallVec};

/// Maps keyed by item keys and names: aHash, several times faster than SipHash here and
/// still seeded per process against crafted keys.
type HashMap<K, V> = StdHashMap<K, V, ahash::RandomState>;

// One concern each.
/// The board's Python class and its per-record loop.
mod board;
/// Trigger conditions.
mod conditions;
/// The steps of a decision: lifecycle, field changes, the first trigger that holds.
mod decide;
/// Decoding a record (`scan` reads the common shape in one pass).
mod decode;
/// The stage history an (event, item) writes.
mod history;
/// One item's flat state.
mod item;
/// A block of JSON Lines split into its records, no Python object per line.
mod lines;
/// A transition's JSON line and id.
mod output;
/// Trigger params.
mod params;
/// Key groups, and routing a batch to them.
mod routing;
/// A single-pass reader of the common record shape.
mod scan;
/// A board's items in a snapshot.
mod snapshot;
/// The statistics job's stays step: history records to chunks of window figures.
mod stats;
/// `occurred_at` as microseconds.
mod time;
/// The trigger table's views, as Python hands them over.
mod view;
/// Event types, codes and the names shared with Python (handed over by `configure`).
mod vocabulary;

use board::*;
use conditions::{Clause, Condition, Op};
use decode::*;
use item::*;
use lines::*;
use output::*;
use params::*;
use routing::*;
use snapshot::*;
use time::*;
use view::*;
use vocabulary::{
    configured, vocabulary, CONFIRMED, CREATED, DELETED, DUPLICATE, ITEM_CREATED, ITEM_DELETED,
    ITEM_DELETED_TYPE, ITEM_STAGE_CHANGED, ITEM_UPDATED, NEVER_WATCHED, NOTE_HISTORY,
    NOTE_MISROUTED, NOTE_REJECTED, NOTE_TRANSITION, NOTE_UNKNOWN_ITEM, NOTE_UNKNOWN_STAGE,
    NO_MATCH, NO_PIPELINE, REASONS, STAGE_CHANGED, UPDATED,
};

#[pymodule]
fn crm_triggers_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeBoard>()?;
    m.add_function(wrap_pyfunction!(route_batch, m)?)?;
    m.add_class::<Lines>()?;
    m.add_function(wrap_pyfunction!(split_lines, m)?)?;
    vocabulary::register(m)?;
    stats::register(m)?;
    Ok(())
}
