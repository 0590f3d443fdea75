//! The stays step of the statistics job, compiled: a partition's batches of raw history
//! records in, chunks of window figures out (`flows.stats.stays.StaysLogic` is the
//! reference; `flows/stats/native.py` wraps this class).
//!
//! It decodes the common well-formed history record itself; a record it does not take
//! (anything to reject, an unusual shape, an `at` outside the windows' range) is read by
//! Python's decoder through `hooks.slow`, which also words every dead letter. What each
//! record adds (an entry, a closed stay, a move, a fire) is counted here into a chunk per
//! pipeline and window, in the order and with the float sums of the Python step; the
//! facts stay here and become Python values only when a chunk is late.

use super::*;
use serde::de::{IgnoredAny, MapAccess};

type Set<T> = std::collections::HashSet<T, ahash::RandomState>;

// Decoding ------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Created,
    Trigger,
    Crm,
    Deleted,
}

impl Kind {
    fn of(text: &str) -> Option<Kind> {
        match text {
            "created" => Some(Kind::Created),
            "trigger" => Some(Kind::Trigger),
            "crm" => Some(Kind::Crm),
            "deleted" => Some(Kind::Deleted),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Created => "created",
            Kind::Trigger => "trigger",
            Kind::Crm => "crm",
            Kind::Deleted => "deleted",
        }
    }

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(code: u8) -> Option<Kind> {
        [Kind::Created, Kind::Trigger, Kind::Crm, Kind::Deleted]
            .get(code as usize)
            .copied()
    }
}

/// A string read as it is in the record, without escapes (a key, `at`): anything
/// else is left to Python's decoder.
struct Plain<'a>(&'a str);

impl<'de: 'a, 'a> Deserialize<'de> for Plain<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PlainVisitor;
        impl<'de> Visitor<'de> for PlainVisitor {
            type Value = Plain<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string without escapes")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Plain<'de>, E> {
                Ok(Plain(v))
            }
        }
        deserializer.deserialize_str(PlainVisitor)
    }
}

/// A string, escapes decoded (JSON's escapes read the same in every decoder).
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

fn missing<E: de::Error>(name: &str) -> E {
    E::custom(format_args!("missing {name}"))
}

fn repeated<E: de::Error>(name: &str) -> E {
    E::custom(format_args!("{name} twice"))
}

/// Sets a field once: a key written twice is left to Python's decoder.
fn once<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    slot: &mut Option<T>,
    map: &mut A,
    name: &str,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(repeated(name));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

/// `item`: `{entity, id}`; only an object (a struct visitor would also take an array).
struct WireItem<'a> {
    entity: Text<'a>,
    id: Id<'a>,
}

impl<'de: 'a, 'a> Deserialize<'de> for WireItem<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = WireItem<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an item object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireItem<'de>, A::Error> {
                let (mut entity, mut id) = (None, None);
                while let Some(key) = map.next_key::<Plain>()? {
                    match key.0 {
                        "entity" => once(&mut entity, &mut map, "entity")?,
                        "id" => once(&mut id, &mut map, "id")?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(WireItem {
                    entity: entity.ok_or_else(|| missing("entity"))?,
                    id: id.ok_or_else(|| missing("id"))?,
                })
            }
        }
        deserializer.deserialize_map(ItemVisitor)
    }
}

/// `trigger`: `{id, code}`.
struct WireTrigger<'a> {
    id: Id<'a>,
    code: Option<Text<'a>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for WireTrigger<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TriggerVisitor;
        impl<'de> Visitor<'de> for TriggerVisitor {
            type Value = WireTrigger<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a trigger object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<WireTrigger<'de>, A::Error> {
                let (mut id, mut code) = (None, None);
                while let Some(key) = map.next_key::<Plain>()? {
                    match key.0 {
                        "id" => once(&mut id, &mut map, "id")?,
                        "code" => once(&mut code, &mut map, "code")?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(WireTrigger {
                    id: id.ok_or_else(|| missing("id"))?,
                    code: code.flatten(),
                })
            }
        }
        deserializer.deserialize_map(TriggerVisitor)
    }
}

