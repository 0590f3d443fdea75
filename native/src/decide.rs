//! The steps of a decision: lifecycle events, field changes, the first trigger that holds.

use super::*;

impl NativeBoard {
    pub(crate) fn lifecycle(
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
    pub(crate) fn watched_values(&self, values: &Members) -> Option<Fields> {
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

    pub(crate) fn fields_of(&self, mut kept: Vec<(u32, &str)>) -> Option<Fields> {
        if kept.is_empty() {
            return None;
        }
        kept.sort_by(|a, b| self.names.text(a.0).cmp(self.names.text(b.0)));
        Some(Fields::new(kept.into_iter()))
    }

    pub(crate) fn apply_changes(&mut self, state: &mut ItemState, data: &mut Data) {
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

    /// Steps 2-4 (`Board._fire`): field changes, then the first trigger that holds.
    pub(crate) fn fire(
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
            for &code in vocabulary().codes_for(event.etype, &mut event.data) {
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
    pub(crate) fn condition_holds(
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

    pub(crate) fn ask_python(
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
}
