//! Trigger conditions, as `state/conditions.py` evaluates them.
//!
//! Every function answers `Err(Unsure)` where the Python rules would need what is
//! not worth repeating here (non-ASCII case folding, lists or objects as text,
//! integers beyond exact float range): the caller then asks Python.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

pub struct Unsure;

type Answer<T> = Result<T, Unsure>;

/// The operators: one line each, its variant and its name (`state.conditions.OPERATORS`).
macro_rules! operators {
    ($($variant:ident = $name:literal),* $(,)?) => {
        #[derive(Clone, Copy)]
        pub enum Op {
            $($variant),*
        }

        impl Op {
            pub const NAMES: &'static [&'static str] = &[$($name),*];

            pub fn parse(op: &str) -> Option<Op> {
                Some(match op {
                    $($name => Op::$variant,)*
                    _ => return None,
                })
            }
        }
    };
}

operators! {
    Eq = "=",
    Ne = "!=",
    Gt = ">",
    Ge = ">=",
    Lt = "<",
    Le = "<=",
    In = "in",
    NotIn = "!in",
    Contain = "contain",
    NotContain = "!contain",
    Empty = "empty",
    NotEmpty = "!empty",
    Between = "between",
}

/// One clause: a field of the item, or (`event`) a key of the event's data.
pub struct Clause {
    pub event: bool,
    pub name: String,
    pub op: Op,
    pub value: Value,
}

/// OR over groups, AND inside each; no groups: it holds.
pub struct Condition {
    pub groups: Vec<Vec<Clause>>,
}

