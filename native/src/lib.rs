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

use std::borrow::Cow;
use std::collections::HashMap as StdHashMap;

/// Maps keyed by item keys and names: aHash, several times faster than SipHash here and
/// still seeded per process against crafted keys.
type HashMap<K, V> = StdHashMap<K, V, ahash::RandomState>;
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

mod conditions;
mod scan;
use conditions::{Clause, Condition, Op};

// Event types and trigger codes -----------------------------------------------------------

const ITEM_CREATED: u8 = 0;
const ITEM_UPDATED: u8 = 1;
const ITEM_STAGE_CHANGED: u8 = 2;
const ITEM_DELETED_TYPE: u8 = 3;
const FORM_SUBMITTED: u8 = 4;

/// Event types in the order of their numbers; index 4 on: one code each, but forms.
const EVENT_TYPES: [&str; 23] = [
    "item.created",
    "item.updated",
    "item.stage_changed",
    "item.deleted",
    "form.submitted",
    "document.created",
    "document.opened",
    "visit.registered",
    "resource.booked",
    "email.received",
    "email.sent",
    "email.read",
    "email.link_clicked",
    "call.incoming",
    "call.outgoing",
    "call.missed",
    "chat.started",
    "chat.message",
    "chat.answered",
    "task.status_changed",
    "webhook",
    "app.trigger",
    "order.paid",
];

const CODES: [&str; 23] = [
    "RESP_CHANGED",
    "FIELD_CHANGED",
    "WEBFORM",
    "CALLBACK",
    "DOCUMENT_CREATE",
    "DOCUMENT_VIEW",
    "VISIT",
    "RESOURCE_BOOKING",
    "EMAIL",
    "EMAIL_SENT",
    "EMAIL_READ",
    "EMAIL_LINK",
    "CALL",
    "OUTGOING_CALL",
    "MISSED_CALL",
    "OPENLINE",
    "OPENLINE_MSG",
    "OPENLINE_ANSWER",
    "OPENLINE_ANSWER_CTRL",
    "TASK_STATUS",
    "WEBHOOK",
    "APP",
    "ORDER_PAID",
];

fn code_index(code: &str) -> Option<usize> {
    CODES.iter().position(|c| *c == code)
}

/// The number of an event type: its index in `EVENT_TYPES`.
fn event_type(name: &str) -> Option<u8> {
    Some(match name {
        "item.created" => 0,
        "item.updated" => 1,
        "item.stage_changed" => 2,
        "item.deleted" => 3,
        "form.submitted" => 4,
        "document.created" => 5,
        "document.opened" => 6,
        "visit.registered" => 7,
        "resource.booked" => 8,
        "email.received" => 9,
        "email.sent" => 10,
        "email.read" => 11,
        "email.link_clicked" => 12,
        "call.incoming" => 13,
        "call.outgoing" => 14,
        "call.missed" => 15,
        "chat.started" => 16,
        "chat.message" => 17,
        "chat.answered" => 18,
        "task.status_changed" => 19,
        "webhook" => 20,
        "app.trigger" => 21,
        "order.paid" => 22,
        _ => return None,
    })
}

/// The codes an event can fire, in the order they are tried (`state.codes.codes_for`).
fn codes_for(etype: u8, data: &mut Data) -> &'static [usize] {
    const SIMPLE: [&[usize]; 23] = [
        &[],
        &[],
        &[],
        &[],
        &[],
        &[4],
        &[5],
        &[6],
        &[7],
        &[8],
        &[9],
        &[10],
        &[11],
        &[12],
        &[13],
        &[14],
        &[15],
        &[16],
        &[17, 18],
        &[19],
        &[20],
        &[21],
        &[22],
    ];
    match etype {
        ITEM_UPDATED => {
            if data.changes_has("ASSIGNED_BY_ID") {
                &[0, 1]
            } else {
                &[1]
            }
        }
        FORM_SUBMITTED => {
            if data.get("callback").map(|v| v == "true").unwrap_or(false) {
                &[3, 2]
            } else {
                &[2]
            }
        }
        ITEM_CREATED | ITEM_STAGE_CHANGED | ITEM_DELETED_TYPE => &[],
        other => SIMPLE[other as usize],
    }
}

const NEVER_WATCHED: [&str; 3] = ["STAGE_ID", "CATEGORY_ID", "ASSIGNED_BY_ID"];

// Outcomes ------------------------------------------------------------------------------

const CREATED: usize = 0;
const UPDATED: usize = 1;
const STAGE_CHANGED: usize = 2;
const CONFIRMED: usize = 3;
const DELETED: usize = 4;
const NO_MATCH: usize = 5;
const DUPLICATE: usize = 6;
const ITEM_DELETED: usize = 7;
const NO_PIPELINE: usize = 8;
const REASONS: usize = 9;

enum Outcome {
    Decided(usize),
    Move(Vec<u8>),
    UnknownItem,
    UnknownStage(String, String),
}

// Notes handed back to Python, besides counts.
const NOTE_TRANSITION: u8 = 0;
const NOTE_REJECTED: u8 = 1;
const NOTE_UNKNOWN_ITEM: u8 = 2;
const NOTE_UNKNOWN_STAGE: u8 = 3;
const NOTE_MISROUTED: u8 = 4;

// Decoding ------------------------------------------------------------------------------

