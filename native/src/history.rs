//! The stage history an (event, item) writes, as `Board._decide_recording` writes it.

use super::*;

/// One history record to write: kind, category, stage, from_stage.
type Began = (&'static str, u32, u32, Option<u32>);

/// `null`, or the JSON string of `text`.
fn push_json_opt(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => push_json_str(out, text),
        None => out.extend_from_slice(b"null"),
    }
}

impl NativeBoard {
    /// The history records of one decided (event, item), as notes (payload: (step,
    /// JSON line)), read from the item's state before (`was`: category and stage) and
    /// after the decision.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn write_history(
        &mut self,
        py: Python<'_>,
        items: &HashMap<CompactString, ItemState>,
        event: &Event,
        item_index: usize,
        key: &str,
        was: Option<(u32, u32)>,
        outcome: &Outcome,
        index: usize,
        batch: &mut Batch,
    ) -> PyResult<()> {
        let reason = match outcome {
            Outcome::Decided(DUPLICATE) => return Ok(()),
            Outcome::Decided(reason) => Some(*reason),
            Outcome::Move(_) => None,
            Outcome::UnknownItem | Outcome::UnknownStage(..) => return Ok(()),
        };
        let Some(after) = items.get(key) else {
            return Ok(());
        };
        let (category, stage) = (after.category, after.stage);
        let mut began: SmallVec<[Began; 2]> = SmallVec::new();
        match event.etype {
            ITEM_CREATED => began.push(("created", category, stage, None)),
            ITEM_DELETED_TYPE => {
                if let Some((c, s)) = was {
                    if s != NO_STAGE {
                        began.push(("deleted", c, s, Some(s)));
                    }
                }
            }
            ITEM_STAGE_CHANGED => match was {
                None => began.push(("created", category, stage, None)),
                Some((c, s))
                    if s != NO_STAGE
                        && reason == Some(STAGE_CHANGED)
                        && (c, s) != (category, stage) =>
                {
                    began.push(("crm", category, stage, Some(s)));
                }
                _ => {}
            },
            _ => {
                if was.is_none() {
                    // The hint made the item known, on the hinted stage.
                    let hinted = match outcome {
                        Outcome::Move(done) => done.from_stage,
                        _ => stage,
                    };
                    began.push(("created", category, hinted, None));
                }
                if let Outcome::Move(done) = outcome {
                    began.push(("trigger", category, done.to_stage, Some(done.from_stage)));
                }
            }
        }
        for (step, (kind, category, stage, from_stage)) in began.into_iter().enumerate() {
            let line = self.history_line(
                py, event, item_index, kind, category, stage, from_stage, outcome,
            )?;
            let payload = (step, PyBytes::new_bound(py, &line));
            let note = (index, item_index, key, NOTE_HISTORY, payload);
            batch.notes.push(note.into_py(py));
        }
        Ok(())
    }

    /// A history record's JSON line, as `connectors.records.history_json` writes it.
    #[allow(clippy::too_many_arguments)]
    fn history_line(
        &mut self,
        py: Python<'_>,
        event: &Event,
        item_index: usize,
        kind: &str,
        category: u32,
        stage: u32,
        from_stage: Option<u32>,
        outcome: &Outcome,
    ) -> PyResult<Vec<u8>> {
        let r = &event.refs[item_index];
        let view = self.view(py, &event.tenant, &r.entity, category, event.at)?;
        let semantic = view
            .as_ref()
            .and_then(|v| v.positions.get(&stage).map(|&p| v.semantics[p].clone()));
        let id = record_id(&[&event.tenant, &r.entity, &r.id, &event.id, kind]);
        let mut out = Vec::with_capacity(384);
        push_record_head(&mut out, &id, &event.tenant, r, self.names.text(category));
        out.extend_from_slice(b",\"stage\":");
        push_json_str(&mut out, self.names.text(stage));
        out.extend_from_slice(b",\"from_stage\":");
        push_json_opt(&mut out, from_stage.map(|s| self.names.text(s)));
        out.extend_from_slice(b",\"semantic\":");
        push_json_opt(&mut out, semantic.as_deref());
        out.extend_from_slice(b",\"kind\":");
        push_json_str(&mut out, kind);
        out.extend_from_slice(b",\"at\":");
        push_json_str(&mut out, &event.occurred_at);
        out.extend_from_slice(b",\"event\":{\"id\":");
        push_json_str(&mut out, &event.id);
        out.extend_from_slice(b",\"type\":");
        push_json_str(&mut out, vocabulary().type_name(event.etype));
        out.extend_from_slice(b"},\"transition_id\":");
        match outcome {
            Outcome::Move(done) if kind == "trigger" => {
                push_json_str(&mut out, &done.tid);
                out.extend_from_slice(b",\"trigger\":{\"id\":");
                push_json_str(&mut out, &done.trigger_id);
                out.extend_from_slice(b",\"code\":");
                push_json_str(&mut out, done.code);
                out.extend_from_slice(b"}}");
            }
            _ => out.extend_from_slice(b"null,\"trigger\":null}"),
        }
        Ok(out)
    }
}