impl Condition {
    /// Whether it holds, reading values with `read(event, name)` (Null when missing).
    pub fn holds(&self, mut read: impl FnMut(bool, &str) -> Value) -> Answer<bool> {
        if self.groups.is_empty() {
            return Ok(true);
        }
        for group in &self.groups {
            let mut all = true;
            for clause in group {
                let actual = read(clause.event, &clause.name);
                if !apply(clause.op, &actual, &clause.value)? {
                    all = false;
                    break;
                }
            }
            if all {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

fn apply(op: Op, field: &Value, value: &Value) -> Answer<bool> {
    Ok(match op {
        Op::Eq => eq(field, value)?,
        Op::Ne => !eq(field, value)?,
        Op::Gt => ordered(field, value, |c| c == Ordering::Greater)?,
        Op::Ge => ordered(field, value, |c| c != Ordering::Less)?,
        Op::Lt => ordered(field, value, |c| c == Ordering::Less)?,
        Op::Le => ordered(field, value, |c| c != Ordering::Greater)?,
        Op::In => within(field, value)?,
        Op::NotIn => !within(field, value)?,
        Op::Contain => contain(field, value)?,
        Op::NotContain => !contain(field, value)?,
        Op::Empty => is_empty(field),
        Op::NotEmpty => !is_empty(field),
        Op::Between => between(field, value)?,
    })
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn elements(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) => items,
        other => std::slice::from_ref(other),
    }
}

fn eq(field: &Value, value: &Value) -> Answer<bool> {
    if is_empty(field) || is_empty(value) {
        return Ok(is_empty(field) && is_empty(value));
    }
    Ok(compare(field, value)? == Ordering::Equal)
}

fn ordered(field: &Value, value: &Value, test: impl Fn(Ordering) -> bool) -> Answer<bool> {
    if is_empty(field) || is_empty(value) {
        return Ok(false);
    }
    Ok(test(compare(field, value)?))
}

fn within(field: &Value, value: &Value) -> Answer<bool> {
    for f in elements(field) {
        for v in elements(value) {
            if compare(f, v)? == Ordering::Equal {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn contain(field: &Value, value: &Value) -> Answer<bool> {
    let needle = lower(as_text(value)?)?;
    for f in elements(field) {
        if is_empty(f) {
            continue;
        }
        if lower(as_text(f)?)?.contains(needle.as_str()) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn between(field: &Value, value: &Value) -> Answer<bool> {
    let [low, high] = elements(value) else {
        return Err(Unsure);
    };
    if is_empty(field) || is_empty(low) || is_empty(high) {
        return Ok(false);
    }
    Ok(compare(field, low)? != Ordering::Less && compare(field, high)? != Ordering::Greater)
}

fn lower(text: Cow<'_, str>) -> Answer<String> {
    if text.is_ascii() {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(Unsure)
    }
}

enum Number {
    Int(i128),
    Float(f64),
}

/// Python's whitespace among ASCII characters (`str.strip`).
fn is_space(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r' | '\x1c' | '\x1d' | '\x1e' | '\x1f'
    )
}

fn as_number(value: &Value) -> Answer<Option<Number>> {
    match value {
        Value::Number(n) => Ok(Some(if let Some(i) = n.as_i64() {
            Number::Int(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            Number::Int(i128::from(u))
        } else {
            Number::Float(n.as_f64().ok_or(Unsure)?)
        })),
        Value::String(s) => {
            if !s.is_ascii() {
                return Err(Unsure);
            }
            let text = s.trim_matches(is_space);
            match numeric_kind(text) {
                None => Ok(None),
                Some(true) => Ok(Some(Number::Int(text.parse().map_err(|_| Unsure)?))),
                Some(false) => Ok(Some(Number::Float(text.parse().map_err(|_| Unsure)?))),
            }
        }
        _ => Ok(None),
    }
}

/// `[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?` in full: Some(is an integer), or None.
fn numeric_kind(text: &str) -> Option<bool> {
    let b = text.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let whole = digits(&mut i);
    let mut integer = true;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        integer = false;
        let fraction = digits(&mut i);
        if whole == 0 && fraction == 0 {
            return None;
        }
    } else if whole == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        integer = false;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return None;
        }
    }
    (i == b.len()).then_some(integer)
}

const EXACT: i128 = 1 << 53;

fn compare(left: &Value, right: &Value) -> Answer<Ordering> {
    if let (Some(a), Some(b)) = (as_number(left)?, as_number(right)?) {
        let (x, y) = match (a, b) {
            (Number::Int(a), Number::Int(b)) => return Ok(a.cmp(&b)),
            (Number::Int(a), Number::Float(b)) if a.abs() <= EXACT => (a as f64, b),
            (Number::Float(a), Number::Int(b)) if b.abs() <= EXACT => (a, b as f64),
            (Number::Float(a), Number::Float(b)) => (a, b),
            _ => return Err(Unsure),
        };
        // As Python's (a > b) - (a < b): NaN compares equal to everything.
        return Ok(if x > y {
            Ordering::Greater
        } else if x < y {
            Ordering::Less
        } else {
            Ordering::Equal
        });
    }
    Ok(as_text(left)?.as_ref().cmp(as_text(right)?.as_ref()))
}

fn as_text(value: &Value) -> Answer<Cow<'_, str>> {
    Ok(match value {
        Value::String(s) => Cow::Borrowed(s.as_str()),
        Value::Null => Cow::Borrowed(""),
        Value::Bool(true) => Cow::Borrowed("true"),
        Value::Bool(false) => Cow::Borrowed("false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Cow::Owned(i.to_string())
            } else if let Some(u) = n.as_u64() {
                Cow::Owned(u.to_string())
            } else {
                Cow::Owned(float_repr(n.as_f64().ok_or(Unsure)?))
            }
        }
        Value::Array(_) | Value::Object(_) => return Err(Unsure),
    })
}

/// Python's `repr(float)`: the shortest digits that round-trip, fixed notation when
/// the decimal point falls within (-4, 16], else exponent notation.
pub fn float_repr(value: f64) -> String {
    if value.is_nan() {
        return "nan".into();
    }
    if value.is_infinite() {
        return if value > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let scientific = format!("{:e}", value.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let point = exponent + 1;
    let sign = if value.is_sign_negative() { "-" } else { "" };
    let n = digits.len() as i32;
    if -4 < point && point <= 16 {
        if point <= 0 {
            format!("{sign}0.{}{digits}", "0".repeat((-point) as usize))
        } else if point >= n {
            format!("{sign}{digits}{}.0", "0".repeat((point - n) as usize))
        } else {
            let (a, b) = digits.split_at(point as usize);
            format!("{sign}{a}.{b}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let e = point - 1;
        let e_sign = if e < 0 { '-' } else { '+' };
        format!("{sign}{first}{rest}e{e_sign}{:02}", e.abs())
    }
}