/// An id: a string, or an integer read as its decimal string.
struct Id<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Id<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl<'de> Visitor<'de> for IdVisitor {
            type Value = Id<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or integer id")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Id<'de>, E> {
                Ok(Id(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Id<'de>, E> {
                Ok(Id(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Id<'de>, E> {
                Ok(Id(Cow::Owned(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Id<'de>, E> {
                Ok(Id(Cow::Owned(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Id<'de>, E> {
                Ok(Id(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_any(IdVisitor)
    }
}

#[derive(Deserialize)]
struct WireRef<'a> {
    #[serde(borrow)]
    entity: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Id<'a>>,
    #[serde(borrow)]
    category: Option<Id<'a>>,
    #[serde(borrow)]
    stage: Option<Id<'a>>,
}

#[derive(Deserialize)]
struct WireEvent<'a> {
    #[serde(borrow)]
    id: Option<Id<'a>>,
    #[serde(borrow, rename = "type")]
    etype: Option<Cow<'a, str>>,
    #[serde(borrow)]
    occurred_at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tenant: Option<Cow<'a, str>>,
    #[serde(borrow)]
    item: Option<WireRef<'a>>,
    #[serde(borrow)]
    items: Option<Vec<WireRef<'a>>>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

impl<'a> From<WireRef<'a>> for scan::WireRef<'a> {
    fn from(r: WireRef<'a>) -> Self {
        scan::WireRef {
            entity: r.entity,
            id: r.id.map(|i| i.0),
            category: r.category.map(|i| i.0),
            stage: r.stage.map(|i| i.0),
        }
    }
}

impl<'a> From<WireEvent<'a>> for scan::Wire<'a> {
    fn from(w: WireEvent<'a>) -> Self {
        scan::Wire {
            id: w.id.map(|i| i.0),
            etype: w.etype,
            occurred_at: w.occurred_at,
            tenant: w.tenant,
            item: w.item.map(Into::into),
            items: w
                .items
                .map(|items| items.into_iter().map(Into::into).collect()),
            data: w.data.map(|d| d.get()),
        }
    }
}

#[derive(PartialEq)]
struct Ref<'a> {
    entity: Cow<'a, str>,
    id: Cow<'a, str>,
    category: Option<Cow<'a, str>>,
    stage: Option<Cow<'a, str>>,
}

/// The members of a JSON object, in order, each value as its JSON text; of a key
/// written twice, the last counts (as Python's decoders read it).
type Members<'a> = Vec<(Cow<'a, str>, &'a str)>;

fn members(text: &str) -> Members<'_> {
    if let Some(found) = scan::members(text) {
        return found;
    }
    // Keys with escapes: the general path (its map keeps the last of a repeated key).
    let parsed: StdHashMap<Cow<str>, &RawValue> = serde_json::from_str(text).unwrap_or_default();
    parsed.into_iter().map(|(k, v)| (k, v.get())).collect()
}

fn member<'a>(members: &Members<'a>, name: &str) -> Option<&'a str> {
    members
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| *v)
}

/// `data` of an event, its members read only when a decision needs them.
struct Data<'a> {
    raw: Option<&'a str>,
    map: Option<Members<'a>>,
    /// `changes` of an item.updated, found while decoding it.
    changes_raw: Option<&'a str>,
    changes: Option<Members<'a>>,
}

impl<'a> Data<'a> {
    fn get(&mut self, name: &str) -> Option<&'a str> {
        if self.map.is_none() {
            self.map = Some(self.raw.map(members).unwrap_or_default());
        }
        member(self.map.as_ref().unwrap(), name)
    }

    fn changes(&mut self) -> &Members<'a> {
        if self.changes.is_none() {
            let raw = match self.changes_raw {
                Some(raw) => Some(raw),
                None => self.get("changes"),
            };
            let parsed = match raw {
                Some(raw) if raw.starts_with('{') => members(raw),
                _ => Vec::new(),
            };
            self.changes = Some(parsed);
        }
        self.changes.as_ref().unwrap()
    }

    fn changes_has(&mut self, name: &str) -> bool {
        self.changes().iter().any(|(k, _)| k == name)
    }
}

struct Event<'a> {
    id: Cow<'a, str>,
    etype: u8,
    tenant: Cow<'a, str>,
    occurred_at: Cow<'a, str>,
    at: i64,
    refs: SmallVec<[Ref<'a>; 1]>,
    data: Data<'a>,
    /// Normalized lifecycle values: data.stage, data.category, data.transition_id.
    stage: Option<Cow<'a, str>>,
    category: Option<Cow<'a, str>>,
    transition_id: Option<Cow<'a, str>>,
    fields: Option<&'a str>,
}

/// A JSON integer as Python writes it back: its own text (JSON allows no leading zeros),
/// but for minus zero; None when the number is not an integer.
fn integer_text(text: &str) -> Option<Cow<'_, str>> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Cow::Borrowed(if digits == "0" { "0" } else { text }))
}

fn is_null(raw: Option<&str>) -> bool {
    raw.map(|r| r == "null").unwrap_or(true)
}

/// The event, if it is of the common well-formed shape; None: ask Python.
fn decode_event(raw: &[u8], at: Option<i64>) -> Option<Event<'_>> {
    let text = std::str::from_utf8(raw).ok()?;
    let wire = match scan::scan(text) {
        Some(wire) => wire,
        None => serde_json::from_str::<WireEvent>(text).ok()?.into(),
    };
    let etype = event_type(wire.etype.as_deref()?)?;
    let id = wire.id?;
    if id.is_empty() {
        return None;
    }
    let tenant = match wire.tenant {
        None => Cow::Borrowed("default"),
        Some(t) if t.is_empty() || t.contains('/') => return None,
        Some(t) => t,
    };
    let occurred_at = wire.occurred_at?;
    let at = match at {
        Some(at) => at,
        None => parse_time(&occurred_at)?,
    };
    let refs = match (wire.item, wire.items) {
        (Some(item), None) => smallvec![checked_ref(item)?],
        (None, Some(items)) if !items.is_empty() => {
            let mut refs: SmallVec<[Ref; 1]> = SmallVec::with_capacity(items.len());
            for item in items {
                let r = checked_ref(item)?;
                if !refs.contains(&r) {
                    refs.push(r);
                }
            }
            refs
        }
        _ => return None,
    };
    let data_raw = match wire.data {
        Some(d) if d.starts_with('{') => Some(d),
        Some(_) => return None,
        None => None,
    };
    let mut event = Event {
        id,
        etype,
        tenant,
        occurred_at,
        at,
        refs,
        data: Data {
            raw: data_raw,
            map: None,
            changes_raw: None,
            changes: None,
        },
        stage: None,
        category: None,
        transition_id: None,
        fields: None,
    };
    if etype <= ITEM_STAGE_CHANGED {
        let life = data_raw.map(members).unwrap_or_default();
        if etype == ITEM_UPDATED {
            let changes = member(&life, "changes")?;
            if !changes.starts_with('{') {
                return None;
            }
            event.data.changes_raw = Some(changes);
        } else {
            event.stage = Some(nonempty(id_text(member(&life, "stage")?)?)?);
            let category = member(&life, "category");
            if !is_null(category) {
                event.category = Some(nonempty(id_text(category?)?)?);
            }
            if etype == ITEM_CREATED {
                let fields = member(&life, "fields");
                if !is_null(fields) {
                    if !fields?.starts_with('{') {
                        return None;
                    }
                    event.fields = fields;
                }
            } else {
                let echoed = member(&life, "transition_id");
                if !is_null(echoed) {
                    event.transition_id = Some(nonempty(id_text(echoed?)?)?);
                }
            }
        }
        event.data.map = Some(life);
    }
    Some(event)
}

