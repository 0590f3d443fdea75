//! Event types, trigger codes and the names the board shares with Python.
//!
//! The table of event types and codes is Python's (`state/codes.py`): `state/native.py`
//! hands it over once, at import, through `configure`. This module knows by name only
//! the types and codes that have rules of their own (lifecycle events, forms, field
//! changes); every one-to-one code comes from the table. The other lists (operators,
//! param rules, outcome reasons, note kinds) are exported as module attributes, and
//! `state/native.py` checks at import that they equal its own.

use std::sync::OnceLock;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::HashMap;

/// Types with rules of their own, numbered by their place here.
const SPECIAL_TYPES: [&str; 5] = [
    "item.created",
    "item.updated",
    "item.stage_changed",
    "item.deleted",
    "form.submitted",
];
pub const ITEM_CREATED: u8 = 0;
pub const ITEM_UPDATED: u8 = 1;
pub const ITEM_STAGE_CHANGED: u8 = 2;
pub const ITEM_DELETED_TYPE: u8 = 3;
pub const FORM_SUBMITTED: u8 = 4;

/// Codes chosen by an event's data, numbered by their place here.
const SPECIAL_CODES: [&str; 4] = ["RESP_CHANGED", "FIELD_CHANGED", "WEBFORM", "CALLBACK"];
const RESP_CHANGED: usize = 0;
const FIELD_CHANGED: usize = 1;
const WEBFORM: usize = 2;
const CALLBACK: usize = 3;

/// The param rules `params::Param` reads (`state.codes.PARAM_RULES`).
pub const PARAM_RULES: [&str; 5] = ["eq", "prefix", "substring", "fields", "any_field"];

/// Reasons of the outcomes that are not moves, in the order of their counts.
pub const REASONS: [&str; 9] = [
    "created",
    "updated",
    "stage_changed",
    "confirmed",
    "deleted",
    "no_match",
    "duplicate",
    "item_deleted",
    "no_pipeline",
];
pub const CREATED: usize = 0;
pub const UPDATED: usize = 1;
pub const STAGE_CHANGED: usize = 2;
pub const CONFIRMED: usize = 3;
pub const DELETED: usize = 4;
pub const NO_MATCH: usize = 5;
pub const DUPLICATE: usize = 6;
pub const ITEM_DELETED: usize = 7;
pub const NO_PIPELINE: usize = 8;

/// Kinds of the notes `decide_batch` hands back, by their number.
pub const NOTE_KINDS: [&str; 5] = [
    "transition",
    "rejected",
    "unknown_item",
    "unknown_stage",
    "misrouted",
];
pub const NOTE_TRANSITION: u8 = 0;
pub const NOTE_REJECTED: u8 = 1;
pub const NOTE_UNKNOWN_ITEM: u8 = 2;
pub const NOTE_UNKNOWN_STAGE: u8 = 3;
pub const NOTE_MISROUTED: u8 = 4;

pub const NEVER_WATCHED: [&str; 3] = ["STAGE_ID", "CATEGORY_ID", "ASSIGNED_BY_ID"];

pub struct Vocabulary {
    type_numbers: HashMap<String, u8>,
    type_names: Vec<String>,
    /// Per type number: the codes it fires one-to-one, as code numbers.
    simple: Vec<Vec<usize>>,
    codes: Vec<String>,
    code_numbers: HashMap<String, usize>,
}

static VOCABULARY: OnceLock<Vocabulary> = OnceLock::new();

/// The table handed over by `configure`; callers check `configured()` first.
pub fn vocabulary() -> &'static Vocabulary {
    VOCABULARY
        .get()
        .expect("crm_triggers_native.configure was not called")
}

pub fn configured() -> PyResult<&'static Vocabulary> {
    VOCABULARY.get().ok_or_else(|| {
        PyValueError::new_err(
            "crm_triggers_native: configure(types, codes) first (state/native.py does)",
        )
    })
}

