//! Key groups: which group decides an item, and routing a batch to them.

use super::*;

/// `tenant/entity/id`, the item's key (`state.model.item_key`), written into `out`.
pub(crate) fn write_key(out: &mut String, tenant: &str, item: &Ref) {
    out.clear();
    out.push_str(tenant);
    out.push('/');
    out.push_str(&item.entity);
    out.push('/');
    out.push_str(&item.id);
}

pub(crate) fn group_of(key: &str, groups: u32) -> u32 {
    crc32fast::hash(key.as_bytes()) % groups
}

/// Record indexes by key group.
pub(crate) type GroupIndexes = StdHashMap<u32, Vec<usize>>;

/// The key groups of a batch of event records, as `flows.dataflow.route` assigns them.
///
/// A record with a Kafka key that names a single item goes to its key's group
/// undecoded; any other record is decoded here to find its items' groups. Returns
/// the record indexes of each group in input order, and the indexes of records this
/// could not place (no bytes, or not of the common shape): Python routes those.
#[pyfunction]
#[pyo3(signature = (keys, raws, groups))]
pub(crate) fn route_batch(
    keys: Option<&Bound<'_, PyList>>,
    raws: &Bound<'_, PyList>,
    groups: u32,
) -> PyResult<(GroupIndexes, Vec<usize>)> {
    configured()?;
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
