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

/// The lines of a block of whole lines (no partial line at its end) that a replay
/// process of key group `group` (of `groups`) decides: those whose single item is in
/// its group, and those whose items only decoding tells (`decode::single_key`).
///
/// Lines are split as `connectors.jsonl.read_line_blocks` splits them: at `\n`,
/// without trailing `\r`, blank ones left out. Returns the kept lines' places among
/// the block's non-blank lines, their line numbers (the block's first line is
/// `first_line`), the lines, and the count of non-blank lines.
#[pyfunction]
#[pyo3(signature = (block, first_line, group, groups))]
pub(crate) fn own_lines<'py>(
    py: Python<'py>,
    block: &[u8],
    first_line: usize,
    group: u32,
    groups: u32,
) -> PyResult<(Vec<usize>, Vec<usize>, Bound<'py, PyList>, usize)> {
    configured()?;
    let mut key = String::with_capacity(64);
    let mut places = Vec::new();
    let mut numbers = Vec::new();
    let lines = PyList::empty_bound(py);
    let mut non_blank = 0usize;
    for (index, line) in block.split(|&b| b == b'\n').enumerate() {
        let mut end = line.len();
        while end > 0 && line[end - 1] == b'\r' {
            end -= 1;
        }
        let line = &line[..end];
        // Python's bytes.strip(): space, \t, \n, \r, \x0b, \x0c.
        if line
            .iter()
            .all(|&b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
        {
            continue;
        }
        let place = non_blank;
        non_blank += 1;
        if single_key(line, &mut key) && group_of(&key, groups) != group {
            continue;
        }
        places.push(place);
        numbers.push(first_line + index);
        lines.append(PyBytes::new_bound(py, line))?;
    }
    Ok((places, numbers, lines, non_blank))
}