/// The fields of a history record the statistics read (`flows.stats.records._RawHistory`).
struct Wire<'a> {
    id: Id<'a>,
    item: WireItem<'a>,
    kind: Kind,
    at: &'a str,
    tenant: Option<Text<'a>>,
    category: Option<Id<'a>>,
    stage: Option<Id<'a>>,
    from_stage: Option<Id<'a>>,
    semantic: Option<Text<'a>>,
    trigger: Option<WireTrigger<'a>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Wire<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WireVisitor;
        impl<'de> Visitor<'de> for WireVisitor {
            type Value = Wire<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a history record")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Wire<'de>, A::Error> {
                let (mut id, mut item, mut kind, mut at) = (None, None, None, None);
                let (mut tenant, mut category, mut stage) = (None, None, None);
                let (mut from_stage, mut semantic, mut trigger) = (None, None, None);
                while let Some(key) = map.next_key::<Plain>()? {
                    match key.0 {
                        "id" => once(&mut id, &mut map, "id")?,
                        "item" => once(&mut item, &mut map, "item")?,
                        "kind" => {
                            if kind.is_some() {
                                return Err(repeated("kind"));
                            }
                            let name: Text = map.next_value()?;
                            let known = Kind::of(&name.0);
                            kind = Some(known.ok_or_else(|| de::Error::custom("kind"))?);
                        }
                        "at" => once(&mut at, &mut map, "at")?,
                        "tenant" => once(&mut tenant, &mut map, "tenant")?,
                        "category" => once(&mut category, &mut map, "category")?,
                        "stage" => once(&mut stage, &mut map, "stage")?,
                        "from_stage" => once(&mut from_stage, &mut map, "from_stage")?,
                        "semantic" => once(&mut semantic, &mut map, "semantic")?,
                        "trigger" => once(&mut trigger, &mut map, "trigger")?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let at: Plain = at.ok_or_else(|| missing("at"))?;
                Ok(Wire {
                    id: id.ok_or_else(|| missing("id"))?,
                    item: item.ok_or_else(|| missing("item"))?,
                    kind: kind.ok_or_else(|| missing("kind"))?,
                    at: at.0,
                    tenant: tenant.flatten(),
                    category: category.flatten(),
                    stage: stage.flatten(),
                    from_stage: from_stage.flatten(),
                    semantic: semantic.flatten(),
                    trigger: trigger.flatten(),
                })
            }
        }
        deserializer.deserialize_map(WireVisitor)
    }
}

/// A history record as the statistics read it (`flows.stats.records.HistoryRecord`).
struct Record<'a> {
    id: Cow<'a, str>,
    tenant: Cow<'a, str>,
    entity: Cow<'a, str>,
    item_id: Cow<'a, str>,
    category: Cow<'a, str>,
    stage: Option<Cow<'a, str>>,
    from_stage: Option<Cow<'a, str>>,
    semantic: Option<Cow<'a, str>>,
    kind: Kind,
    at: i64,
    trigger: Option<(Cow<'a, str>, Option<Cow<'a, str>>)>,
}

