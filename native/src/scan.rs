//! A strict, single-pass reader of the common event record, faster than a general
//! JSON deserializer because it knows the shape it looks for.
//!
//! It accepts only what every JSON parser accepts and reads it the same way; on
//! anything else (escapes in the values it returns, numbers that are not plain
//! integers where an id is expected, repeated keys, nesting deeper than `MAX_DEPTH`,
//! numbers beyond a double's range, lone surrogate escapes) it answers None and the
//! caller takes the general path. It never decides that a record is invalid.

use std::borrow::Cow;
use std::sync::OnceLock;

use memchr::memmem;

pub struct WireRef<'a> {
    pub entity: Option<Cow<'a, str>>,
    pub id: Option<Cow<'a, str>>,
    pub category: Option<Cow<'a, str>>,
    pub stage: Option<Cow<'a, str>>,
}

#[derive(Default)]
pub struct Wire<'a> {
    pub id: Option<Cow<'a, str>>,
    pub etype: Option<Cow<'a, str>>,
    pub occurred_at: Option<Cow<'a, str>>,
    pub tenant: Option<Cow<'a, str>>,
    pub item: Option<WireRef<'a>>,
    pub items: Option<Vec<WireRef<'a>>>,
    /// The text of the `data` object.
    pub data: Option<&'a str>,
}

/// Levels of objects and arrays a record may nest (`state.codes.MAX_DEPTH`): Python
/// rejects deeper records, so this reader must never take one.
pub const MAX_DEPTH: u32 = 64;

/// How far a string's end is looked for eight bytes at a time before a vector search.
const SHORT_STRING: usize = 32;
const QUOTES: u64 = 0x2222_2222_2222_2222;
const BACKSLASHES: u64 = 0x5c5c_5c5c_5c5c_5c5c;

/// The high bit of each zero byte of `word` set: exact up to its lowest zero byte (a
/// borrow may mark bytes above it), so `trailing_zeros` finds the first zero byte.
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(0x0101_0101_0101_0101) & !word & 0x8080_8080_8080_8080
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    depth: u32,
}

/// Whether a text has a control character: raw in a string, JSON does not allow one;
/// between tokens (tab, line feed, carriage return) the general path reads it.
fn has_control(text: &str) -> bool {
    text.bytes().fold(false, |found, b| found | (b < 0x20))
}

/// The record's fields, if it is a JSON object of the expected shape.
pub fn scan(text: &str) -> Option<Wire<'_>> {
    if has_control(text) {
        return None;
    }
    let mut s = Scanner {
        text,
        bytes: text.as_bytes(),
        at: 0,
        depth: 0,
    };
    let mut wire = Wire::default();
    let mut seen = 0u8;
    s.object(|s, key| {
        let bit = match key {
            "id" => 1,
            "type" => 2,
            "occurred_at" => 4,
            "tenant" => 8,
            "item" => 16,
            "items" => 32,
            "data" => 64,
            _ => return s.skip_value(),
        };
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
        match bit {
            1 => wire.id = s.id()?,
            2 => wire.etype = s.optional_str()?,
            4 => wire.occurred_at = s.optional_str()?,
            8 => wire.tenant = s.optional_str()?,
            16 => wire.item = if s.null() { None } else { Some(s.item_ref()?) },
            32 => {
                wire.items = if s.null() {
                    None
                } else {
                    let mut refs = Vec::with_capacity(2);
                    s.array(|s| {
                        refs.push(s.item_ref()?);
                        Some(())
                    })?;
                    Some(refs)
                }
            }
            _ => {
                wire.data = if s.null() {
                    None
                } else {
                    if s.peek()? != b'{' {
                        return None;
                    }
                    let start = s.at;
                    s.skip_value()?;
                    Some(&s.text[start..s.at])
                }
            }
        }
        Some(())
    })?;
    s.ws();
    (s.at == s.bytes.len()).then_some(wire)
}