impl Vocabulary {
    fn new(types: Vec<(String, Vec<String>)>, codes: Vec<String>) -> PyResult<Self> {
        let mut names: Vec<String> = SPECIAL_CODES.iter().map(|c| c.to_string()).collect();
        for code in codes {
            if !names.contains(&code) {
                names.push(code);
            }
        }
        let code_numbers: HashMap<String, usize> = names
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect();
        let mut type_names: Vec<String> = SPECIAL_TYPES.iter().map(|t| t.to_string()).collect();
        let mut simple: Vec<Vec<usize>> = vec![Vec::new(); SPECIAL_TYPES.len()];
        let mut seen = vec![false; SPECIAL_TYPES.len()];
        for (name, fired) in types {
            let numbers = fired
                .iter()
                .map(|c| {
                    code_numbers.get(c).copied().ok_or_else(|| {
                        PyValueError::new_err(format!("event type {name}: unknown code {c}"))
                    })
                })
                .collect::<PyResult<Vec<usize>>>()?;
            match SPECIAL_TYPES.iter().position(|t| *t == name) {
                Some(number) => {
                    if !numbers.is_empty() {
                        return Err(PyValueError::new_err(format!(
                            "event type {name} has rules of its own: it maps no code one-to-one"
                        )));
                    }
                    seen[number] = true;
                }
                None => {
                    type_names.push(name);
                    simple.push(numbers);
                }
            }
        }
        if let Some(missing) = seen.iter().position(|s| !s) {
            return Err(PyValueError::new_err(format!(
                "the table lacks the event type {}",
                SPECIAL_TYPES[missing]
            )));
        }
        if type_names.len() > u8::MAX as usize {
            return Err(PyValueError::new_err("more than 255 event types"));
        }
        let type_numbers = type_names
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u8))
            .collect();
        Ok(Vocabulary {
            type_numbers,
            type_names,
            simple,
            codes: names,
            code_numbers,
        })
    }

    /// The number of an event type.
    pub fn event_type(&self, name: &str) -> Option<u8> {
        self.type_numbers.get(name).copied()
    }

    pub fn type_name(&self, etype: u8) -> &str {
        &self.type_names[etype as usize]
    }

    pub fn code_count(&self) -> usize {
        self.codes.len()
    }

    pub fn code_number(&self, code: &str) -> Option<usize> {
        self.code_numbers.get(code).copied()
    }

    pub fn code(&self, number: usize) -> &str {
        &self.codes[number]
    }

    /// The codes an event can fire, in the order they are tried (`state.codes.codes_for`).
    pub fn codes_for(&self, etype: u8, data: &mut crate::Data) -> &[usize] {
        const RESP_FIELD: [usize; 2] = [RESP_CHANGED, FIELD_CHANGED];
        const FIELD: [usize; 1] = [FIELD_CHANGED];
        const CALLBACK_WEBFORM: [usize; 2] = [CALLBACK, WEBFORM];
        const FORM: [usize; 1] = [WEBFORM];
        match etype {
            ITEM_UPDATED if data.changes_has("ASSIGNED_BY_ID") => &RESP_FIELD,
            ITEM_UPDATED => &FIELD,
            FORM_SUBMITTED if data.get("callback") == Some("true") => &CALLBACK_WEBFORM,
            FORM_SUBMITTED => &FORM,
            other => &self.simple[other as usize],
        }
    }
}

/// Take Python's table: `types` as (event type, codes it fires one-to-one), `codes`
/// every trigger code. Once per process; handing over the same table again is a no-op.
#[pyfunction]
pub fn configure(types: Vec<(String, Vec<String>)>, codes: Vec<String>) -> PyResult<()> {
    let table = Vocabulary::new(types, codes)?;
    match VOCABULARY.get() {
        Some(known) => {
            if known.type_names != table.type_names
                || known.codes != table.codes
                || known.simple != table.simple
            {
                return Err(PyValueError::new_err(
                    "crm_triggers_native was already configured with another table",
                ));
            }
        }
        None => {
            let _ = VOCABULARY.set(table);
        }
    }
    Ok(())
}

/// The names Python checks at import, as module attributes.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(configure, m)?)?;
    m.add("OPERATORS", crate::conditions::Op::NAMES.to_vec())?;
    m.add("PARAM_RULES", PARAM_RULES.to_vec())?;
    m.add("REASONS", REASONS.to_vec())?;
    m.add("NOTE_KINDS", NOTE_KINDS.to_vec())?;
    m.add("SPECIAL_TYPES", SPECIAL_TYPES.to_vec())?;
    m.add("SPECIAL_CODES", SPECIAL_CODES.to_vec())?;
    m.add("NEVER_WATCHED", NEVER_WATCHED.to_vec())?;
    Ok(())
}