fn nonempty_id(id: Id<'_>) -> Option<Cow<'_, str>> {
    nonempty(id.0)
}

/// The record, if it is of the common well-formed shape and Python's decoder would read
/// it the same; None: ask Python.
fn decode_history(raw: &[u8]) -> Option<Record<'_>> {
    // Python rejects a record nested deeper than MAX_DEPTH (serde_json skips an ignored
    // value of any depth): with that many brackets, let it decide.
    let brackets = raw
        .iter()
        .fold(0usize, |n, &b| n + usize::from(b == b'{' || b == b'['));
    if brackets > scan::MAX_DEPTH as usize {
        return None;
    }
    // serde_json skips an ignored string's escapes unchecked; Python rejects a lone
    // surrogate anywhere: with a \uD... escape, let it decide.
    let surrogate = memchr::memchr(b'\\', raw).is_some()
        && memchr::memmem::find_iter(raw, b"\\u")
            .any(|at| matches!(raw.get(at + 2), Some(b'd' | b'D')));
    if surrogate {
        return None;
    }
    let text = std::str::from_utf8(raw).ok()?;
    let wire: Wire = serde_json::from_str(text).ok()?;
    let kind = wire.kind;
    let tenant = match wire.tenant {
        None => Cow::Borrowed("default"),
        Some(t) if is_name(&t.0) => t.0,
        Some(_) => return None,
    };
    if !is_name(&wire.item.entity.0) {
        return None;
    }
    let stage = match wire.stage {
        Some(s) => Some(nonempty_id(s)?),
        None if kind == Kind::Deleted => None,
        None => return None,
    };
    let from_stage = match wire.from_stage {
        Some(s) => Some(nonempty_id(s)?),
        None => None,
    };
    let category = match wire.category {
        Some(c) => nonempty_id(c)?,
        None => Cow::Borrowed("0"),
    };
    let trigger = match (kind, wire.trigger) {
        (Kind::Trigger, Some(t)) => Some((nonempty_id(t.id)?, t.code.map(|c| c.0))),
        (Kind::Trigger, None) => return None,
        _ => None,
    };
    Some(Record {
        id: nonempty_id(wire.id)?,
        tenant,
        entity: wire.item.entity.0,
        item_id: nonempty_id(wire.item.id)?,
        category,
        stage,
        from_stage,
        semantic: wire.semantic.map(|s| s.0),
        kind,
        at: parse_time(wire.at)?,
        trigger,
    })
}

/// A record as Python's decoder hands it back: its fields, `at` in microseconds.
type SlowRecord = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    i64,
    Option<String>,
    Option<String>,
);

fn record_of(fields: SlowRecord) -> PyResult<Record<'static>> {
    let (id, tenant, entity, item_id, category, stage, from_stage, semantic, kind, at, tid, code) =
        fields;
    let kind = Kind::of(&kind)
        .ok_or_else(|| PyValueError::new_err(format!("unknown history kind {kind:?}")))?;
    Ok(Record {
        id: id.into(),
        tenant: tenant.into(),
        entity: entity.into(),
        item_id: item_id.into(),
        category: category.into(),
        stage: stage.map(Cow::Owned),
        from_stage: from_stage.map(Cow::Owned),
        semantic: semantic.map(Cow::Owned),
        kind,
        at,
        trigger: tid.map(|t| (Cow::Owned(t), code.map(Cow::Owned))),
    })
}

// Facts and chunks ---------------------------------------------------------------------

/// What one record adds to one pipeline's window (`flows.stats.stays.Fact`).
#[derive(Clone)]
struct Fact {
    at: i64,
    item: CompactString,
    history_id: CompactString,
    counted: bool,
    entry: Option<CompactString>,
    semantic: Option<CompactString>,
    stay: Option<(CompactString, Option<CompactString>, f64)>,
    moved: Option<(Option<CompactString>, CompactString, Kind)>,
    trigger: Option<(CompactString, Option<CompactString>)>,
}

/// One stage in a chunk (`flows.stats.figures.StageFigures`).
#[derive(Default)]
struct StageCounts {
    semantic: Option<CompactString>,
    entries: u64,
    items: Set<CompactString>,
    closed: u64,
    sum_s: f64,
    max_s: f64,
    histogram: HashMap<u32, u64>,
}

/// The figures of one pipeline's facts in one window that follow each other in a call
/// (`flows.stats.stays.Chunk`).
struct Chunk {
    pipeline: u32,
    start: i64,
    end: i64,
    at: i64,
    records: u64,
    stages: HashMap<CompactString, StageCounts>,
    moves: HashMap<(Option<CompactString>, CompactString, Kind), u64>,
    fires: HashMap<CompactString, (Option<CompactString>, u64, Set<CompactString>)>,
    facts: Vec<Fact>,
}

impl Chunk {
    fn new(pipeline: u32, start: i64, end: i64, at: i64) -> Chunk {
        Chunk {
            pipeline,
            start,
            end,
            at,
            records: 0,
            stages: HashMap::default(),
            moves: HashMap::default(),
            fires: HashMap::default(),
            facts: Vec::new(),
        }
    }