/// The tenant and the single item of a record, without reading its other members;
/// None when the record names several items (or no item), or is not of the shape
/// `scan` reads. Where both answer, they answer the same. Once both members are read,
/// the rest of the record is only searched for a second one (or an `items`), which
/// would make the answer unsure; it is not checked to be JSON: whoever decides the
/// item decodes the whole record.
pub fn scan_key(text: &str) -> Option<(Option<Cow<'_, str>>, WireRef<'_>)> {
    let mut s = Scanner {
        text,
        bytes: text.as_bytes(),
        at: 0,
        depth: 0,
    };
    let mut tenant = None;
    let mut item = None;
    let mut seen = 0u8;
    let mut read_up_to = None;
    let whole = s.object(|s, key| {
        let bit = match key {
            "tenant" => 1,
            "item" => 2,
            "items" => return None,
            _ => return s.skip_value(),
        };
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
        if bit == 1 {
            tenant = s.optional_str()?;
        } else if !s.null() {
            item = Some(s.item_ref()?);
        }
        if seen == 3 {
            read_up_to = Some(s.at);
            return None; // the members that matter are read: stop here
        }
        Some(())
    });
    if let Some(at) = read_up_to {
        return if unsure_rest(&s.bytes[at..]) {
            None
        } else {
            Some((tenant, item?))
        };
    }
    whole?;
    s.ws();
    if s.at != s.bytes.len() {
        return None;
    }
    Some((tenant, item?))
}

/// Whether the rest of a record, after its `tenant` and `item` members, could name
/// another tenant or item: a second `"tenant"`, an `"item"` or `"items"` key, or a
/// backslash (a key spelled with escapes, `"it\u0065m"`, is that key too). Looked for
/// with searchers built once: building one per record cost more than the search.
fn unsure_rest(rest: &[u8]) -> bool {
    static FINDERS: OnceLock<(memmem::Finder<'static>, memmem::Finder<'static>)> = OnceLock::new();
    let (item, tenant) = FINDERS.get_or_init(|| {
        (
            memmem::Finder::new(b"\"item"),
            memmem::Finder::new(b"\"tenant\""),
        )
    });
    memchr::memchr(b'\\', rest).is_some()
        || item.find(rest).is_some()
        || tenant.find(rest).is_some()
}

/// The members of a JSON object's text, in order, each value as its text; None when a
/// key has escapes (or the text is not one object).
pub fn members(text: &str) -> Option<Vec<(Cow<'_, str>, &str)>> {
    if has_control(text) {
        return None;
    }
    let mut s = Scanner {
        text,
        bytes: text.as_bytes(),
        at: 0,
        depth: 0,
    };
    let mut out = Vec::new();
    s.object(|s, key| {
        s.ws();
        let start = s.at;
        s.skip_value()?;
        out.push((Cow::Borrowed(key), &s.text[start..s.at]));
        Some(())
    })?;
    s.ws();
    (s.at == s.bytes.len()).then_some(out)
}