fn nonempty(text: Cow<'_, str>) -> Option<Cow<'_, str>> {
    if text.is_empty() {
        None
    } else {
        Some(text)
    }
}

fn checked_ref(wire: scan::WireRef<'_>) -> Option<Ref<'_>> {
    let entity = wire.entity?;
    if entity.is_empty() || entity.contains('/') {
        return None;
    }
    let id = nonempty(wire.id?)?;
    let category = match wire.category {
        Some(c) => Some(nonempty(c)?),
        None => None,
    };
    let stage = match wire.stage {
        Some(s) => Some(nonempty(s)?),
        None => None,
    };
    Some(Ref {
        entity,
        id,
        category,
        stage,
    })
}

/// Microseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±HH:MM)`; other
/// forms (that Python may still accept) are left to Python.
fn parse_time(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |from: usize, len: usize| -> Option<i64> {
        let mut value = 0i64;
        for &c in b.get(from..from + len)? {
            if !c.is_ascii_digit() {
                return None;
            }
            value = value * 10 + i64::from(c - b'0');
        }
        Some(value)
    };
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if year < 1 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut at = 19;
    let mut micros = 0;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while at < b.len() && b[at].is_ascii_digit() {
            at += 1;
        }
        let digits = at - start;
        if digits == 0 || digits > 6 {
            return None;
        }
        micros = num(start, digits)? * 10i64.pow((6 - digits) as u32);
    }
    let offset = match b.get(at) {
        Some(b'Z') => {
            at += 1;
            0
        }
        Some(&sign) if sign == b'+' || sign == b'-' => {
            if b.get(at + 3) != Some(&b':') {
                return None;
            }
            let (hours, minutes) = (num(at + 1, 2)?, num(at + 4, 2)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            at += 6;
            let seconds = hours * 3600 + minutes * 60;
            if sign == b'-' {
                -seconds
            } else {
                seconds
            }
        }
        _ => return None,
    };
    if at != b.len() {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some((seconds - offset) * 1_000_000 + micros)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

// Output --------------------------------------------------------------------------------

/// A JSON string exactly as orjson writes it.
fn push_json_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

const TRANSITION_NAMESPACE: [u8; 16] = [
    0x5b, 0x1f, 0x3c, 0x2e, 0x8d, 0x4a, 0x4f, 0x0e, 0x9c, 0x6b, 0x2a, 0x7e, 0x1d, 0x9f, 0x4b, 0x30,
];

/// uuid5 of (tenant, entity, item id, event id), as `state.model.transition_id`.
fn transition_id(tenant: &str, entity: &str, item_id: &str, event_id: &str) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(&TRANSITION_NAMESPACE);
    sha.update(tenant.as_bytes());
    sha.update(b"\x1f");
    sha.update(entity.as_bytes());
    sha.update(b"\x1f");
    sha.update(item_id.as_bytes());
    sha.update(b"\x1f");
    sha.update(event_id.as_bytes());
    let mut b = sha.digest().bytes();
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for (i, byte) in b[..16].iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[(byte >> 4) as usize] as char);
        out.push(HEX[(byte & 0xf) as usize] as char);
    }
    out
}

/// 8 stable bytes of an id, as `state.board.fingerprint`: CRC-32 of it and of its reverse.
fn fingerprint(text: &str) -> u64 {
    let raw = text.as_bytes();
    let forward = crc32fast::hash(raw);
    let mut buffer = [0u8; 64];
    let backward = if raw.len() <= buffer.len() {
        let reversed = &mut buffer[..raw.len()];
        reversed.copy_from_slice(raw);
        reversed.reverse();
        crc32fast::hash(reversed)
    } else {
        let mut reversed = raw.to_vec();
        reversed.reverse();
        crc32fast::hash(&reversed)
    };
    u64::from(forward) | (u64::from(backward) << 32)
}

// Params --------------------------------------------------------------------------------

enum Param {
    Eq(String, String),
    Prefix(String, String),
    Substring(String, String),
    Fields(Vec<String>),
    AnyField,
}

/// `state.codes.id_text` of a JSON value.
fn id_text(text: &str) -> Option<Cow<'_, str>> {
    match text.as_bytes().first()? {
        b'"' => serde_json::from_str::<Cow<str>>(text).ok(),
        b'-' | b'0'..=b'9' => {
            if let Some(integer) = integer_text(text) {
                return Some(integer);
            }
            let value: f64 = text.parse().ok()?;
            if !value.is_finite() || value.fract() != 0.0 {
                return None;
            }
            if value == 0.0 {
                return Some(Cow::Borrowed("0"));
            }
            Some(Cow::Owned(format!("{value:.0}")))
        }
        _ => None,
    }
}

fn as_str(raw: Option<&str>) -> Option<Cow<'_, str>> {
    let raw = raw?;
    if raw.starts_with('"') {
        serde_json::from_str::<Cow<str>>(raw).ok()
    } else {
        None
    }
}

/// Whether params hold (`state.codes.params_match`); None: Python must tell.
fn params_match(params: &[Param], data: &mut Data) -> Option<bool> {
    for param in params {
        let holds = match param {
            Param::Eq(name, expected) => data
                .get(name)
                .and_then(id_text)
                .map(|t| t == expected.as_str())
                .unwrap_or(false),
            Param::Prefix(name, expected) => as_str(data.get(name))
                .map(|t| t.starts_with(expected.as_str()))
                .unwrap_or(false),
            Param::Substring(name, expected) => match as_str(data.get(name)) {
                None => false,
                Some(text) if text.is_ascii() => {
                    text.to_ascii_lowercase().contains(expected.as_str())
                }
                Some(_) => return None,
            },
            Param::Fields(names) => {
                let changes = data.changes();
                names.iter().any(|n| changes.iter().any(|(k, _)| k == n))
            }
            Param::AnyField => data
                .changes()
                .iter()
                .any(|(k, _)| !NEVER_WATCHED.contains(&k.as_ref())),
        };
        if !holds {
            return Some(false);
        }
    }
    Some(true)
}

// The trigger table, as Python's views hand it over ----------------------------------------

struct Candidate {
    position: usize,
    allow_backwards: bool,
    trigger_id: String,
    code: &'static str,
    stage: u32,
    stage_text: String,
    params: Vec<Param>,
    condition: Option<Condition>,
    trigger: PyObject,
}

struct View {
    positions: HashMap<u32, usize>,
    by_code: Vec<Vec<Candidate>>,
    any: bool,
}

/// A view as Python hands it over: stage ids in order, then candidate tuples.
type ViewSpec<'py> = (Vec<String>, Vec<Bound<'py, PyTuple>>);