    /// `flows.stats.figures.count_fact`, in the same order.
    fn count(
        &mut self,
        fact: Fact,
        highs: &[f64],
        py: Python<'_>,
        hooks: &PyObject,
    ) -> PyResult<()> {
        if fact.counted {
            self.records += 1;
        }
        if let Some(stage) = &fact.entry {
            let entered = self.stages.entry(stage.clone()).or_default();
            entered.entries += 1;
            if !entered.items.contains(&fact.item) {
                entered.items.insert(fact.item.clone());
            }
            if fact.semantic.is_some() {
                entered.semantic = fact.semantic.clone();
            }
        }
        if let Some((stage, semantic, seconds)) = &fact.stay {
            let closed = self.stages.entry(stage.clone()).or_default();
            closed.closed += 1;
            closed.sum_s += *seconds;
            if *seconds > closed.max_s {
                closed.max_s = *seconds;
            }
            let bucket = bucket_of(*seconds, highs, py, hooks)?;
            *closed.histogram.entry(bucket).or_insert(0) += 1;
            if closed.semantic.is_none() {
                closed.semantic = semantic.clone();
            }
        }
        if let Some(moved) = &fact.moved {
            *self.moves.entry(moved.clone()).or_insert(0) += 1;
        }
        if let Some((id, code)) = &fact.trigger {
            // The code of the latest fire, as `count_fact` keeps it.
            let fired = self
                .fires
                .entry(id.clone())
                .or_insert_with(|| (None, 0, Set::default()));
            fired.0.clone_from(code);
            fired.1 += 1;
            if !fired.2.contains(&fact.item) {
                fired.2.insert(fact.item.clone());
            }
        }
        self.facts.push(fact);
        Ok(())
    }

    /// (pipeline, at, records, stages, moves, fires, facts) for `flows/stats/native.py`.
    fn into_py(self, py: Python<'_>, pipeline: &str) -> PyResult<PyObject> {
        let stages = PyList::empty_bound(py);
        for (stage, s) in self.stages {
            let items = pyo3::types::PySet::new_bound(
                py,
                &s.items.iter().map(|i| i.as_str()).collect::<Vec<_>>(),
            )?;
            let histogram = pyo3::types::PyDict::new_bound(py);
            for (bucket, count) in s.histogram {
                histogram.set_item(bucket, count)?;
            }
            let row = (
                stage.as_str(),
                s.semantic.as_deref(),
                s.entries,
                items,
                s.closed,
                s.sum_s,
                s.max_s,
                histogram,
            );
            stages.append(row)?;
        }
        let moves = pyo3::types::PyDict::new_bound(py);
        for ((from, to, kind), count) in self.moves {
            moves.set_item((from.as_deref(), to.as_str(), kind.name()), count)?;
        }
        let fires = pyo3::types::PyDict::new_bound(py);
        for (id, (code, count, items)) in self.fires {
            let items = pyo3::types::PySet::new_bound(
                py,
                &items.iter().map(|i| i.as_str()).collect::<Vec<_>>(),
            )?;
            fires.set_item(id.as_str(), (code.as_deref(), count, items))?;
        }
        let facts = Py::new(py, StatsFacts { facts: self.facts })?;
        Ok((pipeline, self.at, self.records, stages, moves, fires, facts).into_py(py))
    }
}

/// The bucket of a stay length (`analytics.histogram.bucket_of`): a search of the
/// bounds Python handed over; beyond them (stays longer than the table) Python answers.
fn bucket_of(seconds: f64, highs: &[f64], py: Python<'_>, hooks: &PyObject) -> PyResult<u32> {
    match highs.last() {
        Some(&end) if seconds < end => Ok(highs.partition_point(|&h| h <= seconds) as u32),
        _ => hooks.bind(py).call_method1("bucket", (seconds,))?.extract(),
    }
}

// The step -------------------------------------------------------------------------------

/// An item's open stay: the stay its last record opened.
struct Open {
    at: i64,
    stage: CompactString,
    semantic: Option<CompactString>,
    pipeline: u32,
}

const STAYS_FORMAT: u32 = 1;

