//! How a raw value appears in a message.

/// A value for a message: cut at 40 characters, so one huge field cannot flood a reason.
pub(crate) fn shown(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}
