//! Readable tables of audit answers for `accounts audit … --format table`.

use super::events::EventsPage;
use super::state::AccountState;
use serde_json::Value;
use std::fmt::Write;

/// Most characters of an event's data shown in a row.
const DATA_WIDTH: usize = 100;

/// One line per event: position, recorded at, stream, revision, type, actor, data.
pub fn events(page: &EventsPage) -> String {
    let mut rows = vec![[
        "POSITION".to_owned(),
        "RECORDED AT".to_owned(),
        "STREAM".to_owned(),
        "REV".to_owned(),
        "TYPE".to_owned(),
        "ACTOR".to_owned(),
        "DATA".to_owned(),
    ]];
    for event in &page.events {
        let actor = serde_json::to_value(&event.actor).unwrap_or_default();
        let actor = actor["kind"].as_str().unwrap_or("?").to_owned();
        let mut data = event.data.to_string();
        if data.chars().count() > DATA_WIDTH {
            data = data.chars().take(DATA_WIDTH - 1).collect::<String>() + "…";
        }
        rows.push([
            event.position.to_string(),
            event.recorded_at.to_rfc3339(),
            event.stream.clone(),
            event.revision.to_string(),
            event.event_type.clone(),
            actor,
            data,
        ]);
    }
    let mut out = render(&rows);
    if let Some(cursor) = &page.next_cursor {
        let _ = writeln!(out, "more: --cursor {cursor}");
    }
    out
}

/// The state as sections of `key  value` lines.
pub fn state(state: &AccountState) -> String {
    let mut out = String::new();
    let value = serde_json::to_value(state).unwrap_or_default();
    let Value::Object(fields) = value else {
        return out;
    };
    let mut scalars = Vec::new();
    for (key, value) in &fields {
        match value {
            Value::Array(items) => {
                let _ = writeln!(out, "\n{key} ({})", items.len());
                for item in items {
                    let _ = writeln!(out, "  {}", one_line(item));
                }
            }
            Value::Object(inner) => {
                let _ = writeln!(out, "\n{key}");
                for (k, v) in inner {
                    match v {
                        Value::Array(items) => {
                            let _ = writeln!(out, "  {k} ({})", items.len());
                            for item in items {
                                let _ = writeln!(out, "    {}", one_line(item));
                            }
                        }
                        _ => {
                            let _ = writeln!(out, "  {k:<22} {}", scalar(v));
                        }
                    }
                }
            }
            _ => scalars.push([key.clone(), scalar(value)]),
        }
    }
    let mut head = String::new();
    for [key, value] in scalars {
        let _ = writeln!(head, "{key:<24} {value}");
    }
    head + &out
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn one_line(item: &Value) -> String {
    match item {
        Value::Object(fields) => fields
            .iter()
            .map(|(k, v)| format!("{k}={}", scalar(v)))
            .collect::<Vec<_>>()
            .join("  "),
        other => scalar(other),
    }
}

fn render<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, (width, cell)) in widths.iter().zip(row).enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}