/// One partition of the history topic: its items' open stays, and chunks of what each
/// record adds (`flows.stats.stays.StaysLogic`).
#[pyclass(module = "crm_triggers_native")]
pub(crate) struct StatsStays {
    window: i64,
    first_start: i64,
    last_start: i64,
    highs: Vec<f64>,
    open: HashMap<CompactString, Open>,
    pipelines: Names,
    hooks: PyObject,
}

/// Microseconds as Python's `timedelta.total_seconds()` gives them.
fn seconds_of(micros: i64, py: Python<'_>, hooks: &PyObject) -> PyResult<f64> {
    // Exact below 2^53 microseconds (285 years); beyond, Python's correctly rounded division.
    if micros.unsigned_abs() <= 1 << 53 {
        Ok(micros as f64 / 1e6)
    } else {
        hooks.bind(py).call_method1("seconds", (micros,))?.extract()
    }
}

fn put_i64(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_opt(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => {
            out.push(1);
            put_str(out, text);
        }
        None => out.push(0),
    }
}

impl<'a> Reader<'a> {
    fn i64(&mut self) -> Option<i64> {
        Some(self.u64()? as i64)
    }
    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn opt(&mut self) -> Option<Option<&'a str>> {
        match self.byte()? {
            0 => Some(None),
            1 => Some(Some(self.str()?)),
            _ => None,
        }
    }
}

impl StatsStays {
    /// The facts of one record, in `stay_facts`' order, each with its pipeline.
    fn facts_of(
        &mut self,
        py: Python<'_>,
        record: Record<'_>,
        key: &mut String,
        out: &mut SmallVec<[(u32, Fact); 2]>,
    ) -> PyResult<()> {
        // The pipeline `tenant/entity/category`, then the item `tenant/entity/id`, in one buffer.
        key.clear();
        key.push_str(&record.tenant);
        key.push('/');
        key.push_str(&record.entity);
        key.push('/');
        let head = key.len();
        key.push_str(&record.category);
        let pipeline = self.pipelines.intern(key);
        key.truncate(head);
        key.push_str(&record.item_id);
        let item = CompactString::from(key.as_str());
        let history_id = CompactString::from(record.id.as_ref());
        let at = record.at;
        let opens = record.kind != Kind::Deleted && record.stage.is_some();
        let mut closed = None;
        let opened = if opens {
            None
        } else {
            self.open.remove(key.as_str())
        };
        let previous = match &opened {
            Some(o) => Some(o),
            None if opens => self.open.get(key.as_str()),
            None => None,
        };
        if let Some(o) = previous {
            let seconds = seconds_of(at - o.at, py, &self.hooks)?;
            let stay = (
                o.stage.clone(),
                o.semantic.clone(),
                if seconds > 0.0 { seconds } else { 0.0 },
            );
            if o.pipeline != pipeline {
                out.push((
                    o.pipeline,
                    Fact {
                        at,
                        item: item.clone(),
                        history_id: history_id.clone(),
                        counted: false,
                        entry: None,
                        semantic: None,
                        stay: Some(stay),
                        moved: None,
                        trigger: None,
                    },
                ));
            } else {
                closed = Some(stay);
            }
        }
        let stage: Option<CompactString> = record.stage.as_deref().map(CompactString::from);
        let semantic: Option<CompactString> = record.semantic.as_deref().map(CompactString::from);
        let moved = match record.kind {
            Kind::Trigger | Kind::Crm => Some((
                record.from_stage.as_deref().map(CompactString::from),
                stage.clone().unwrap_or_default(),
                record.kind,
            )),
            _ => None,
        };
        let trigger = record.trigger.as_ref().map(|(id, code)| {
            (
                CompactString::from(id.as_ref()),
                code.as_deref().map(CompactString::from),
            )
        });
        if opens {
            let after = Open {
                at,
                stage: stage.clone().unwrap_or_default(),
                semantic: semantic.clone(),
                pipeline,
            };
            match self.open.get_mut(key.as_str()) {
                Some(slot) => *slot = after,
                None => {
                    self.open.insert(item.clone(), after);
                }
            }
        }
        out.push((
            pipeline,
            Fact {
                at,
                item,
                history_id,
                counted: true,
                entry: if opens { stage } else { None },
                semantic,
                stay: closed,
                moved,
                trigger,
            },
        ));
        Ok(())
    }
}

