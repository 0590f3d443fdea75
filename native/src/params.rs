//! Trigger params, as `state.codes.params_match` reads them.

use super::*;

// Params --------------------------------------------------------------------------------

pub(crate) enum Param {
    Eq(String, String),
    Prefix(String, String),
    Substring(String, String),
    Fields(Vec<String>),
    AnyField,
}

/// `state.codes.id_text` of a JSON value.
pub(crate) fn id_text(text: &str) -> Option<Cow<'_, str>> {
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

pub(crate) fn as_str(raw: Option<&str>) -> Option<Cow<'_, str>> {
    let raw = raw?;
    if raw.starts_with('"') {
        serde_json::from_str::<Cow<str>>(raw).ok()
    } else {
        None
    }
}

/// Whether params hold (`state.codes.params_match`); None: Python must tell.
pub(crate) fn params_match(params: &[Param], data: &mut Data) -> Option<bool> {
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