struct CachedView {
    category: u32,
    start: i64,
    end: i64,
    view: Option<Arc<View>>,
}

// Item state ----------------------------------------------------------------------------

const NO_STAGE: u32 = u32::MAX;

/// Fingerprints of an item's last event ids, as a ring: when full, the oldest goes.
/// The first two live in the item's own slot.
#[derive(Default)]
struct Seen {
    marks: SmallVec<[u64; 2]>,
    /// Where the oldest is, once full.
    next: u32,
}

impl Seen {
    fn contains(&self, mark: u64) -> bool {
        self.marks.contains(&mark)
    }

    fn len(&self) -> usize {
        self.marks.len()
    }

    fn push(&mut self, mark: u64, window: usize) {
        if self.marks.len() < window {
            self.marks.push(mark);
        } else {
            self.marks[self.next as usize] = mark;
            self.next = (self.next + 1) % window as u32;
        }
    }

    /// Oldest first.
    fn in_order(&self) -> impl Iterator<Item = &u64> {
        let next = self.next as usize;
        self.marks[next..].iter().chain(self.marks[..next].iter())
    }
}

/// An item's watched fields in one allocation: (name id, value as JSON text) pairs,
/// ordered by name, each written as name (u32), length (u32), text.
struct Fields(Box<[u8]>);