#[pymethods]
impl StatsStays {
    /// `window` in microseconds; windows may start from `first_start` to `last_start`
    /// (an `at` in another window is Python's to reject); `highs`: the histogram's
    /// bucket bounds; `hooks`: `slow(raw)`, `seconds(micros)`, `bucket(seconds)`.
    #[new]
    fn new(
        window: i64,
        first_start: i64,
        last_start: i64,
        highs: Vec<f64>,
        hooks: PyObject,
    ) -> PyResult<Self> {
        if window <= 0 {
            return Err(PyValueError::new_err("window must be positive"));
        }
        Ok(StatsStays {
            window,
            first_start,
            last_start,
            highs,
            open: HashMap::default(),
            pipelines: Names::default(),
            hooks,
        })
    }

    fn __len__(&self) -> usize {
        self.open.len()
    }

    /// Decode, find and count one call's batches (lists of raw values, None for a
    /// tombstone), in order: a list of dead letters `(batch, index, code, message)` and
    /// chunks `(pipeline, at, records, stages, moves, fires, facts)`, as
    /// `StaysLogic.on_batch` emits them.
    fn on_batches<'py>(
        &mut self,
        py: Python<'py>,
        batches: &Bound<'py, PyList>,
    ) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty_bound(py);
        // Per pipeline, its slot in `filling` (the order of first appearance).
        let mut slot_of: HashMap<u32, usize> = HashMap::default();
        let mut filling: Vec<Chunk> = Vec::new();
        let mut key = String::with_capacity(64);
        let mut facts: SmallVec<[(u32, Fact); 2]> = SmallVec::new();
        let window = self.window;
        for (number, batch) in batches.iter().enumerate() {
            let batch = batch.downcast_into::<PyList>()?;
            for (index, value) in batch.iter().enumerate() {
                let bytes = if value.is_none() {
                    None
                } else {
                    Some(value.downcast::<PyBytes>()?.as_bytes())
                };
                let fast = bytes.and_then(decode_history).filter(|r| {
                    let start = r.at.div_euclid(window) * window;
                    self.first_start <= start && start <= self.last_start
                });
                let record = match fast {
                    Some(record) => record,
                    None => {
                        let answer = self.hooks.bind(py).call_method1("slow", (&value,))?;
                        let answer = answer.downcast::<PyTuple>()?;
                        if answer.len() == 2 {
                            let (code, message): (String, String) = answer.extract()?;
                            out.append((number, index, code, message))?;
                            continue;
                        }
                        record_of(answer.extract()?)?
                    }
                };
                facts.clear();
                self.facts_of(py, record, &mut key, &mut facts)?;
                for (pipeline, fact) in facts.drain(..) {
                    let at = fact.at;
                    let slot = match slot_of.get(&pipeline) {
                        Some(&slot) => {
                            let chunk = &mut filling[slot];
                            if chunk.start <= at && at < chunk.end {
                                if at > chunk.at {
                                    chunk.at = at;
                                }
                            } else {
                                let start = at.div_euclid(window) * window;
                                let done = std::mem::replace(
                                    chunk,
                                    Chunk::new(pipeline, start, start + window, at),
                                );
                                let name = self.pipelines.text(pipeline).to_owned();
                                out.append(done.into_py(py, &name)?)?;
                            }
                            slot
                        }
                        None => {
                            let start = at.div_euclid(window) * window;
                            filling.push(Chunk::new(pipeline, start, start + window, at));
                            slot_of.insert(pipeline, filling.len() - 1);
                            filling.len() - 1
                        }
                    };
                    filling[slot].count(fact, &self.highs, py, &self.hooks)?;
                }
            }
        }
        for chunk in filling {
            let name = self.pipelines.text(chunk.pipeline).to_owned();
            out.append(chunk.into_py(py, &name)?)?;
        }
        Ok(out)
    }

    /// Open stays to start from, as the Python step keeps them:
    /// `(item, at in microseconds, stage, semantic, pipeline)`.
    fn restore_open(&mut self, stays: Vec<(String, i64, String, Option<String>, String)>) {
        self.open.clear();
        for (item, at, stage, semantic, pipeline) in stays {
            let pipeline = self.pipelines.intern(&pipeline);
            let open = Open {
                at,
                stage: stage.into(),
                semantic: semantic.map(Into::into),
                pipeline,
            };
            self.open.insert(item.into(), open);
        }
    }

    /// The open stays as `restore_open` takes them.
    fn open_stays(&self) -> Vec<(&str, i64, &str, Option<&str>, &str)> {
        self.open
            .iter()
            .map(|(item, o)| {
                let pipeline = self.pipelines.text(o.pipeline);
                (
                    item.as_str(),
                    o.at,
                    o.stage.as_str(),
                    o.semantic.as_deref(),
                    pipeline,
                )
            })
            .collect()
    }

    /// The open stays in a snapshot: bytes that `load` reads.
    fn dump<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let mut out = Vec::with_capacity(64 + self.open.len() * 48);
        put_u32(&mut out, STAYS_FORMAT);
        put_u32(&mut out, self.pipelines.names.len() as u32);
        for name in &self.pipelines.names {
            put_str(&mut out, name);
        }
        put_u32(&mut out, self.open.len() as u32);
        for (item, o) in &self.open {
            put_str(&mut out, item);
            put_i64(&mut out, o.at);
            put_str(&mut out, &o.stage);
            put_opt(&mut out, o.semantic.as_deref());
            put_u32(&mut out, o.pipeline);
        }
        PyBytes::new_bound(py, &out)
    }

    fn load(&mut self, data: &[u8]) -> PyResult<()> {
        let bad = || PyValueError::new_err("not a snapshot of the native statistics step");
        let mut r = Reader { data, at: 0 };
        if r.u32().ok_or_else(bad)? != STAYS_FORMAT {
            return Err(bad());
        }
        let mut pipelines = Names::default();
        let count = r.u32().ok_or_else(bad)?;
        for _ in 0..count {
            pipelines.intern(r.str().ok_or_else(bad)?);
        }
        let items = r.u32().ok_or_else(bad)? as usize;
        let mut open = HashMap::with_capacity_and_hasher(items, Default::default());
        for _ in 0..items {
            let item: CompactString = r.str().ok_or_else(bad)?.into();
            let at = r.i64().ok_or_else(bad)?;
            let stage = r.str().ok_or_else(bad)?.into();
            let semantic = r.opt().ok_or_else(bad)?.map(Into::into);
            let pipeline = r.u32().ok_or_else(bad)?;
            if pipeline >= count {
                return Err(bad());
            }
            open.insert(
                item,
                Open {
                    at,
                    stage,
                    semantic,
                    pipeline,
                },
            );
        }
        if r.at != data.len() {
            return Err(bad());
        }
        self.pipelines = pipelines;
        self.open = open;
        Ok(())
    }
}

