//! Decoding an event record: the common shape in one pass, the rest with serde.

use super::*;

// Decoding ------------------------------------------------------------------------------

/// An id: a string, or an integer read as its decimal string.
pub(crate) struct Id<'a>(pub(crate) Cow<'a, str>);

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
pub(crate) struct WireRef<'a> {
    #[serde(borrow)]
    pub(crate) entity: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) id: Option<Id<'a>>,
    #[serde(borrow)]
    pub(crate) category: Option<Id<'a>>,
    #[serde(borrow)]
    pub(crate) stage: Option<Id<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct WireEvent<'a> {
    #[serde(borrow)]
    pub(crate) id: Option<Id<'a>>,
    #[serde(borrow, rename = "type")]
    pub(crate) etype: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) occurred_at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) tenant: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) item: Option<WireRef<'a>>,
    #[serde(borrow)]
    pub(crate) items: Option<Vec<WireRef<'a>>>,
    #[serde(borrow)]
    pub(crate) data: Option<&'a RawValue>,
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
pub(crate) struct Ref<'a> {
    pub(crate) entity: Cow<'a, str>,
    pub(crate) id: Cow<'a, str>,
    pub(crate) category: Option<Cow<'a, str>>,
    pub(crate) stage: Option<Cow<'a, str>>,
}

/// The members of a JSON object, in order, each value as its JSON text; of a key
/// written twice, the last counts (as Python's decoders read it).
pub(crate) type Members<'a> = Vec<(Cow<'a, str>, &'a str)>;

pub(crate) fn members(text: &str) -> Members<'_> {
    if let Some(found) = scan::members(text) {
        return found;
    }
    // Keys with escapes: the general path (its map keeps the last of a repeated key).
    let parsed: StdHashMap<Cow<str>, &RawValue> = serde_json::from_str(text).unwrap_or_default();
    parsed.into_iter().map(|(k, v)| (k, v.get())).collect()
}

pub(crate) fn member<'a>(members: &Members<'a>, name: &str) -> Option<&'a str> {
    members
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| *v)
}

/// `data` of an event, its members read only when a decision needs them.
pub(crate) struct Data<'a> {
    pub(crate) raw: Option<&'a str>,
    pub(crate) map: Option<Members<'a>>,
    /// `changes` of an item.updated, found while decoding it.
    pub(crate) changes_raw: Option<&'a str>,
    pub(crate) changes: Option<Members<'a>>,
}

impl<'a> Data<'a> {
    pub(crate) fn get(&mut self, name: &str) -> Option<&'a str> {
        if self.map.is_none() {
            self.map = Some(self.raw.map(members).unwrap_or_default());
        }
        member(self.map.as_ref().unwrap(), name)
    }

    pub(crate) fn changes(&mut self) -> &Members<'a> {
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

    pub(crate) fn changes_has(&mut self, name: &str) -> bool {
        self.changes().iter().any(|(k, _)| k == name)
    }
}

pub(crate) struct Event<'a> {
    pub(crate) id: Cow<'a, str>,
    pub(crate) etype: u8,
    pub(crate) tenant: Cow<'a, str>,
    pub(crate) occurred_at: Cow<'a, str>,
    pub(crate) at: i64,
    pub(crate) refs: SmallVec<[Ref<'a>; 1]>,
    pub(crate) data: Data<'a>,
    /// Normalized lifecycle values: data.stage, data.category, data.transition_id.
    pub(crate) stage: Option<Cow<'a, str>>,
    pub(crate) category: Option<Cow<'a, str>>,
    pub(crate) transition_id: Option<Cow<'a, str>>,
    pub(crate) fields: Option<&'a str>,
}

/// A JSON integer as Python writes it back: its own text (JSON allows no leading zeros),
/// but for minus zero; None when the number is not an integer.
pub(crate) fn integer_text(text: &str) -> Option<Cow<'_, str>> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Cow::Borrowed(if digits == "0" { "0" } else { text }))
}

pub(crate) fn is_null(raw: Option<&str>) -> bool {
    raw.map(|r| r == "null").unwrap_or(true)
}

/// The event, if it is of the common well-formed shape; None: ask Python.
pub(crate) fn decode_event(raw: &[u8], at: Option<i64>) -> Option<Event<'_>> {
    let text = std::str::from_utf8(raw).ok()?;
    let wire = match scan::scan(text) {
        Some(wire) => wire,
        None => serde_json::from_str::<WireEvent>(text).ok()?.into(),
    };
    let etype = vocabulary().event_type(wire.etype.as_deref()?)?;
    let id = wire.id?;
    if id.is_empty() {
        return None;
    }
    let tenant = match wire.tenant {
        None => Cow::Borrowed("default"),
        Some(t) if !is_name(&t) => return None,
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
    if matches!(etype, ITEM_CREATED | ITEM_UPDATED | ITEM_STAGE_CHANGED) {
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

pub(crate) fn nonempty(text: Cow<'_, str>) -> Option<Cow<'_, str>> {
    if text.is_empty() {
        None
    } else {
        Some(text)
    }
}

/// A tenant or entity: not empty, no `/` (it is a part of the item key `tenant/entity/id`).
pub(crate) fn is_name(text: &str) -> bool {
    !text.is_empty() && !text.contains('/')
}

pub(crate) fn checked_ref(wire: scan::WireRef<'_>) -> Option<Ref<'_>> {
    let entity = wire.entity?;
    if !is_name(&entity) {
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