impl Fields {
    fn new<'v>(pairs: impl Iterator<Item = (u32, &'v str)>) -> Fields {
        let mut out = Vec::new();
        for (name, value) in pairs {
            out.extend_from_slice(&name.to_le_bytes());
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        Fields(out.into_boxed_slice())
    }

    fn iter(&self) -> impl Iterator<Item = (u32, &str)> {
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

    fn get(&self, name: u32) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

struct ItemState {
    category: u32,
    stage: u32,
    seen: Seen,
    echoes: Option<Box<[(u64, u32)]>>,
    fields: Option<Fields>,
}

impl ItemState {
    fn new(category: u32, stage: u32) -> Self {
        ItemState {
            category,
            stage,
            seen: Seen::default(),
            echoes: None,
            fields: None,
        }
    }

    fn remember(&mut self, mark: u64, window: usize) {
        self.seen.push(mark, window);
    }
}

#[derive(Default)]
struct Names {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Names {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    fn find(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    fn text(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
}

/// The items of one key group, decided as `state.board.Board` decides them.
#[pyclass(module = "crm_triggers_native")]
struct NativeBoard {
    items: HashMap<CompactString, ItemState>,
    names: Names,
    watched: HashMap<Box<str>, u32>,
    views: HashMap<Box<str>, Vec<CachedView>>,
    seen_window: usize,
    echo_window: usize,
    hooks: PyObject,
}

struct Batch {
    /// The item key being decided, reused from record to record.
    key: String,
    counts: [u64; REASONS],
    extra_items: u64,
    notes: Vec<PyObject>,
}

#[pymethods]
impl NativeBoard {
    #[new]
    fn new(seen_window: usize, echo_window: usize, hooks: PyObject) -> PyResult<Self> {
        if seen_window == 0 || echo_window == 0 {
            return Err(PyValueError::new_err(
                "seen_window and echo_window must be at least 1",
            ));
        }
        Ok(NativeBoard {
            items: HashMap::default(),
            names: Names::default(),
            watched: HashMap::default(),
            views: HashMap::default(),
            seen_window,
            echo_window,
            hooks,
        })
    }

    /// The item fields some condition reads; called whenever the table changes.
    fn set_watched(&mut self, names: Vec<String>) {
        self.watched.clear();
        for name in names {
            let id = self.names.intern(&name);
            self.watched.insert(name.into(), id);
        }
    }

    /// Forget the views of the trigger table: it changed.
    fn clear_views(&mut self) {
        self.views.clear();
    }

    fn __len__(&self) -> usize {
        self.items.len()
    }

    /// Decide a batch of event records of key group `group` (of `groups`).
    ///
    /// Returns (counts by reason, extra items, notes); a note is (record index, item
    /// index, item key or None, kind, payload) for each transition and dead letter.
    fn decide_batch<'py>(
        &mut self,
        py: Python<'py>,
        raws: &Bound<'py, PyList>,
        group: u32,
        groups: u32,
        max_bytes: usize,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let mut batch = Batch {
            key: String::with_capacity(64),
            counts: [0; REASONS],
            extra_items: 0,
            notes: Vec::new(),
        };
        // The items leave `self` for the batch, so that deciding may borrow the rest of it.
        let mut items = std::mem::take(&mut self.items);
        let decided =
            self.decide_records(&mut items, py, raws, group, groups, max_bytes, &mut batch);
        self.items = items;
        decided?;
        let counts = PyTuple::new_bound(py, batch.counts.iter());
        let notes = PyList::new_bound(py, batch.notes);
        Ok(PyTuple::new_bound(
            py,
            [
                counts.into_any(),
                batch.extra_items.into_py(py).into_bound(py),
                notes.into_any(),
            ],
        ))
    }

    /// The state of one item, for tests and tools: (category, stage or None, fields
    /// as (name, JSON) pairs, seen ids, echoes).
    #[allow(clippy::type_complexity)]
    fn item(
        &self,
        key: &str,
    ) -> Option<(String, Option<String>, Vec<(String, String)>, usize, usize)> {
        let state = self.items.get(key)?;
        let stage = (state.stage != NO_STAGE).then(|| self.names.text(state.stage).to_owned());
        let fields = state
            .fields
            .iter()
            .flat_map(|f| f.iter())
            .map(|(n, v)| (self.names.text(n).to_owned(), v.to_owned()))
            .collect();
        let echoes = state.echoes.as_ref().map(|e| e.len()).unwrap_or(0);
        Some((
            self.names.text(state.category).to_owned(),
            stage,
            fields,
            state.seen.len(),
            echoes,
        ))
    }

    /// Bytes the items take, the allocator's own overhead aside: the hash table's
    /// slots, each key, and what each state holds outside its slot.
    fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let slots = (self.items.capacity() * 8 / 7).next_power_of_two();
        let mut total = slots * (size_of::<(Box<str>, ItemState)>() + 1);
        for (key, state) in &self.items {
            if key.is_heap_allocated() {
                total += key.capacity();
            }
            if state.seen.marks.spilled() {
                total += state.seen.marks.capacity() * size_of::<u64>();
            }
            if let Some(echoes) = &state.echoes {
                total += echoes.len() * size_of::<(u64, u32)>();
            }
            if let Some(fields) = &state.fields {
                total += fields.0.len();
            }
        }
        total
    }

    /// The items as bytes, for snapshots (the table is pickled by Python).
    fn dump<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let mut out = Vec::with_capacity(64 + self.items.len() * 64);
        put_u32(&mut out, FORMAT);
        put_u32(&mut out, self.names.names.len() as u32);
        for name in &self.names.names {
            put_str(&mut out, name);
        }
        put_u32(&mut out, self.items.len() as u32);
        for (key, state) in &self.items {
            put_str(&mut out, key);
            put_u32(&mut out, state.category);
            put_u32(&mut out, state.stage);
            put_u32(&mut out, state.seen.len() as u32);
            for mark in state.seen.in_order() {
                out.extend_from_slice(&mark.to_le_bytes());
            }
            let echoes = state.echoes.as_deref().unwrap_or(&[]);
            put_u32(&mut out, echoes.len() as u32);
            for (mark, stage) in echoes {
                out.extend_from_slice(&mark.to_le_bytes());
                put_u32(&mut out, *stage);
            }
            let fields: Vec<(u32, &str)> = state.fields.iter().flat_map(|f| f.iter()).collect();
            put_u32(&mut out, fields.len() as u32);
            for (name, value) in fields {
                put_u32(&mut out, name);
                put_str(&mut out, value);
            }
        }
        PyBytes::new_bound(py, &out)
    }

    /// Replace the items with those of `dump`.
    fn load(&mut self, data: &[u8]) -> PyResult<()> {
        let bad = || PyValueError::new_err("not a snapshot of this version of the native board");
        let mut r = Reader { data, at: 0 };
        if r.u32().ok_or_else(bad)? != FORMAT {
            return Err(bad());
        }
        let mut names = Names::default();
        for _ in 0..r.u32().ok_or_else(bad)? {
            names.intern(r.str().ok_or_else(bad)?);
        }
        let count = r.u32().ok_or_else(bad)? as usize;
        let mut items = HashMap::with_capacity_and_hasher(count, Default::default());
        for _ in 0..count {
            let key: CompactString = r.str().ok_or_else(bad)?.into();
            let mut state = ItemState::new(r.u32().ok_or_else(bad)?, r.u32().ok_or_else(bad)?);
            for _ in 0..r.u32().ok_or_else(bad)? {
                state.remember(r.u64().ok_or_else(bad)?, self.seen_window);
            }
            let echoes = r.u32().ok_or_else(bad)?;
            if echoes > 0 {
                let mut list = Vec::with_capacity(echoes as usize);
                for _ in 0..echoes {
                    list.push((r.u64().ok_or_else(bad)?, r.u32().ok_or_else(bad)?));
                }
                state.echoes = Some(list.into_boxed_slice());
            }
            let fields = r.u32().ok_or_else(bad)?;
            if fields > 0 {
                let mut list = Vec::with_capacity(fields as usize);
                for _ in 0..fields {
                    list.push((r.u32().ok_or_else(bad)?, r.str().ok_or_else(bad)?));
                }
                state.fields = Some(Fields::new(list.into_iter()));
            }
            items.insert(key, state);
        }
        let known = |id: u32| (id as usize) < names.names.len();
        let consistent = items.values().all(|state: &ItemState| {
            known(state.category)
                && (state.stage == NO_STAGE || known(state.stage))
                && state
                    .echoes
                    .iter()
                    .flat_map(|e| e.iter())
                    .all(|(_, stage)| known(*stage))
                && state
                    .fields
                    .iter()
                    .flat_map(|f| f.iter())
                    .all(|(name, _)| known(name))
        });
        if r.at != data.len() || !consistent {
            return Err(bad());
        }
        let watched: Vec<String> = self.watched.keys().map(|k| k.to_string()).collect();
        self.names = names;
        self.items = items;
        self.views.clear();
        self.set_watched(watched);
        Ok(())
    }
}

const FORMAT: u32 = 1;

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    put_u32(out, text.len() as u32);
    out.extend_from_slice(text.as_bytes());
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.data.get(self.at..self.at + n)?;
        self.at += n;
        Some(out)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<&'a str> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }
}

fn clause(field: &str, op: &str, value: &str) -> PyResult<Clause> {
    let (event, name) = match field.strip_prefix("event.") {
        Some(name) => (true, name),
        None => (false, field),
    };
    Ok(Clause {
        event,
        name: name.to_owned(),
        op: Op::parse(op).ok_or_else(|| PyValueError::new_err(format!("unknown operator {op}")))?,
        value: serde_json::from_str(value)
            .map_err(|e| PyValueError::new_err(format!("condition value {value}: {e}")))?,
    })
}

/// `tenant/entity/id`, the item's key (`state.model.item_key`), written into `out`.
fn write_key(out: &mut String, tenant: &str, item: &Ref) {
    out.clear();
    out.push_str(tenant);
    out.push('/');
    out.push_str(&item.entity);
    out.push('/');
    out.push_str(&item.id);
}

fn group_of(key: &str, groups: u32) -> u32 {
    crc32fast::hash(key.as_bytes()) % groups
}

impl NativeBoard {
    #[allow(clippy::too_many_arguments)]
    fn decide_records(
        &mut self,
        items: &mut HashMap<CompactString, ItemState>,
        py: Python<'_>,
        raws: &Bound<'_, PyList>,
        group: u32,
        groups: u32,
        max_bytes: usize,
        batch: &mut Batch,
    ) -> PyResult<()> {
        for (index, raw_obj) in raws.iter().enumerate() {
            // A record without bytes (a Kafka tombstone) is Python's to reject.
            let raw = raw_obj
                .downcast::<PyBytes>()
                .map(|b| b.as_bytes())
                .unwrap_or(b"");
            let canonical: Bound<PyBytes>;
            let fast = if raw.len() <= max_bytes && raw_obj.is_instance_of::<PyBytes>() {
                decode_event(raw, None)
            } else {
                None
            };
            let mut event = match fast {
                Some(event) => event,
                None => {
                    let answer = self.hooks.bind(py).call_method1("slow", (&raw_obj,))?;
                    let answer = answer.downcast::<PyTuple>()?;
                    let first = answer.get_item(0)?;
                    if let Ok(bytes) = first.downcast::<PyBytes>() {
                        canonical = bytes.clone();
                        let at: i64 = answer.get_item(1)?.extract()?;
                        match decode_event(canonical.as_bytes(), Some(at)) {
                            Some(event) => event,
                            None => {
                                return Err(PyValueError::new_err(
                                    "internal: the canonical form of an event did not decode",
                                ))
                            }
                        }
                    } else {
                        let note = (index, 0usize, py.None(), NOTE_REJECTED, answer.clone());
                        batch.notes.push(note.into_py(py));
                        continue;
                    }
                }
            };
            self.decide_event(items, py, &raw_obj, index, &mut event, group, groups, batch)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn decide_event(
        &mut self,
        items: &mut HashMap<CompactString, ItemState>,
        py: Python<'_>,
        raw: &Bound<'_, PyAny>,
        index: usize,
        event: &mut Event,
        group: u32,
        groups: u32,
        batch: &mut Batch,
    ) -> PyResult<()> {
        let count = event.refs.len();
        let mut key = std::mem::take(&mut batch.key);
        for item_index in 0..count {
            let r = &event.refs[item_index];
            write_key(&mut key, &event.tenant, r);
            if groups > 1 && group_of(&key, groups) != group {
                if count == 1 {
                    let note = (index, 0usize, &key, NOTE_MISROUTED, py.None());
                    batch.notes.push(note.into_py(py));
                }
                continue;
            }
            if item_index == 0 && count > 1 {
                batch.extra_items += (count - 1) as u64;
            }
            match self.decide(items, py, raw, event, item_index, &key)? {
                Outcome::Decided(reason) => batch.counts[reason] += 1,
                Outcome::Move(json) => {
                    let payload = PyBytes::new_bound(py, &json);
                    let note = (index, item_index, &key, NOTE_TRANSITION, payload);
                    batch.notes.push(note.into_py(py));
                }
                Outcome::UnknownItem => {
                    let note = (index, item_index, &key, NOTE_UNKNOWN_ITEM, py.None());
                    batch.notes.push(note.into_py(py));
                }
                Outcome::UnknownStage(stage, category) => {
                    let payload = (stage, event.refs[item_index].entity.as_ref(), category);
                    let note = (index, item_index, &key, NOTE_UNKNOWN_STAGE, payload);
                    batch.notes.push(note.into_py(py));
                }
            }
        }
        batch.key = key;
        Ok(())
    }

    /// One (event, item), as `Board.decide`.
    #[allow(clippy::too_many_arguments)]
    fn decide(
        &mut self,
        items: &mut HashMap<CompactString, ItemState>,
        py: Python<'_>,
        raw: &Bound<'_, PyAny>,
        event: &mut Event,
        item_index: usize,
        key: &str,
    ) -> PyResult<Outcome> {
        let mark = fingerprint(&event.id);
        let etype = event.etype;
        let lifecycle_only = matches!(etype, ITEM_CREATED | ITEM_STAGE_CHANGED | ITEM_DELETED_TYPE);
        if let Some(state) = items.get_mut(key) {
            if state.seen.contains(mark) {
                return Ok(Outcome::Decided(DUPLICATE));
            }
            if state.stage != NO_STAGE && !lifecycle_only {
                // The hot path: an activity event or a field change for a live item.
                let outcome = self.fire(py, raw, event, item_index, state)?;
                if !matches!(outcome, Outcome::UnknownStage(..)) {
                    state.remember(mark, self.seen_window);
                }
                return Ok(outcome);
            }
        }
        let state = items.remove(key);
        let r = &event.refs[item_index];
        let (outcome, mut state) = if lifecycle_only {
            self.lifecycle(event, item_index, state)
        } else if let Some(state) = state {
            (Outcome::Decided(ITEM_DELETED), state)
        } else if r.stage.is_none() {
            return Ok(Outcome::UnknownItem);
        } else {
            let category = self.names.intern(r.category.as_deref().unwrap_or("0"));
            let stage = self.names.intern(r.stage.as_deref().unwrap());
            let mut fresh = ItemState::new(category, stage);
            let outcome = self.fire(py, raw, event, item_index, &mut fresh)?;
            if matches!(outcome, Outcome::UnknownStage(..)) {
                return Ok(outcome);
            }
            (outcome, fresh)
        };
        state.remember(mark, self.seen_window);
        items.insert(key.into(), state);
        Ok(outcome)
    }

    fn lifecycle(
        &mut self,
        event: &mut Event,
        item_index: usize,
        state: Option<ItemState>,
    ) -> (Outcome, ItemState) {
        let r = &event.refs[item_index];
        match event.etype {
            ITEM_CREATED => {
                let category = event
                    .category
                    .as_deref()
                    .or(r.category.as_deref())
                    .unwrap_or("0");
                let category = self.names.intern(category);
                let stage = self.names.intern(event.stage.as_deref().unwrap());
                let mut fresh = ItemState::new(category, stage);
                if let Some(fields) = event.fields {
                    fresh.fields = self.watched_values(&members(fields));
                }
                if let Some(old) = state {
                    fresh.seen = old.seen;
                    fresh.echoes = old.echoes;
                }
                (Outcome::Decided(CREATED), fresh)
            }
            ITEM_DELETED_TYPE => match state {
                None => {
                    let category = self.names.intern(r.category.as_deref().unwrap_or("0"));
                    (
                        Outcome::Decided(DELETED),
                        ItemState::new(category, NO_STAGE),
                    )
                }
                Some(mut s) => {
                    s.stage = NO_STAGE;
                    s.fields = None;
                    (Outcome::Decided(DELETED), s)
                }
            },
            _ => {
                let stage_text = event.stage.as_deref().unwrap();
                match state {
                    None => {
                        let category = event
                            .category
                            .as_deref()
                            .or(r.category.as_deref())
                            .unwrap_or("0");
                        let category = self.names.intern(category);
                        let stage = self.names.intern(stage_text);
                        (
                            Outcome::Decided(STAGE_CHANGED),
                            ItemState::new(category, stage),
                        )
                    }
                    Some(s) if s.stage == NO_STAGE => (Outcome::Decided(ITEM_DELETED), s),
                    Some(mut s) => {
                        if let (Some(echoed), Some(echoes)) = (&event.transition_id, &s.echoes) {
                            let mark = fingerprint(echoed);
                            let stage = self.names.find(stage_text);
                            if echoes
                                .iter()
                                .any(|(m, st)| *m == mark && Some(*st) == stage)
                            {
                                return (Outcome::Decided(CONFIRMED), s);
                            }
                        }
                        s.stage = self.names.intern(stage_text);
                        if let Some(category) = &event.category {
                            s.category = self.names.intern(category);
                        }
                        (Outcome::Decided(STAGE_CHANGED), s)
                    }
                }
            }
        }
    }

    /// The watched members (the last of a repeated name), by name; None when none is.
    fn watched_values(&self, values: &Members) -> Option<Fields> {
        let mut kept: Vec<(u32, &str)> = Vec::new();
        for (name, value) in values.iter().rev() {
            if let Some(&id) = self.watched.get(name.as_ref()) {
                if !kept.iter().any(|(k, _)| *k == id) {
                    kept.push((id, value));
                }
            }
        }
        self.fields_of(kept)
    }

    fn fields_of(&self, mut kept: Vec<(u32, &str)>) -> Option<Fields> {
        if kept.is_empty() {
            return None;
        }
        kept.sort_by(|a, b| self.names.text(a.0).cmp(self.names.text(b.0)));
        Some(Fields::new(kept.into_iter()))
    }

    fn apply_changes(&mut self, state: &mut ItemState, data: &mut Data) {
        let changes = data.changes();
        if !changes
            .iter()
            .any(|(k, _)| self.watched.contains_key(k.as_ref()))
        {
            return;
        }
        let old: Vec<(u32, String)> = state
            .fields
            .iter()
            .flat_map(|f| f.iter())
            .map(|(name, value)| (name, value.to_owned()))
            .collect();
        let mut merged: HashMap<&str, &str> = HashMap::default();
        for (name, value) in &old {
            merged.insert(self.names.text(*name), value);
        }
        for (name, value) in changes.iter() {
            merged.insert(name.as_ref(), value);
        }
        let kept: Vec<(u32, &str)> = merged
            .into_iter()
            .filter_map(|(name, value)| self.watched.get(name).map(|id| (*id, value)))
            .collect();
        state.fields = self.fields_of(kept);
    }

    fn view(
        &mut self,
        py: Python<'_>,
        tenant: &str,
        entity: &str,
        category: u32,
        at: i64,
    ) -> PyResult<Option<Arc<View>>> {
        let scope_len = tenant.len() + 1 + entity.len();
        let mut scope = String::with_capacity(scope_len);
        scope.push_str(tenant);
        scope.push('/');
        scope.push_str(entity);
        if let Some(cached) = self.views.get(scope.as_str()) {
            if let Some(c) = cached.iter().find(|c| c.category == category) {
                if c.start <= at && at < c.end {
                    return Ok(c.view.clone());
                }
            }
        }
        let category_text = self.names.text(category).to_owned();
        let answer = self
            .hooks
            .bind(py)
            .call_method1("view", (tenant, entity, &category_text, at))?;
        let (start, end, spec): (i64, i64, Option<ViewSpec>) = answer.extract()?;
        let view = match spec {
            None => None,
            Some((stages, candidates)) => Some(Arc::new(self.build_view(stages, candidates)?)),
        };
        let entry = CachedView {
            category,
            start,
            end,
            view: view.clone(),
        };
        let cached = self.views.entry(scope.into()).or_default();
        match cached.iter_mut().find(|c| c.category == category) {
            Some(c) => *c = entry,
            None => cached.push(entry),
        }
        Ok(view)
    }

    fn build_view(
        &mut self,
        stages: Vec<String>,
        candidates: Vec<Bound<PyTuple>>,
    ) -> PyResult<View> {
        let positions = stages
            .iter()
            .enumerate()
            .map(|(i, s)| (self.names.intern(s), i))
            .collect();
        let mut by_code: Vec<Vec<Candidate>> = (0..CODES.len()).map(|_| Vec::new()).collect();
        for c in candidates {
            let (code, position, allow_backwards, trigger_id, stage_text): (
                String,
                usize,
                bool,
                String,
                String,
            ) = (
                c.get_item(0)?.extract()?,
                c.get_item(1)?.extract()?,
                c.get_item(2)?.extract()?,
                c.get_item(3)?.extract()?,
                c.get_item(4)?.extract()?,
            );
            let params_spec: Vec<(String, String, Bound<PyAny>)> = c.get_item(5)?.extract()?;
            let condition_spec: Option<Vec<Vec<(String, String, String)>>> =
                c.get_item(6)?.extract()?;
            let trigger: PyObject = c.get_item(7)?.unbind();
            let condition = match condition_spec {
                None => None,
                Some(groups) => Some(Condition {
                    groups: groups
                        .into_iter()
                        .map(|group| {
                            group
                                .into_iter()
                                .map(|(field, op, value)| clause(&field, &op, &value))
                                .collect::<PyResult<Vec<Clause>>>()
                        })
                        .collect::<PyResult<Vec<Vec<Clause>>>>()?,
                }),
            };
            let index = code_index(&code)
                .ok_or_else(|| PyValueError::new_err(format!("unknown trigger code {code}")))?;
            let mut params = Vec::with_capacity(params_spec.len());
            for (name, how, expected) in params_spec {
                params.push(match how.as_str() {
                    "eq" => Param::Eq(name, expected.extract()?),
                    "prefix" => Param::Prefix(name, expected.extract()?),
                    "substring" => Param::Substring(name, expected.extract()?),
                    "fields" => Param::Fields(expected.extract()?),
                    "any_field" => Param::AnyField,
                    other => {
                        return Err(PyValueError::new_err(format!("unknown param rule {other}")))
                    }
                });
            }
            let stage = self.names.intern(&stage_text);
            by_code[index].push(Candidate {
                position,
                allow_backwards,
                trigger_id,
                code: CODES[index],
                stage,
                stage_text,
                params,
                condition,
                trigger,
            });
        }
        let any = by_code.iter().any(|c| !c.is_empty());
        Ok(View {
            positions,
            by_code,
            any,
        })
    }

    /// Steps 2-4 (`Board._fire`): field changes, then the first trigger that holds.
    fn fire(
        &mut self,
        py: Python<'_>,
        raw: &Bound<'_, PyAny>,
        event: &mut Event,
        item_index: usize,
        state: &mut ItemState,
    ) -> PyResult<Outcome> {
        let updated = event.etype == ITEM_UPDATED;
        let view = {
            let r = &event.refs[item_index];
            self.view(py, &event.tenant, &r.entity, state.category, event.at)?
        };
        let Some(view) = view else {
            if updated {
                self.apply_changes(state, &mut event.data);
            }
            return Ok(Outcome::Decided(NO_PIPELINE));
        };
        let Some(&position) = view.positions.get(&state.stage) else {
            return Ok(Outcome::UnknownStage(
                self.names.text(state.stage).to_owned(),
                self.names.text(state.category).to_owned(),
            ));
        };
        if updated {
            self.apply_changes(state, &mut event.data);
        }
        if view.any {
            for &code in codes_for(event.etype, &mut event.data) {
                for candidate in &view.by_code[code] {
                    if candidate.position == position
                        || (candidate.position < position && !candidate.allow_backwards)
                    {
                        continue;
                    }
                    // None: Python's own rules are needed to tell.
                    let native = match params_match(&candidate.params, &mut event.data) {
                        Some(true) => match &candidate.condition {
                            None => Some(true),
                            Some(condition) => {
                                self.condition_holds(condition, state, &mut event.data)
                            }
                        },
                        other => other,
                    };
                    let holds = match native {
                        Some(holds) => holds,
                        None => self.ask_python(py, raw, candidate, state)?,
                    };
                    if holds {
                        return Ok(self.make_move(event, item_index, state, position, candidate));
                    }
                }
            }
        }
        Ok(Outcome::Decided(if updated { UPDATED } else { NO_MATCH }))
    }

    /// A condition over the item's fields and the event's data; None: ask Python.
    fn condition_holds(
        &self,
        condition: &Condition,
        state: &ItemState,
        data: &mut Data,
    ) -> Option<bool> {
        let read = |event: bool, name: &str| -> serde_json::Value {
            let raw = if event {
                data.get(name)
            } else {
                let id = self.names.find(name);
                state.fields.as_ref().zip(id).and_then(|(f, id)| f.get(id))
            };
            raw.and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or(serde_json::Value::Null)
        };
        condition.holds(read).ok()
    }

    fn ask_python(
        &self,
        py: Python<'_>,
        raw: &Bound<'_, PyAny>,
        candidate: &Candidate,
        state: &ItemState,
    ) -> PyResult<bool> {
        let fields = state.fields.as_ref().map(|fields| {
            let mut out = Vec::with_capacity(64);
            out.push(b'{');
            for (i, (name, value)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_json_str(&mut out, self.names.text(name));
                out.push(b':');
                out.extend_from_slice(value.as_bytes());
            }
            out.push(b'}');
            PyBytes::new_bound(py, &out)
        });
        self.hooks
            .bind(py)
            .call_method1("holds", (candidate.trigger.bind(py), fields, raw))?
            .extract()
    }

    fn make_move(
        &mut self,
        event: &Event,
        item_index: usize,
        state: &mut ItemState,
        position: usize,
        candidate: &Candidate,
    ) -> Outcome {
        let r = &event.refs[item_index];
        let tid = transition_id(&event.tenant, &r.entity, &r.id, &event.id);
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(b"{\"id\":");
        push_json_str(&mut out, &tid);
        out.extend_from_slice(b",\"tenant\":");
        push_json_str(&mut out, &event.tenant);
        out.extend_from_slice(b",\"item\":{\"entity\":");
        push_json_str(&mut out, &r.entity);
        out.extend_from_slice(b",\"id\":");
        push_json_str(&mut out, &r.id);
        out.extend_from_slice(b"},\"category\":");
        push_json_str(&mut out, self.names.text(state.category));
        out.extend_from_slice(b",\"from_stage\":");
        push_json_str(&mut out, self.names.text(state.stage));
        out.extend_from_slice(b",\"to_stage\":");
        push_json_str(&mut out, &candidate.stage_text);
        out.extend_from_slice(b",\"direction\":");
        let direction = if candidate.position > position {
            "forward"
        } else {
            "backward"
        };
        push_json_str(&mut out, direction);
        out.extend_from_slice(b",\"trigger\":{\"id\":");
        push_json_str(&mut out, &candidate.trigger_id);
        out.extend_from_slice(b",\"code\":");
        push_json_str(&mut out, candidate.code);
        out.extend_from_slice(b"},\"event\":{\"id\":");
        push_json_str(&mut out, &event.id);
        out.extend_from_slice(b",\"type\":");
        push_json_str(&mut out, EVENT_TYPES[event.etype as usize]);
        out.extend_from_slice(b",\"occurred_at\":");
        push_json_str(&mut out, &event.occurred_at);
        out.extend_from_slice(b"}}");
        state.stage = candidate.stage;
        let mut echoes = state
            .echoes
            .take()
            .map(|e| e.into_vec())
            .unwrap_or_default();
        if echoes.len() >= self.echo_window {
            let drop = echoes.len() + 1 - self.echo_window;
            echoes.drain(..drop);
        }
        echoes.push((fingerprint(&tid), candidate.stage));
        state.echoes = Some(echoes.into_boxed_slice());
        Outcome::Move(out)
    }
}

/// Record indexes by key group.
type GroupIndexes = StdHashMap<u32, Vec<usize>>;

/// The key groups of a batch of event records, as `flows.dataflow.route` assigns them.
///
/// A record with a Kafka key that names a single item goes to its key's group
/// undecoded; any other record is decoded here to find its items' groups. Returns
/// the record indexes of each group in input order, and the indexes of records this
/// could not place (no bytes, or not of the common shape): Python routes those.
#[pyfunction]
#[pyo3(signature = (keys, raws, groups))]
fn route_batch(
    keys: Option<&Bound<'_, PyList>>,
    raws: &Bound<'_, PyList>,
    groups: u32,
) -> PyResult<(GroupIndexes, Vec<usize>)> {
    let mut by_group: StdHashMap<u32, Vec<usize>> = StdHashMap::new();
    let mut unplaced = Vec::new();
    let items = memchr::memmem::Finder::new(b"\"items\"");
    let mut key_text = String::new();
    for (index, raw) in raws.iter().enumerate() {
        let Ok(raw) = raw.downcast::<PyBytes>() else {
            unplaced.push(index);
            continue;
        };
        let raw = raw.as_bytes();
        if let Some(keys) = keys {
            let key = keys.get_item(index)?;
            if let Ok(key) = key.downcast::<PyBytes>() {
                let key = key.as_bytes();
                if !key.is_empty() && items.find(raw).is_none() {
                    by_group
                        .entry(crc32fast::hash(key) % groups)
                        .or_default()
                        .push(index);
                    continue;
                }
            }
        }
        let Some(event) = decode_event(raw, None) else {
            unplaced.push(index);
            continue;
        };
        let mut placed: SmallVec<[u32; 4]> = SmallVec::new();
        for r in &event.refs {
            write_key(&mut key_text, &event.tenant, r);
            let group = group_of(&key_text, groups);
            if !placed.contains(&group) {
                placed.push(group);
                by_group.entry(group).or_default().push(index);
            }
        }
    }
    Ok((by_group, unplaced))
}

#[pymodule]
fn crm_triggers_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeBoard>()?;
    m.add_function(wrap_pyfunction!(route_batch, m)?)?;
    Ok(())
}