/// The facts of a chunk, kept compiled until a late chunk asks for them; pickled as bytes.
#[pyclass(module = "crm_triggers_native")]
pub(crate) struct StatsFacts {
    facts: Vec<Fact>,
}

type FactRow<'a> = (
    i64,
    &'a str,
    &'a str,
    bool,
    Option<&'a str>,
    Option<&'a str>,
    Option<(&'a str, Option<&'a str>, f64)>,
    Option<(Option<&'a str>, &'a str, &'static str)>,
    Option<(&'a str, Option<&'a str>)>,
);

#[pymethods]
impl StatsFacts {
    fn __len__(&self) -> usize {
        self.facts.len()
    }

    /// Each fact as `(at in microseconds, item, history_id, counted, stage, semantic,
    /// stay, move, trigger)`, the fields of `flows.stats.stays.Fact`.
    fn rows(&self) -> Vec<FactRow<'_>> {
        self.facts
            .iter()
            .map(|f| {
                (
                    f.at,
                    f.item.as_str(),
                    f.history_id.as_str(),
                    f.counted,
                    f.entry.as_deref(),
                    f.semantic.as_deref(),
                    f.stay
                        .as_ref()
                        .map(|(s, m, secs)| (s.as_str(), m.as_deref(), *secs)),
                    f.moved
                        .as_ref()
                        .map(|(from, to, kind)| (from.as_deref(), to.as_str(), kind.name())),
                    f.trigger
                        .as_ref()
                        .map(|(id, code)| (id.as_str(), code.as_deref())),
                )
            })
            .collect()
    }

    fn dump<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let mut out = Vec::with_capacity(8 + self.facts.len() * 96);
        put_u32(&mut out, self.facts.len() as u32);
        for f in &self.facts {
            put_i64(&mut out, f.at);
            put_str(&mut out, &f.item);
            put_str(&mut out, &f.history_id);
            out.push(f.counted as u8);
            put_opt(&mut out, f.entry.as_deref());
            put_opt(&mut out, f.semantic.as_deref());
            match &f.stay {
                Some((stage, semantic, seconds)) => {
                    out.push(1);
                    put_str(&mut out, stage);
                    put_opt(&mut out, semantic.as_deref());
                    out.extend_from_slice(&seconds.to_le_bytes());
                }
                None => out.push(0),
            }
            match &f.moved {
                Some((from, to, kind)) => {
                    out.push(1);
                    put_opt(&mut out, from.as_deref());
                    put_str(&mut out, to);
                    out.push(kind.code());
                }
                None => out.push(0),
            }
            match &f.trigger {
                Some((id, code)) => {
                    out.push(1);
                    put_str(&mut out, id);
                    put_opt(&mut out, code.as_deref());
                }
                None => out.push(0),
            }
        }
        PyBytes::new_bound(py, &out)
    }

    #[staticmethod]
    fn load(data: &[u8]) -> PyResult<StatsFacts> {
        let bad = || PyValueError::new_err("not the facts of a native statistics chunk");
        let mut r = Reader { data, at: 0 };
        let count = r.u32().ok_or_else(bad)? as usize;
        let mut facts = Vec::with_capacity(count.min(data.len()));
        let text = |s: &str| CompactString::from(s);
        for _ in 0..count {
            let at = r.i64().ok_or_else(bad)?;
            let item = text(r.str().ok_or_else(bad)?);
            let history_id = text(r.str().ok_or_else(bad)?);
            let counted = r.byte().ok_or_else(bad)? != 0;
            let entry = r.opt().ok_or_else(bad)?.map(text);
            let semantic = r.opt().ok_or_else(bad)?.map(text);
            let stay = match r.byte().ok_or_else(bad)? {
                0 => None,
                _ => {
                    let stage = text(r.str().ok_or_else(bad)?);
                    let semantic = r.opt().ok_or_else(bad)?.map(text);
                    let seconds =
                        f64::from_le_bytes(r.take(8).ok_or_else(bad)?.try_into().unwrap());
                    Some((stage, semantic, seconds))
                }
            };
            let moved = match r.byte().ok_or_else(bad)? {
                0 => None,
                _ => {
                    let from = r.opt().ok_or_else(bad)?.map(text);
                    let to = text(r.str().ok_or_else(bad)?);
                    let kind = Kind::from_code(r.byte().ok_or_else(bad)?).ok_or_else(bad)?;
                    Some((from, to, kind))
                }
            };
            let trigger = match r.byte().ok_or_else(bad)? {
                0 => None,
                _ => {
                    let id = text(r.str().ok_or_else(bad)?);
                    Some((id, r.opt().ok_or_else(bad)?.map(text)))
                }
            };
            facts.push(Fact {
                at,
                item,
                history_id,
                counted,
                entry,
                semantic,
                stay,
                moved,
                trigger,
            });
        }
        if r.at != data.len() {
            return Err(bad());
        }
        Ok(StatsFacts { facts })
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(PyObject, (Bound<'py, PyBytes>,))> {
        let load = py.get_type_bound::<StatsFacts>().getattr("load")?;
        Ok((load.unbind(), (self.dump(py),)))
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<StatsStays>()?;
    m.add_class::<StatsFacts>()?;
    Ok(())
}
