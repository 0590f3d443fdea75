//! The compiled board: its Python class and the per-record decision (`Board.decide`).

use super::*;

// Outcomes ------------------------------------------------------------------------------

pub(crate) enum Outcome {
    Decided(usize),
    Move(Move),
    UnknownItem,
    UnknownStage(String, String),
}

/// The items of one key group, decided as `state.board.Board` decides them.
#[pyclass(module = "crm_triggers_native")]
pub(crate) struct NativeBoard {
    pub(crate) items: HashMap<CompactString, ItemState>,
    pub(crate) names: Names,
    pub(crate) watched: HashMap<Box<str>, u32>,
    pub(crate) views: HashMap<Box<str>, Vec<CachedView>>,
    pub(crate) seen_window: usize,
    pub(crate) echo_window: usize,
    pub(crate) hooks: PyObject,
    /// Whether to write the stage history (`set_history`).
    pub(crate) history: bool,
}

/// A transition: its JSON line and what the stage history needs of it.
pub(crate) struct Move {
    pub(crate) json: Vec<u8>,
    pub(crate) tid: String,
    pub(crate) from_stage: u32,
    pub(crate) to_stage: u32,
    /// Empty unless the board writes the stage history.
    pub(crate) trigger_id: String,
    pub(crate) code: &'static str,
}

pub(crate) struct Batch {
    /// The item key being decided, reused from record to record.
    pub(crate) key: String,
    pub(crate) counts: [u64; REASONS.len()],
    pub(crate) extra_items: u64,
    pub(crate) notes: Vec<PyObject>,
    /// Every worker reads every record (`decide_batch`'s `shared`).
    pub(crate) shared: bool,
}

#[pymethods]
impl NativeBoard {
    #[new]
    pub(crate) fn new(seen_window: usize, echo_window: usize, hooks: PyObject) -> PyResult<Self> {
        configured()?;
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
            history: false,
        })
    }

    /// Write the stage history (notes of kind history) from now on, or stop.
    pub(crate) fn set_history(&mut self, on: bool) {
        self.history = on;
    }

    /// The item fields some condition reads; called whenever the table changes.
    pub(crate) fn set_watched(&mut self, names: Vec<String>) {
        self.watched.clear();
        for name in names {
            let id = self.names.intern(&name);
            self.watched.insert(name.into(), id);
        }
    }

    /// Forget the views of the trigger table: it changed.
    pub(crate) fn clear_views(&mut self) {
        self.views.clear();
    }

    pub(crate) fn __len__(&self) -> usize {
        self.items.len()
    }

    /// Decide a batch of event records of key group `group` (of `groups`): a list of
    /// bytes (or None), or the `Lines` of a block.
    ///
    /// Returns (counts by reason, extra items, notes); a note is (record index, item
    /// index, item key or None, kind, payload) for each transition and dead letter.
    ///
    /// `shared`: every worker reads every record and decides the items of its own
    /// group. A record of a single item of another group is skipped before it is
    /// decoded; one that must be decoded to know its items is skipped where none of
    /// them is this group's, and only group 0 reports it if it is rejected whole.
    #[pyo3(signature = (raws, group, groups, max_bytes, shared=false))]
    pub(crate) fn decide_batch<'py>(
        &mut self,
        py: Python<'py>,
        raws: &Bound<'py, PyAny>,
        group: u32,
        groups: u32,
        max_bytes: usize,
        shared: bool,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let mut batch = Batch {
            key: String::with_capacity(64),
            counts: [0; REASONS.len()],
            extra_items: 0,
            notes: Vec::new(),
            shared: shared && groups > 1,
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
    pub(crate) fn item(
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
    pub(crate) fn heap_bytes(&self) -> usize {
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
    pub(crate) fn dump<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
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
    pub(crate) fn load(&mut self, data: &[u8]) -> PyResult<()> {
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

impl NativeBoard {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn decide_records(
        &mut self,
        items: &mut HashMap<CompactString, ItemState>,
        py: Python<'_>,
        raws: &Bound<'_, PyAny>,
        group: u32,
        groups: u32,
        max_bytes: usize,
        batch: &mut Batch,
    ) -> PyResult<()> {
        if let Ok(lines) = raws.downcast::<Lines>() {
            // Lines of a block: a line's bytes object is made only for a line decided here.
            for (index, raw) in lines.get().each(py).enumerate() {
                let make = || PyBytes::new_bound(py, raw).into_any();
                self.decide_record(items, py, index, raw, make, group, groups, max_bytes, batch)?;
            }
            return Ok(());
        }
        for (index, raw_obj) in raws.downcast::<PyList>()?.iter().enumerate() {
            // A record without bytes (a Kafka tombstone) is Python's to reject.
            let raw = raw_obj
                .downcast::<PyBytes>()
                .map(|b| b.as_bytes())
                .unwrap_or(b"");
            let make = || raw_obj.clone();
            self.decide_record(items, py, index, raw, make, group, groups, max_bytes, batch)?;
        }
        Ok(())
    }

    /// One record of a batch: `raw` its bytes, `make` the Python object of them
    /// (asked for only when the record is this group's to decide). A record longer
    /// than `max_bytes` is Python's to reject.
    #[allow(clippy::too_many_arguments)]
    fn decide_record<'py>(
        &mut self,
        items: &mut HashMap<CompactString, ItemState>,
        py: Python<'py>,
        index: usize,
        raw: &[u8],
        make: impl FnOnce() -> Bound<'py, PyAny>,
        group: u32,
        groups: u32,
        max_bytes: usize,
        batch: &mut Batch,
    ) -> PyResult<()> {
        let mut own_key = false;
        if batch.shared && raw.len() <= max_bytes && single_key(raw, &mut batch.key) {
            if group_of(&batch.key, groups) != group {
                return Ok(());
            }
            own_key = true;
        }
        let raw_obj = make();
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
                    // Shared and of unknown items: every worker rejects it; one reports it.
                    if !batch.shared || own_key || group == 0 {
                        let note = (index, 0usize, py.None(), NOTE_REJECTED, answer.clone());
                        batch.notes.push(note.into_py(py));
                    }
                    return Ok(());
                }
            }
        };
        self.decide_event(items, py, &raw_obj, index, &mut event, group, groups, batch)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn decide_event(
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
                if count == 1 && !batch.shared {
                    let note = (index, 0usize, &key, NOTE_MISROUTED, py.None());
                    batch.notes.push(note.into_py(py));
                }
                continue;
            }
            if item_index == 0 && count > 1 {
                batch.extra_items += (count - 1) as u64;
            }
            let was = if self.history {
                items.get(key.as_str()).map(|s| (s.category, s.stage))
            } else {
                None
            };
            let outcome = self.decide(items, py, raw, event, item_index, &key)?;
            if self.history {
                self.write_history(
                    py, items, event, item_index, &key, was, &outcome, index, batch,
                )?;
            }
            match outcome {
                Outcome::Decided(reason) => batch.counts[reason] += 1,
                Outcome::Move(done) => {
                    let payload = PyBytes::new_bound(py, &done.json);
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
    pub(crate) fn decide(
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
}
