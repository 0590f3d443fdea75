//! Writing a transition: its JSON line, its id, and event-id fingerprints.

use super::*;

// Output --------------------------------------------------------------------------------

/// A JSON string exactly as orjson writes it.
/// The head every output record of an item shares: `{"id", "tenant", "item": {"entity",
/// "id"}, "category"` (transitions and stage history).
pub(crate) fn push_record_head(out: &mut Vec<u8>, id: &str, tenant: &str, r: &Ref, category: &str) {
    out.extend_from_slice(b"{\"id\":");
    push_json_str(out, id);
    out.extend_from_slice(b",\"tenant\":");
    push_json_str(out, tenant);
    out.extend_from_slice(b",\"item\":{\"entity\":");
    push_json_str(out, &r.entity);
    out.extend_from_slice(b",\"id\":");
    push_json_str(out, &r.id);
    out.extend_from_slice(b"},\"category\":");
    push_json_str(out, category);
}

pub(crate) fn push_json_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

pub(crate) const TRANSITION_NAMESPACE: [u8; 16] = [
    0x5b, 0x1f, 0x3c, 0x2e, 0x8d, 0x4a, 0x4f, 0x0e, 0x9c, 0x6b, 0x2a, 0x7e, 0x1d, 0x9f, 0x4b, 0x30,
];

/// uuid5 of (tenant, entity, item id, event id), as `state.model.transition_id`.
pub(crate) fn transition_id(tenant: &str, entity: &str, item_id: &str, event_id: &str) -> String {
    record_id(&[tenant, entity, item_id, event_id])
}

/// uuid5 of the injective name of `parts`, as `state.model.id_name`: joined by 0x1f
/// when none holds it and the first is not empty; else 0x1f, then each part as its
/// byte length, 0x1f and the part.
pub(crate) fn record_id(parts: &[&str]) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(&TRANSITION_NAMESPACE);
    let plain = !parts[0].is_empty() && parts.iter().all(|p| !p.as_bytes().contains(&0x1f));
    if plain {
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                sha.update(b"\x1f");
            }
            sha.update(part.as_bytes());
        }
    } else {
        sha.update(b"\x1f");
        for part in parts {
            sha.update(part.len().to_string().as_bytes());
            sha.update(b"\x1f");
            sha.update(part.as_bytes());
        }
    }
    let mut b = sha.digest().bytes();
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for (i, byte) in b[..16].iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[(byte >> 4) as usize] as char);
        out.push(HEX[(byte & 0xf) as usize] as char);
    }
    out
}

/// 8 stable bytes of an id, as `state.board.fingerprint`: CRC-32 of it and of its reverse.
pub(crate) fn fingerprint(text: &str) -> u64 {
    let raw = text.as_bytes();
    let forward = crc32fast::hash(raw);
    let mut buffer = [0u8; 64];
    let backward = if raw.len() <= buffer.len() {
        let reversed = &mut buffer[..raw.len()];
        reversed.copy_from_slice(raw);
        reversed.reverse();
        crc32fast::hash(reversed)
    } else {
        let mut reversed = raw.to_vec();
        reversed.reverse();
        crc32fast::hash(&reversed)
    };
    u64::from(forward) | (u64::from(backward) << 32)
}

impl NativeBoard {
    pub(crate) fn make_move(
        &mut self,
        event: &Event,
        item_index: usize,
        state: &mut ItemState,
        position: usize,
        candidate: &Candidate,
    ) -> Outcome {
        let r = &event.refs[item_index];
        let tid = transition_id(&event.tenant, &r.entity, &r.id, &event.id);
        let moved = fingerprint(&tid);
        if let Some(echoes) = &state.echoes {
            if echoes.iter().any(|(m, _)| *m == moved) {
                // An old retry of an event that moved the item: never a second move.
                return Outcome::Decided(DUPLICATE);
            }
        }
        let from_stage = state.stage;
        let mut out = Vec::with_capacity(512);
        push_record_head(
            &mut out,
            &tid,
            &event.tenant,
            r,
            self.names.text(state.category),
        );
        out.extend_from_slice(b",\"from_stage\":");
        push_json_str(&mut out, self.names.text(state.stage));
        out.extend_from_slice(b",\"to_stage\":");
        push_json_str(&mut out, &candidate.stage_text);
        out.extend_from_slice(b",\"direction\":");
        let direction = if candidate.position > position {
            "forward"
        } else {
            "backward"
        };
        push_json_str(&mut out, direction);
        out.extend_from_slice(b",\"trigger\":{\"id\":");
        push_json_str(&mut out, &candidate.trigger_id);
        out.extend_from_slice(b",\"code\":");
        push_json_str(&mut out, candidate.code);
        out.extend_from_slice(b"},\"event\":{\"id\":");
        push_json_str(&mut out, &event.id);
        out.extend_from_slice(b",\"type\":");
        push_json_str(&mut out, vocabulary().type_name(event.etype));
        out.extend_from_slice(b",\"occurred_at\":");
        push_json_str(&mut out, &event.occurred_at);
        out.extend_from_slice(b"}}");
        state.stage = candidate.stage;
        let mut echoes = state
            .echoes
            .take()
            .map(|e| e.into_vec())
            .unwrap_or_default();
        if echoes.len() >= self.echo_window {
            let drop = echoes.len() + 1 - self.echo_window;
            echoes.drain(..drop);
        }
        echoes.push((moved, candidate.stage));
        state.echoes = Some(echoes.into_boxed_slice());
        let trigger_id = if self.history {
            candidate.trigger_id.clone()
        } else {
            String::new()
        };
        Outcome::Move(Move {
            json: out,
            tid,
            from_stage,
            to_stage: candidate.stage,
            trigger_id,
            code: candidate.code,
        })
    }
}