impl<'a> Scanner<'a> {
    /// Past spaces: the only whitespace left once control characters are ruled out.
    fn ws(&mut self) {
        while self.bytes.get(self.at) == Some(&b' ') {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        if self.peek()? == byte {
            self.at += 1;
            Some(())
        } else {
            None
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.bytes.get(self.at..self.at + word.len())? == word {
            self.at += word.len();
            Some(())
        } else {
            None
        }
    }

    fn null(&mut self) -> bool {
        self.peek() == Some(b'n') && self.literal(b"null").is_some()
    }

    /// `{ "key": value, ... }`, each value read by `each`; keys with escapes: None.
    fn object(&mut self, mut each: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.delimited(b'{', b'}', |s| {
            let key = s.plain_str()?;
            s.eat(b':')?;
            each(s, key)
        })
    }

    fn array(&mut self, each: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.delimited(b'[', b']', each)
    }

    /// `open` members separated by commas `close`, each read by `each`, at most
    /// `MAX_DEPTH` deep.
    fn delimited(
        &mut self,
        open: u8,
        close: u8,
        mut each: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.eat(open)?;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        if self.peek()? == close {
            self.at += 1;
        } else {
            loop {
                each(self)?;
                match self.peek()? {
                    b',' => self.at += 1,
                    b if b == close => {
                        self.at += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    /// Bytes up to the next quote or backslash (control characters are ruled out
    /// before scanning); None at the end.
    fn to_special(&self) -> Option<usize> {
        let rest = &self.bytes[self.at..];
        // Most strings of a record (keys, ids, types, times) are short: eight bytes at
        // a time in a register find their end before a vector search has been set up.
        let near = rest.len().min(SHORT_STRING);
        let mut at = 0;
        while at + 8 <= near {
            let word = u64::from_le_bytes(rest[at..at + 8].try_into().unwrap());
            let found = zero_bytes(word ^ QUOTES) | zero_bytes(word ^ BACKSLASHES);
            if found != 0 {
                return Some(at + (found.trailing_zeros() / 8) as usize);
            }
            at += 8;
        }
        if let Some(end) = rest[at..near].iter().position(|&b| b == b'"' || b == b'\\') {
            return Some(at + end);
        }
        memchr::memchr2(b'"', b'\\', &rest[near..]).map(|end| near + end)
    }

    /// A string without escapes or control characters, as it stands in the text.
    fn plain_str(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let end = start + self.to_special()?;
        if self.bytes[end] != b'"' {
            return None;
        }
        self.at = end + 1;
        Some(&self.text[start..end])
    }

    fn optional_str(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.null() {
            return Some(None);
        }
        Some(Some(Cow::Borrowed(self.plain_str()?)))
    }

    /// An id: a plain string, or an integer written as JSON writes it (as its text).
    fn id(&mut self) -> Option<Option<Cow<'a, str>>> {
        match self.peek()? {
            b'n' if self.null() => Some(None),
            b'"' => Some(Some(Cow::Borrowed(self.plain_str()?))),
            b'-' | b'0'..=b'9' => {
                let start = self.at;
                self.skip_number()?;
                let text = &self.text[start..self.at];
                let digits = text.strip_prefix('-').unwrap_or(text);
                let canonical = digits.bytes().all(|b| b.is_ascii_digit())
                    && digits.len() <= 18
                    && text != "-0";
                canonical.then_some(Some(Cow::Borrowed(text)))
            }
            _ => None,
        }
    }

    fn item_ref(&mut self) -> Option<WireRef<'a>> {
        let mut r = WireRef {
            entity: None,
            id: None,
            category: None,
            stage: None,
        };
        let mut seen = 0u8;
        self.object(|s, key| {
            let bit = match key {
                "entity" => 1,
                "id" => 2,
                "category" => 4,
                "stage" => 8,
                _ => return s.skip_value(),
            };
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            match bit {
                1 => r.entity = s.optional_str()?,
                2 => r.id = s.id()?,
                4 => r.category = s.id()?,
                _ => r.stage = s.id()?,
            }
            Some(())
        })?;
        Some(r)
    }

    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_str(),
            b'{' => self.object(|s, _| s.skip_value()),
            b'[' => self.array(|s| s.skip_value()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.skip_number(),
            _ => None,
        }
    }

    /// Any valid string; escapes of UTF-16 surrogates are left to the general path.
    fn skip_str(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            self.at += self.to_special()?;
            match self.bytes[self.at] {
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                b'\\' => match *self.bytes.get(self.at + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 2,
                    b'u' => {
                        let hex = self.text.get(self.at + 2..self.at + 6)?;
                        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                            return None;
                        }
                        let unit = u16::from_str_radix(hex, 16).ok()?;
                        if (0xd800..=0xdfff).contains(&unit) {
                            return None;
                        }
                        self.at += 6;
                    }
                    _ => return None,
                },
                _ => return None,
            }
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn skip_number(&mut self) -> Option<()> {
        let b = self.bytes;
        let digits = |at: &mut usize| {
            let start = *at;
            while b.get(*at).is_some_and(u8::is_ascii_digit) {
                *at += 1;
            }
            *at - start
        };
        let mut at = self.at;
        let mut integer = true;
        if b.get(at) == Some(&b'-') {
            at += 1;
        }
        match b.get(at)? {
            b'0' => at += 1,
            b'1'..=b'9' => {
                digits(&mut at);
            }
            _ => return None,
        }
        if b.get(at) == Some(&b'.') {
            at += 1;
            integer = false;
            if digits(&mut at) == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = b.get(at) {
            at += 1;
            integer = false;
            if let Some(b'+' | b'-') = b.get(at) {
                at += 1;
            }
            if digits(&mut at) == 0 {
                return None;
            }
        }
        // Python reads an integer exactly at any length, and rejects any other number
        // beyond a double's range (`1e400`): that is its to say.
        if !integer && !self.text[self.at..at].parse::<f64>().ok()?.is_finite() {
            return None;
        }
        self.at = at;
        Some(())
    }
}
