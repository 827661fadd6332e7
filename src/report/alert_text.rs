//! What the alert sinks write of an alert: its headline, its figures as text, the note on
//! alerts the rate limit dropped, and the cut that keeps text within a backend's limits.

use crate::{watch::Alert, FieldValue};

/// `[severity] route: what was detected (opened|resolved)`, or `… on <instance> (opened)`: the
/// alert's one-line summary without its figures, at most `chars` characters.
pub(crate) fn headline(alert: &Alert, chars: usize) -> String {
    truncate(&alert.headline().to_string(), chars).to_owned()
}

/// `webhook-monitor/<route>/<kind>`, then `/<instance>` for an alert with an
/// [instance](Alert::instance): what identifies an alert to a pager (PagerDuty's `dedup_key`,
/// Opsgenie's `alias`), so that one route's alert of one kind is one incident, and on two
/// instances of a fleet, two.
pub(crate) fn alert_key(alert: &Alert) -> String {
    let (route, kind) = (&alert.route, alert.kind.as_str());
    match &alert.instance {
        Some(instance) => format!("webhook-monitor/{route}/{kind}/{instance}"),
        None => format!("webhook-monitor/{route}/{kind}"),
    }
}

/// A figure's value as text, as in the alert's summary (floats with three decimals) but
/// strings unquoted.
pub(crate) fn figure_text(value: &FieldValue) -> String {
    match value {
        FieldValue::F64(v) => format!("{v:.3}"),
        FieldValue::Str(v) => v.to_string(),
        FieldValue::Bool(v) => v.to_string(),
        FieldValue::I64(v) => v.to_string(),
        FieldValue::U64(v) => v.to_string(),
    }
}

/// What a message says of the `dropped` alerts before it.
pub(crate) fn dropped_note(dropped: u64) -> String {
    format!("{dropped} more alerts were dropped by the rate limit since the previous message")
}

/// `text`'s first `chars` characters (never a split character).
pub(crate) fn truncate(text: &str, chars: usize) -> &str {
    text.char_indices()
        .nth(chars)
        .map_or(text, |(end, _)| &text[..end])
}
