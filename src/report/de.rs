//! `Deserialize` for what the reporter sends: the JSON its `Serialize` impls write (the schema in
//! `docs/report-schema.md`) reads back into the same types, for a backend written in Rust.
//!
//! Every impl here is written by hand; none is derived. No report type has a derived
//! `Serialize` to mirror: each one renames, converts units (durations in microseconds, times as
//! RFC 3339 text), writes a record's fields at the top level ([`Delivery`], [`ReporterStats`]) or
//! one value as two keys (`outcome` and `outcome_detail`). A derive would need as many
//! attributes as these impls have lines, and would spell the names a second time. Where a type
//! has a name table (`as_str`, `AlertKind::ALL`), the impls read names from it.
//!
//! The same rules everywhere:
//! - unknown keys are skipped, so that a newer sender, with more keys, stays readable; so are
//!   unknown flag names;
//! - a key whose value may be `null` may also be absent (read as `null`); any other missing key
//!   is an error, and so is a key given twice;
//! - an alert's `instance` and a health report's `fleet` are written only when set: absent (or
//!   `null`), they read as `None`;
//! - a value the schema does not allow (an unknown outcome, a malformed fingerprint, a payload
//!   check message that is not one this crate writes) is an error, never a panic;
//! - `mean_retry_interval_ms` is derived and not read: [`Delivery::mean_retry_interval`] works
//!   it out again from `received_at`, `first_seen` and `times_seen`. `lag_ms` is read: the
//!   provider's send time is not in the schema, and reads back as `received_at` minus `lag_ms`.

use std::{
    borrow::Cow,
    fmt,
    marker::PhantomData,
    sync::Arc,
    time::{Duration, SystemTime},
};

use ::http::{HeaderValue, StatusCode};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{DeliveryReport, Flags, FleetHealth, HealthReport, Report, ReporterStats, SinkHealth};
use crate::{
    delivery::DeliveryData,
    outcome::Field,
    payload::{JsonErrorKind, PayloadViolation},
    watch::{Alert, AlertKind, AlertState, Severity},
    Delivery, FailureKind, FieldValue, Fingerprint, Outcome, RejectReason, SignatureStatus,
};

// ---------------------------------------------------------------------------------------------
// Name tables. The tests match each enum exhaustively, so a new variant fails to compile there
// until it is listed here.

/// The outcomes that carry no detail.
const PLAIN_OUTCOMES: [Outcome; 6] = [
    Outcome::Success,
    Outcome::Late,
    Outcome::Duplicate,
    Outcome::InFlight,
    Outcome::Panicked,
    Outcome::Cancelled,
];

const FAILURE_KINDS: [FailureKind; 6] = [
    FailureKind::Redirect,
    FailureKind::ClientError,
    FailureKind::ServerError,
    FailureKind::Marked,
    FailureKind::ServiceError,
    FailureKind::NotAccepted,
];

const REJECT_REASONS: [RejectReason; 10] = [
    RejectReason::TooLarge,
    RejectReason::BodyRead,
    RejectReason::BodyTimeout,
    RejectReason::MissingSignature,
    RejectReason::MalformedSignature,
    RejectReason::BadSignature,
    RejectReason::StaleTimestamp,
    RejectReason::FutureTimestamp,
    RejectReason::DedupeUnavailable,
    RejectReason::PayloadCheck,
];

/// One of each signature status (the index of `Verified` is read from `secret_index`).
const SIGNATURES: [SignatureStatus; 3] = [
    SignatureStatus::Unchecked,
    SignatureStatus::Verified { secret_index: 0 },
    SignatureStatus::Failed,
];

const SEVERITIES: [Severity; 2] = [Severity::Warning, Severity::Critical];

const ALERT_STATES: [AlertState; 2] = [AlertState::Opened, AlertState::Resolved];

/// What `PayloadViolation`'s `Display` says for each kind of invalid JSON (`src/payload.rs`).
const JSON_ERRORS: [(JsonErrorKind, &str); 3] = [
    (JsonErrorKind::Syntax, "syntax error"),
    (JsonErrorKind::Eof, "unexpected end of input"),
    (JsonErrorKind::Utf8, "invalid UTF-8"),
];

/// Every outcome, with every detail.
fn outcomes() -> impl Iterator<Item = Outcome> + Clone {
    PLAIN_OUTCOMES
        .into_iter()
        .chain(FAILURE_KINDS.map(Outcome::Failure))
        .chain(REJECT_REASONS.map(Outcome::Rejected))
}

/// Names for an error message: `` `a`, `b`, `c` ``, each once.
struct OneOf<I>(I);

impl<I: Iterator<Item = &'static str> + Clone> fmt::Display for OneOf<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last = None;
        for name in self.0.clone() {
            if last == Some(name) {
                continue;
            }
            if last.is_some() {
                f.write_str(", ")?;
            }
            write!(f, "`{name}`")?;
            last = Some(name);
        }
        Ok(())
    }
}

/// The one of `all` whose [`as_str`]-like `name` is `text`; else an error naming `what` and
/// every name.
fn by_name<T: Copy, E: de::Error>(
    all: &[T],
    name: fn(T) -> &'static str,
    text: &str,
    what: &str,
) -> Result<T, E> {
    all.iter()
        .copied()
        .find(|&t| name(t) == text)
        .ok_or_else(|| {
            let names = OneOf(all.iter().copied().map(name));
            E::custom(format_args!(
                "unknown {what} `{text}`, expected one of {names}"
            ))
        })
}

/// Reads `outcome` and `outcome_detail` back into an [`Outcome`].
fn outcome<E: de::Error>(name: &str, detail: Option<&str>) -> Result<Outcome, E> {
    if let Some(found) = outcomes().find(|o| o.as_str() == name && o.detail() == detail) {
        return Ok(found);
    }
    let named = || outcomes().filter(move |o| o.as_str() == name);
    if named().next().is_none() {
        let names = OneOf(outcomes().map(Outcome::as_str));
        return Err(E::custom(format_args!(
            "unknown outcome `{name}`, expected one of {names}"
        )));
    }
    let details = OneOf(named().filter_map(Outcome::detail));
    Err(E::custom(match detail {
        None => format!("outcome `{name}` needs an outcome_detail: one of {details}"),
        Some(d) if named().all(|o| o.detail().is_none()) => {
            format!("outcome `{name}` has no outcome_detail, found `{d}`")
        }
        Some(d) => {
            format!("unknown outcome_detail `{d}` for outcome `{name}`, expected one of {details}")
        }
    }))
}

/// Reads `signature` and `secret_index` back into a [`SignatureStatus`].
fn signature<E: de::Error>(name: &str, index: Option<usize>) -> Result<SignatureStatus, E> {
    let status = by_name(&SIGNATURES, SignatureStatus::as_str, name, "signature")?;
    match (status, index) {
        (SignatureStatus::Verified { .. }, Some(secret_index)) => {
            Ok(SignatureStatus::Verified { secret_index })
        }
        (SignatureStatus::Verified { .. }, None) => {
            Err(E::custom("a `verified` signature needs its secret_index"))
        }
        (status, None) => Ok(status),
        (_, Some(_)) => Err(E::custom(format_args!(
            "secret_index is for a `verified` signature only, found one for `{name}`"
        ))),
    }
}

/// Sets the flag named `name`; `false` for a name this version does not know.
fn set_flag(flags: &mut Flags, name: &str) -> bool {
    let flag = match name {
        "near_timeout" => &mut flags.near_timeout,
        "over_budget" => &mut flags.over_budget,
        "dedupe_unavailable" => &mut flags.dedupe_unavailable,
        "many_attempts" => &mut flags.many_attempts,
        "rapid_retries" => &mut flags.rapid_retries,
        "claim_expired" => &mut flags.claim_expired,
        "payload_flagged" => &mut flags.payload_flagged,
        _ => return false,
    };
    *flag = true;
    true
}

// ---------------------------------------------------------------------------------------------
// Values read from one JSON string.

/// A value read from one string.
trait FromText: Sized {
    /// What the string should be, for error messages.
    const EXPECTING: &'static str;

    fn from_text<E: de::Error>(text: &str) -> Result<Self, E>;

    fn invalid<E: de::Error>(text: &str) -> E {
        E::invalid_value(de::Unexpected::Str(text), &Self::EXPECTING)
    }
}

/// Deserializes a [`FromText`] value from a string.
fn from_text<'de, T: FromText, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    struct V<T>(PhantomData<fn() -> T>);

    impl<T: FromText> Visitor<'_> for V<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(T::EXPECTING)
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
            T::from_text(text)
        }
    }

    d.deserialize_str(V(PhantomData))
}

/// A time in RFC 3339 (`received_at`, `first_seen`, an alert's or a health report's `at`).
struct Rfc3339(SystemTime);

impl FromText for Rfc3339 {
    const EXPECTING: &'static str = "an RFC 3339 time in UTC";

    fn from_text<E: de::Error>(text: &str) -> Result<Self, E> {
        humantime::parse_rfc3339(text)
            .map(Self)
            .map_err(|err| E::custom(format_args!("invalid time {text:?}: {err}")))
    }
}

impl<'de> Deserialize<'de> for Rfc3339 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_text(d)
    }
}

/// A header's value (`delivery_id`, `event_type`): what `HeaderValue::to_str` gives, and so
/// visible ASCII (or tabs) only.
struct Header(HeaderValue);

impl FromText for Header {
    const EXPECTING: &'static str = "a header value of visible ASCII";

    fn from_text<E: de::Error>(text: &str) -> Result<Self, E> {
        let visible = text
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
        visible
            .then(|| HeaderValue::from_str(text).ok())
            .flatten()
            .map(Self)
            .ok_or_else(|| Self::invalid(text))
    }
}

impl<'de> Deserialize<'de> for Header {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_text(d)
    }
}

/// An HTTP status code (`status`).
struct Status(StatusCode);

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = u16::deserialize(d)?;
        StatusCode::from_u16(code).map(Self).map_err(|_| {
            de::Error::invalid_value(de::Unexpected::Unsigned(code.into()), &"an HTTP status")
        })
    }
}

/// The inverse of [`Fingerprint`]'s `Display`.
impl FromText for Fingerprint {
    const EXPECTING: &'static str = "`xxh3-128:` and 32, or `sha256:` and 64, lowercase hex digits";

    fn from_text<E: de::Error>(text: &str) -> Result<Self, E> {
        let parsed = if let Some(hex) = text.strip_prefix("xxh3-128:") {
            lower_hex(hex).map(|b| Self::Xxh3_128(u128::from_be_bytes(b)))
        } else if let Some(hex) = text.strip_prefix("sha256:") {
            lower_hex(hex).map(Self::Sha256)
        } else {
            None
        };
        parsed.ok_or_else(|| Self::invalid(text))
    }
}

/// `N` bytes from exactly `2 * N` lowercase hex digits, as `Fingerprint`'s `Display` writes
/// them (uppercase would not write back the same).
fn lower_hex<const N: usize>(hex: &str) -> Option<[u8; N]> {
    if hex.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode_to_array(hex).ok()
}

/// Reads the form [`Fingerprint`]'s `Display` writes, as in a report's `fingerprint`:
/// `xxh3-128:<32 hex digits>` or `sha256:<64 hex digits>`, lowercase.
impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_text(d)
    }
}

impl FromText for AlertKind {
    const EXPECTING: &'static str = "an alert kind";

    fn from_text<E: de::Error>(text: &str) -> Result<Self, E> {
        by_name(&Self::ALL, Self::as_str, text, "alert kind")
    }
}

/// Reads the name [`as_str`](AlertKind::as_str) gives, as in an alert's `kind`.
impl<'de> Deserialize<'de> for AlertKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_text(d)
    }
}

impl FromText for Severity {
    const EXPECTING: &'static str = "`warning` or `critical`";

    fn from_text<E: de::Error>(text: &str) -> Result<Self, E> {
        by_name(&SEVERITIES, Self::as_str, text, "severity")
    }
}

/// Reads the name [`as_str`](Severity::as_str) gives, as in an alert's `severity`.
impl<'de> Deserialize<'de> for Severity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_text(d)
    }
}

impl FromText for AlertState {
    const EXPECTING: &'static str = "`opened` or `resolved`";

    fn from_text<E: de::Error>(text: &str) -> Result<Self, E> {
        by_name(&ALERT_STATES, Self::as_str, text, "alert state")
    }
}

/// Reads the name [`as_str`](AlertState::as_str) gives, as in an alert's `state`.
impl<'de> Deserialize<'de> for AlertState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_text(d)
    }
}

// ---------------------------------------------------------------------------------------------
// Flags, fields.

/// Reads a report's `flags`: a list of flag names. A name this version does not know is
/// skipped, as unknown keys are.
impl<'de> Deserialize<'de> for Flags {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;

        impl<'de> Visitor<'de> for V {
            type Value = Flags;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of flag names")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Flags, A::Error> {
                let mut flags = Flags::default();
                while let Some(name) = seq.next_element::<Cow<'_, str>>()? {
                    set_flag(&mut flags, &name); // an unknown flag is skipped
                }
                Ok(flags)
            }
        }

        d.deserialize_seq(V)
    }
}

/// Reads a custom field's or an alert figure's value: a boolean, a number, a string, or `null`.
///
/// A JSON number reads back as the variant its form says: an integer as
/// [`U64`](FieldValue::U64) (or [`I64`](FieldValue::I64) if negative), anything with a fraction
/// or an exponent as [`F64`](FieldValue::F64). So an `I64` that is not negative reads back as a
/// `U64` of the same value, and `null` (what a non-finite `F64` serializes to) reads back as
/// `F64(NaN)`: either way, it serializes to the same JSON again.
impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;

        impl<'de> Visitor<'de> for V {
            type Value = FieldValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean, a number, a string or null")
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<FieldValue, E> {
                Ok(FieldValue::Bool(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FieldValue, E> {
                Ok(FieldValue::I64(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FieldValue, E> {
                Ok(FieldValue::U64(v))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<FieldValue, E> {
                Ok(FieldValue::F64(v))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldValue, E> {
                Ok(FieldValue::Str(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<FieldValue, E> {
                Ok(FieldValue::Str(Cow::Owned(v)))
            }

            fn visit_unit<E: de::Error>(self) -> Result<FieldValue, E> {
                Ok(FieldValue::F64(f64::NAN))
            }

            fn visit_none<E: de::Error>(self) -> Result<FieldValue, E> {
                Ok(FieldValue::F64(f64::NAN))
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<FieldValue, D::Error> {
                FieldValue::deserialize(d)
            }
        }

        d.deserialize_any(V)
    }
}

/// A map of fields (`fields`, `figures`), in the order written; a name given twice is kept twice,
/// as a handler's [`Mark`](crate::Mark) may carry it.
struct Fields(Vec<Field>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;

        impl<'de> Visitor<'de> for V {
            type Value = Fields;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of field names to values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some((name, value)) = map.next_entry::<String, FieldValue>()? {
                    fields.push(Field {
                        name: Cow::Owned(name),
                        value,
                    });
                }
                Ok(Fields(fields))
            }
        }

        d.deserialize_map(V)
    }
}

// ---------------------------------------------------------------------------------------------
// Keys.

/// An enum of an object's keys, read from their names; `Unknown` for any other name.
macro_rules! keys {
    ($(#[$doc:meta])* enum $key:ident { $($variant:ident = $name:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum $key {
            $($variant,)*
            Unknown,
        }

        impl $key {
            fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                    Self::Unknown => "(unknown)",
                }
            }
        }

        impl FromText for $key {
            const EXPECTING: &'static str = "a key";

            fn from_text<E: de::Error>(text: &str) -> Result<Self, E> {
                Ok(match text {
                    $($name => Self::$variant,)*
                    _ => Self::Unknown,
                })
            }
        }

        impl<'de> Deserialize<'de> for $key {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                from_text(d)
            }
        }
    };
}

keys! {
    /// The keys of every type of report (see [`Key::belongs_to`]).
    enum Key {
        Type = "type",
        Route = "route",
        At = "at",
        // delivery
        Provider = "provider",
        DeliveryId = "delivery_id",
        EventType = "event_type",
        Attempt = "attempt",
        Signature = "signature",
        SecretIndex = "secret_index",
        Status = "status",
        Outcome = "outcome",
        OutcomeDetail = "outcome_detail",
        Reason = "reason",
        PayloadCheck = "payload_check",
        ReceivedAt = "received_at",
        BodyReadUs = "body_read_us",
        HandlerUs = "handler_us",
        TotalUs = "total_us",
        BodyBytes = "body_bytes",
        Fingerprint = "fingerprint",
        TimesSeen = "times_seen",
        FirstSeen = "first_seen",
        MeanRetryIntervalMs = "mean_retry_interval_ms",
        LagMs = "lag_ms",
        Flags = "flags",
        Fields = "fields",
        // alert
        Kind = "kind",
        Severity = "severity",
        State = "state",
        OpenedAt = "opened_at",
        Figures = "figures",
        Instance = "instance",
        // health
        Enqueued = "enqueued",
        DroppedFull = "dropped_full",
        DroppedClosed = "dropped_closed",
        Sent = "sent",
        Failed = "failed",
        Batches = "batches",
        Alerts = "alerts",
        SinkPanics = "sink_panics",
        WatcherPanics = "watcher_panics",
        QueueDepth = "queue_depth",
        RssBytes = "rss_bytes",
        Sinks = "sinks",
        Fleet = "fleet",
    }
}

/// A report's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReportType {
    Delivery,
    Alert,
    Health,
}

impl ReportType {
    const ALL: [Self; 3] = [Self::Delivery, Self::Alert, Self::Health];

    fn as_str(self) -> &'static str {
        match self {
            Self::Delivery => "delivery",
            Self::Alert => "alert",
            Self::Health => "health",
        }
    }
}

impl FromText for ReportType {
    const EXPECTING: &'static str = "a report type";

    fn from_text<E: de::Error>(text: &str) -> Result<Self, E> {
        by_name(&Self::ALL, Self::as_str, text, "report type")
    }
}

impl<'de> Deserialize<'de> for ReportType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_text(d)
    }
}

impl Key {
    /// Whether reports of type `of` have this key.
    fn belongs_to(self, of: ReportType) -> bool {
        match self {
            Self::Type => true,
            Self::Route => of != ReportType::Health,
            Self::At => of != ReportType::Delivery,
            Self::Provider
            | Self::DeliveryId
            | Self::EventType
            | Self::Attempt
            | Self::Signature
            | Self::SecretIndex
            | Self::Status
            | Self::Outcome
            | Self::OutcomeDetail
            | Self::Reason
            | Self::PayloadCheck
            | Self::ReceivedAt
            | Self::BodyReadUs
            | Self::HandlerUs
            | Self::TotalUs
            | Self::BodyBytes
            | Self::Fingerprint
            | Self::TimesSeen
            | Self::FirstSeen
            | Self::MeanRetryIntervalMs
            | Self::LagMs
            | Self::Flags
            | Self::Fields => of == ReportType::Delivery,
            Self::Kind
            | Self::Severity
            | Self::State
            | Self::OpenedAt
            | Self::Figures
            | Self::Instance => of == ReportType::Alert,
            Self::Enqueued
            | Self::DroppedFull
            | Self::DroppedClosed
            | Self::Sent
            | Self::Failed
            | Self::Batches
            | Self::Alerts
            | Self::SinkPanics
            | Self::WatcherPanics
            | Self::QueueDepth
            | Self::RssBytes
            | Self::Sinks
            | Self::Fleet => of == ReportType::Health,
            Self::Unknown => false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reports.

/// Stores `value` in an empty slot; a full one means the key was given twice.
fn set<T, E: de::Error>(slot: &mut Option<T>, key: Key, value: T) -> Result<(), E> {
    put(slot, key.name(), value)
}

/// Stores `value` in an empty slot for the key `name`; a full one means it was given twice.
fn put<T, E: de::Error>(slot: &mut Option<T>, name: &'static str, value: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(name));
    }
    *slot = Some(value);
    Ok(())
}

/// The value of a required key.
fn required<T, E: de::Error>(slot: Option<T>, name: &'static str) -> Result<T, E> {
    slot.ok_or_else(|| E::missing_field(name))
}

/// What a report's keys said, before it is built. One pass over the map, in any key order: the
/// `type` is usually first, and then keys of other kinds of report are skipped unread; until it
/// is known, every known key is read.
#[derive(Default)]
struct Slots {
    /// The kind the caller expects (`None` for [`Report`]), or once read, the `type`'s.
    kind: Option<ReportType>,
    report_type: Option<ReportType>,
    route: Option<String>,
    at: Option<SystemTime>,
    // delivery
    provider: Option<Option<String>>,
    delivery_id: Option<Option<HeaderValue>>,
    event_type: Option<Option<HeaderValue>>,
    attempt: Option<Option<u32>>,
    signature: Option<String>,
    secret_index: Option<Option<usize>>,
    status: Option<Option<StatusCode>>,
    outcome: Option<String>,
    outcome_detail: Option<Option<String>>,
    reason: Option<Option<String>>,
    payload_check: Option<Option<PayloadViolation>>,
    received_at: Option<SystemTime>,
    body_read_us: Option<u64>,
    handler_us: Option<u64>,
    total_us: Option<u64>,
    body_bytes: Option<u64>,
    fingerprint: Option<Option<Fingerprint>>,
    times_seen: Option<Option<u32>>,
    first_seen: Option<Option<SystemTime>>,
    lag_ms: Option<Option<u64>>,
    flags: Option<Flags>,
    fields: Option<Vec<Field>>,
    // alert
    alert_kind: Option<AlertKind>,
    severity: Option<Severity>,
    state: Option<AlertState>,
    opened_at: Option<SystemTime>,
    figures: Option<Vec<Field>>,
    instance: Option<Option<String>>,
    // health
    enqueued: Option<u64>,
    dropped_full: Option<u64>,
    dropped_closed: Option<u64>,
    sent: Option<u64>,
    failed: Option<u64>,
    batches: Option<u64>,
    alerts: Option<u64>,
    sink_panics: Option<u64>,
    watcher_panics: Option<u64>,
    queue_depth: Option<usize>,
    rss_bytes: Option<Option<u64>>,
    sinks: Option<Vec<SinkHealth>>,
    fleet: Option<Option<FleetHealth>>,
}

impl Slots {
    fn read<'de, A: MapAccess<'de>>(&mut self, map: &mut A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Key>()? {
            if key == Key::Unknown || self.kind.is_some_and(|kind| !key.belongs_to(kind)) {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            self.read_value(key, map)?;
        }
        Ok(())
    }

    fn read_value<'de, A: MapAccess<'de>>(
        &mut self,
        key: Key,
        map: &mut A,
    ) -> Result<(), A::Error> {
        fn time(t: Option<Rfc3339>) -> Option<SystemTime> {
            t.map(|t| t.0)
        }
        fn header(h: Option<Header>) -> Option<HeaderValue> {
            h.map(|h| h.0)
        }
        match key {
            Key::Type => {
                let kind: ReportType = map.next_value()?;
                if self.kind.is_some_and(|expected| expected != kind) {
                    return Err(de::Error::invalid_value(
                        de::Unexpected::Str(kind.as_str()),
                        &self.kind.map_or("", ReportType::as_str),
                    ));
                }
                set(&mut self.report_type, key, kind)?;
                self.kind = Some(kind);
            }
            Key::Route => set(&mut self.route, key, map.next_value()?)?,
            Key::At => set(&mut self.at, key, map.next_value::<Rfc3339>()?.0)?,
            Key::Provider => set(&mut self.provider, key, map.next_value()?)?,
            Key::DeliveryId => set(&mut self.delivery_id, key, header(map.next_value()?))?,
            Key::EventType => set(&mut self.event_type, key, header(map.next_value()?))?,
            Key::Attempt => set(&mut self.attempt, key, map.next_value()?)?,
            Key::Signature => set(&mut self.signature, key, map.next_value()?)?,
            Key::SecretIndex => set(&mut self.secret_index, key, map.next_value()?)?,
            Key::Status => {
                let status = map.next_value::<Option<Status>>()?.map(|s| s.0);
                set(&mut self.status, key, status)?;
            }
            Key::Outcome => set(&mut self.outcome, key, map.next_value()?)?,
            Key::OutcomeDetail => set(&mut self.outcome_detail, key, map.next_value()?)?,
            Key::Reason => set(&mut self.reason, key, map.next_value()?)?,
            Key::PayloadCheck => set(&mut self.payload_check, key, map.next_value()?)?,
            Key::ReceivedAt => set(&mut self.received_at, key, map.next_value::<Rfc3339>()?.0)?,
            Key::BodyReadUs => set(&mut self.body_read_us, key, map.next_value()?)?,
            Key::HandlerUs => set(&mut self.handler_us, key, map.next_value()?)?,
            Key::TotalUs => set(&mut self.total_us, key, map.next_value()?)?,
            Key::BodyBytes => set(&mut self.body_bytes, key, map.next_value()?)?,
            Key::Fingerprint => set(&mut self.fingerprint, key, map.next_value()?)?,
            Key::TimesSeen => set(&mut self.times_seen, key, map.next_value()?)?,
            Key::FirstSeen => set(&mut self.first_seen, key, time(map.next_value()?))?,
            // Derived from received_at, first_seen and times_seen: not read.
            Key::MeanRetryIntervalMs => drop(map.next_value::<IgnoredAny>()?),
            Key::LagMs => set(&mut self.lag_ms, key, map.next_value()?)?,
            Key::Flags => set(&mut self.flags, key, map.next_value()?)?,
            Key::Fields => set(&mut self.fields, key, map.next_value::<Fields>()?.0)?,
            Key::Kind => set(&mut self.alert_kind, key, map.next_value()?)?,
            Key::Severity => set(&mut self.severity, key, map.next_value()?)?,
            Key::State => set(&mut self.state, key, map.next_value()?)?,
            Key::OpenedAt => set(&mut self.opened_at, key, map.next_value::<Rfc3339>()?.0)?,
            Key::Figures => set(&mut self.figures, key, map.next_value::<Fields>()?.0)?,
            Key::Instance => set(&mut self.instance, key, map.next_value()?)?,
            Key::QueueDepth => set(&mut self.queue_depth, key, map.next_value()?)?,
            Key::RssBytes => set(&mut self.rss_bytes, key, map.next_value()?)?,
            Key::Sinks => set(&mut self.sinks, key, map.next_value()?)?,
            Key::Fleet => set(&mut self.fleet, key, map.next_value()?)?,
            Key::Enqueued => set(&mut self.enqueued, key, map.next_value()?)?,
            Key::DroppedFull => set(&mut self.dropped_full, key, map.next_value()?)?,
            Key::DroppedClosed => set(&mut self.dropped_closed, key, map.next_value()?)?,
            Key::Sent => set(&mut self.sent, key, map.next_value()?)?,
            Key::Failed => set(&mut self.failed, key, map.next_value()?)?,
            Key::Batches => set(&mut self.batches, key, map.next_value()?)?,
            Key::Alerts => set(&mut self.alerts, key, map.next_value()?)?,
            Key::SinkPanics => set(&mut self.sink_panics, key, map.next_value()?)?,
            Key::WatcherPanics => set(&mut self.watcher_panics, key, map.next_value()?)?,
            Key::Unknown => drop(map.next_value::<IgnoredAny>()?),
        }
        Ok(())
    }

    /// The report's `type`, which must be there.
    fn report_type<E: de::Error>(&self) -> Result<ReportType, E> {
        required(self.report_type, "type")
    }

    fn report<E: de::Error>(self) -> Result<Report, E> {
        Ok(match self.report_type()? {
            ReportType::Delivery => Report::Delivery(self.delivery()?),
            ReportType::Alert => Report::Alert(self.alert()?),
            ReportType::Health => Report::Health(Box::new(self.health()?)),
        })
    }

    fn delivery<E: de::Error>(self) -> Result<DeliveryReport, E> {
        self.report_type()?;
        let received_at = required(self.received_at, "received_at")?;
        let signature = signature(
            &required::<_, E>(self.signature, "signature")?,
            self.secret_index.flatten(),
        )?;
        let outcome = outcome(
            &required::<_, E>(self.outcome, "outcome")?,
            self.outcome_detail.flatten().as_deref(),
        )?;
        // The provider's send time is not in the schema; its lag is, to the millisecond.
        let sent_at = match self.lag_ms.flatten() {
            Some(ms) => Some(
                received_at
                    .checked_sub(Duration::from_millis(ms))
                    .ok_or_else(|| E::custom(format_args!("lag_ms {ms} is out of range")))?,
            ),
            None => None,
        };
        let data = DeliveryData {
            route: Arc::from(required::<_, E>(self.route, "route")?),
            provider: self.provider.flatten().map(Arc::from),
            id: self.delivery_id.flatten(),
            event_type: self.event_type.flatten(),
            attempt: self.attempt.flatten(),
            signature,
            received_at,
            body_len: required(self.body_bytes, "body_bytes")?,
            fingerprint: self.fingerprint.flatten(),
            times_seen: self.times_seen.flatten(),
            first_seen: self.first_seen.flatten(),
            sent_at,
        };
        Ok(DeliveryReport {
            delivery: Delivery::new(data),
            status: self.status.flatten(),
            outcome,
            reason: self.reason.flatten().map(Cow::Owned),
            body_read: Duration::from_micros(required(self.body_read_us, "body_read_us")?),
            handler: Duration::from_micros(required(self.handler_us, "handler_us")?),
            total: Duration::from_micros(required(self.total_us, "total_us")?),
            flags: required(self.flags, "flags")?,
            fields: required(self.fields, "fields")?,
            payload: self.payload_check.flatten().map(Box::new),
        })
    }

    fn alert<E: de::Error>(self) -> Result<Alert, E> {
        self.report_type()?;
        Ok(Alert {
            kind: required(self.alert_kind, "kind")?,
            route: Arc::from(required::<_, E>(self.route, "route")?),
            severity: required(self.severity, "severity")?,
            state: required(self.state, "state")?,
            opened_at: required(self.opened_at, "opened_at")?,
            at: required(self.at, "at")?,
            figures: required(self.figures, "figures")?,
            instance: self.instance.flatten().map(Arc::from),
        })
    }

    fn health<E: de::Error>(self) -> Result<HealthReport, E> {
        self.report_type()?;
        Ok(HealthReport {
            at: required(self.at, "at")?,
            reporter: ReporterStats {
                enqueued: required(self.enqueued, "enqueued")?,
                dropped_full: required(self.dropped_full, "dropped_full")?,
                dropped_closed: required(self.dropped_closed, "dropped_closed")?,
                sent: required(self.sent, "sent")?,
                failed: required(self.failed, "failed")?,
                batches: required(self.batches, "batches")?,
                alerts: required(self.alerts, "alerts")?,
                sink_panics: required(self.sink_panics, "sink_panics")?,
                watcher_panics: required(self.watcher_panics, "watcher_panics")?,
                queue_depth: required(self.queue_depth, "queue_depth")?,
            },
            sinks: required(self.sinks, "sinks")?,
            rss_bytes: self.rss_bytes.flatten(),
            fleet: self.fleet.flatten(),
        })
    }
}

/// A report type read through [`Slots`].
trait FromSlots: Sized {
    /// The `type` it must have; `None` for any.
    const KIND: Option<ReportType>;
    const EXPECTING: &'static str;

    fn from_slots<E: de::Error>(slots: Slots) -> Result<Self, E>;
}

impl FromSlots for Report {
    const KIND: Option<ReportType> = None;
    const EXPECTING: &'static str = "a report: a map with a `type` of delivery, alert or health";

    fn from_slots<E: de::Error>(slots: Slots) -> Result<Self, E> {
        slots.report()
    }
}

impl FromSlots for DeliveryReport {
    const KIND: Option<ReportType> = Some(ReportType::Delivery);
    const EXPECTING: &'static str = "a delivery report";

    fn from_slots<E: de::Error>(slots: Slots) -> Result<Self, E> {
        slots.delivery()
    }
}

impl FromSlots for Alert {
    const KIND: Option<ReportType> = Some(ReportType::Alert);
    const EXPECTING: &'static str = "an alert";

    fn from_slots<E: de::Error>(slots: Slots) -> Result<Self, E> {
        slots.alert()
    }
}

impl FromSlots for HealthReport {
    const KIND: Option<ReportType> = Some(ReportType::Health);
    const EXPECTING: &'static str = "a health report";

    fn from_slots<E: de::Error>(slots: Slots) -> Result<Self, E> {
        slots.health()
    }
}

fn from_slots<'de, T: FromSlots, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    struct V<T>(PhantomData<fn() -> T>);

    impl<'de, T: FromSlots> Visitor<'de> for V<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(T::EXPECTING)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
            let mut slots = Slots {
                kind: T::KIND,
                ..Slots::default()
            };
            slots.read(&mut map)?;
            T::from_slots(slots)
        }
    }

    d.deserialize_map(V(PhantomData))
}

/// Reads any report by its `"type"`, from the schema in `docs/report-schema.md`: see
/// [`DeliveryReport`], [`Alert`] and [`HealthReport`] for each kind.
impl<'de> Deserialize<'de> for Report {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_slots(d)
    }
}

/// Reads a report of `"type": "delivery"`, its [`Delivery`] record included.
///
/// `mean_retry_interval_ms` is not read: [`Delivery::mean_retry_interval`] works it out from
/// `received_at`, `first_seen` and `times_seen`. [`Delivery::sent_at`] reads back as
/// `received_at` minus `lag_ms`, so [`Delivery::lag`] is `lag_ms` exactly. Times come back to
/// the microsecond, as written.
impl<'de> Deserialize<'de> for DeliveryReport {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_slots(d)
    }
}

/// Reads a report of `"type": "alert"`. Its times come back to the second, as written; without
/// an `instance` key, its [`instance`](Alert::instance) is `None`.
impl<'de> Deserialize<'de> for Alert {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_slots(d)
    }
}

/// Reads a report of `"type": "health"`, its [`ReporterStats`], [`SinkHealth`] entries and
/// [`FleetHealth`] included. Its time comes back to the second, as written; without a `fleet`
/// key, its [`fleet`](HealthReport::fleet) is `None`.
impl<'de> Deserialize<'de> for HealthReport {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_slots(d)
    }
}

keys! {
    /// The keys of a [`SinkHealth`] entry.
    enum SinkKey {
        Name = "name",
        Accepted = "accepted",
        Sent = "sent",
        Failed = "failed",
        Dropped = "dropped",
        Queued = "queued",
        Retries = "retries",
        Panics = "panics",
        ConsecutiveFailures = "consecutive_failures",
        Down = "down",
        LatencyUs = "latency_us",
    }
}

/// Reads one entry of a health report's `sinks`.
impl<'de> Deserialize<'de> for SinkHealth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;

        impl<'de> Visitor<'de> for V {
            type Value = SinkHealth;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sink's health")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SinkHealth, A::Error> {
                let (mut name, mut down, mut latency, mut consecutive) = (None, None, None, None);
                let (mut accepted, mut sent, mut failed, mut dropped) = (None, None, None, None);
                let (mut queued, mut retries, mut panics) = (None, None, None);
                while let Some(key) = map.next_key::<SinkKey>()? {
                    let counter = match key {
                        SinkKey::Name => {
                            put(&mut name, key.name(), map.next_value::<String>()?)?;
                            continue;
                        }
                        SinkKey::Down => {
                            put(&mut down, key.name(), map.next_value::<bool>()?)?;
                            continue;
                        }
                        SinkKey::LatencyUs => {
                            put(&mut latency, key.name(), map.next_value::<Option<u64>>()?)?;
                            continue;
                        }
                        SinkKey::ConsecutiveFailures => {
                            put(&mut consecutive, key.name(), map.next_value::<u32>()?)?;
                            continue;
                        }
                        SinkKey::Unknown => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                        SinkKey::Accepted => &mut accepted,
                        SinkKey::Sent => &mut sent,
                        SinkKey::Failed => &mut failed,
                        SinkKey::Dropped => &mut dropped,
                        SinkKey::Queued => &mut queued,
                        SinkKey::Retries => &mut retries,
                        SinkKey::Panics => &mut panics,
                    };
                    put(counter, key.name(), map.next_value::<u64>()?)?;
                }
                Ok(SinkHealth {
                    name: Cow::Owned(required(name, SinkKey::Name.name())?),
                    accepted: required(accepted, SinkKey::Accepted.name())?,
                    sent: required(sent, SinkKey::Sent.name())?,
                    failed: required(failed, SinkKey::Failed.name())?,
                    dropped: required(dropped, SinkKey::Dropped.name())?,
                    queued: required(queued, SinkKey::Queued.name())?,
                    retries: required(retries, SinkKey::Retries.name())?,
                    panics: required(panics, SinkKey::Panics.name())?,
                    consecutive_failures: required(
                        consecutive,
                        SinkKey::ConsecutiveFailures.name(),
                    )?,
                    down: required(down, SinkKey::Down.name())?,
                    latency: latency.flatten().map(Duration::from_micros),
                })
            }
        }

        d.deserialize_map(V)
    }
}

keys! {
    /// The keys of a health report's [`FleetHealth`].
    enum FleetKey {
        Instance = "instance",
        Leader = "leader",
        Stale = "stale",
        LastWrite = "last_write",
        FailedWrites = "failed_writes",
        LostDeliveries = "lost_deliveries",
        DroppedCounts = "dropped_counts",
        DroppedAlerts = "dropped_alerts",
        PendingDeliveries = "pending_deliveries",
    }
}

/// Reads a health report's `fleet`. `last_write` comes back to the millisecond, as written, and
/// may be `null` or absent (never written yet); unknown keys are skipped.
///
/// # Example
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use webhook_monitor::report::HealthReport;
///
/// let line = r#"{"type":"health","at":"2026-11-28T19:30:00Z","enqueued":120,"dropped_full":0,"dropped_closed":0,"sent":118,"failed":0,"batches":9,"alerts":1,"sink_panics":0,"watcher_panics":0,"queue_depth":2,"rss_bytes":null,"fleet":{"instance":"web-2","leader":false,"stale":true,"last_write":"2026-11-28T19:29:12.250Z","failed_writes":4,"lost_deliveries":17,"dropped_counts":0,"dropped_alerts":0,"pending_deliveries":31},"sinks":[]}"#;
///
/// let health: HealthReport = serde_json::from_str(line)?;
/// let fleet = health.fleet.as_ref().expect("an instance of a fleet");
/// assert_eq!(&*fleet.instance, "web-2");
/// assert!(fleet.stale && !fleet.leader);
/// let last_write = UNIX_EPOCH + Duration::from_millis(1_795_894_152_250);
/// assert_eq!(fleet.last_write, Some(last_write));
/// assert_eq!(serde_json::to_string(&health)?, line);
/// # Ok::<(), serde_json::Error>(())
/// ```
impl<'de> Deserialize<'de> for FleetHealth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;

        impl<'de> Visitor<'de> for V {
            type Value = FleetHealth;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an instance's view of its fleet")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FleetHealth, A::Error> {
                let (mut instance, mut leader, mut stale, mut last_write) =
                    (None, None, None, None);
                let (mut failed_writes, mut lost, mut dropped_counts) = (None, None, None);
                let (mut dropped_alerts, mut pending) = (None, None);
                while let Some(key) = map.next_key::<FleetKey>()? {
                    let counter = match key {
                        FleetKey::Instance => {
                            put(&mut instance, key.name(), map.next_value::<String>()?)?;
                            continue;
                        }
                        FleetKey::Leader => {
                            put(&mut leader, key.name(), map.next_value::<bool>()?)?;
                            continue;
                        }
                        FleetKey::Stale => {
                            put(&mut stale, key.name(), map.next_value::<bool>()?)?;
                            continue;
                        }
                        FleetKey::LastWrite => {
                            put(
                                &mut last_write,
                                key.name(),
                                map.next_value::<Option<Rfc3339>>()?,
                            )?;
                            continue;
                        }
                        FleetKey::Unknown => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                        FleetKey::FailedWrites => &mut failed_writes,
                        FleetKey::LostDeliveries => &mut lost,
                        FleetKey::DroppedCounts => &mut dropped_counts,
                        FleetKey::DroppedAlerts => &mut dropped_alerts,
                        FleetKey::PendingDeliveries => &mut pending,
                    };
                    put(counter, key.name(), map.next_value::<u64>()?)?;
                }
                Ok(FleetHealth {
                    instance: Arc::from(required::<String, _>(
                        instance,
                        FleetKey::Instance.name(),
                    )?),
                    leader: required(leader, FleetKey::Leader.name())?,
                    stale: required(stale, FleetKey::Stale.name())?,
                    last_write: last_write.flatten().map(|t| t.0),
                    failed_writes: required(failed_writes, FleetKey::FailedWrites.name())?,
                    lost_deliveries: required(lost, FleetKey::LostDeliveries.name())?,
                    dropped_counts: required(dropped_counts, FleetKey::DroppedCounts.name())?,
                    dropped_alerts: required(dropped_alerts, FleetKey::DroppedAlerts.name())?,
                    pending_deliveries: required(pending, FleetKey::PendingDeliveries.name())?,
                })
            }
        }

        d.deserialize_map(V)
    }
}

// ---------------------------------------------------------------------------------------------
// Payload violations: `{"check": <name>, "message": <Display>}`, the message parsed back.

keys! {
    /// The keys of a [`PayloadViolation`].
    enum ViolationKey {
        Check = "check",
        Message = "message",
    }
}

/// Reads what a report's `payload_check` holds, `{"check": <name>, "message": <message>}`, by
/// parsing the message back for its check. A message this crate does not write for that check
/// (another wording, another check's message) is an error naming the check.
impl<'de> Deserialize<'de> for PayloadViolation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;

        impl<'de> Visitor<'de> for V {
            type Value = PayloadViolation;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a payload check's failure: a map with `check` and `message`")
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<PayloadViolation, A::Error> {
                let (mut check, mut message) = (None::<String>, None::<String>);
                while let Some(key) = map.next_key::<ViolationKey>()? {
                    let slot = match key {
                        ViolationKey::Check => &mut check,
                        ViolationKey::Message => &mut message,
                        ViolationKey::Unknown => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    if slot.is_some() {
                        return Err(de::Error::duplicate_field(key.name()));
                    }
                    *slot = Some(map.next_value()?);
                }
                let check = check.ok_or_else(|| de::Error::missing_field("check"))?;
                let message = message.ok_or_else(|| de::Error::missing_field("message"))?;
                violation(&check, &message)
            }
        }

        d.deserialize_map(V)
    }
}

/// One violation of each kind, for the check names.
fn violation_kinds() -> [PayloadViolation; 5] {
    [
        PayloadViolation::TooLarge { size: 0, max: 0 },
        PayloadViolation::InvalidJson {
            line: 1,
            column: 1,
            kind: JsonErrorKind::Syntax,
        },
        PayloadViolation::Missing {
            pointer: Arc::from(""),
        },
        PayloadViolation::Null {
            pointer: Arc::from(""),
            absent: false,
        },
        PayloadViolation::TooDeep { max: 0 },
    ]
}

/// Parses `message` back into a violation of the check named `check`.
fn violation<E: de::Error>(check: &str, message: &str) -> Result<PayloadViolation, E> {
    const PARSERS: [fn(&str) -> Option<PayloadViolation>; 5] =
        [too_large, invalid_json, missing, null, too_deep];
    if let Some(v) = PARSERS
        .iter()
        .find_map(|parse| parse(message).filter(|v| v.check() == check))
    {
        return Ok(v);
    }
    let kinds = violation_kinds();
    if kinds.iter().any(|v| v.check() == check) {
        Err(E::custom(format_args!(
            "unrecognised message for payload check `{check}`: {message:?}"
        )))
    } else {
        let names = OneOf(kinds.iter().map(PayloadViolation::check));
        Err(E::custom(format_args!(
            "unknown payload check `{check}`, expected one of {names}"
        )))
    }
}

/// `body of {size} bytes is over the limit of {max}`
fn too_large(message: &str) -> Option<PayloadViolation> {
    let rest = message.strip_prefix("body of ")?;
    let (size, max) = rest.split_once(" bytes is over the limit of ")?;
    Some(PayloadViolation::TooLarge {
        size: decimal(size)?,
        max: decimal(max)?,
    })
}

/// `body is not valid JSON: {what} at line {line} column {column}`
fn invalid_json(message: &str) -> Option<PayloadViolation> {
    let rest = message.strip_prefix("body is not valid JSON: ")?;
    let (kind, rest) = JSON_ERRORS
        .iter()
        .find_map(|&(kind, what)| Some((kind, rest.strip_prefix(what)?)))?;
    let (line, column) = rest.strip_prefix(" at line ")?.split_once(" column ")?;
    Some(PayloadViolation::InvalidJson {
        line: decimal(line)?,
        column: decimal(column)?,
        kind,
    })
}

/// `required field {pointer:?} is missing`
fn missing(message: &str) -> Option<PayloadViolation> {
    let (pointer, rest) = debug_str(message.strip_prefix("required field ")?)?;
    (rest == " is missing").then(|| PayloadViolation::Missing {
        pointer: pointer.into(),
    })
}

/// `field {pointer:?} must not be null, and is missing` or `field {pointer:?} is null`
fn null(message: &str) -> Option<PayloadViolation> {
    let (pointer, rest) = debug_str(message.strip_prefix("field ")?)?;
    let absent = match rest {
        " must not be null, and is missing" => true,
        " is null" => false,
        _ => return None,
    };
    Some(PayloadViolation::Null {
        pointer: pointer.into(),
        absent,
    })
}

/// `body nests deeper than {max} levels`
fn too_deep(message: &str) -> Option<PayloadViolation> {
    let max = message
        .strip_prefix("body nests deeper than ")?
        .strip_suffix(" levels")?;
    Some(PayloadViolation::TooDeep { max: decimal(max)? })
}

/// A `usize` as `{}` writes it: digits only, no sign, no leading zero.
fn decimal(text: &str) -> Option<usize> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let canonical = digits && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

/// Reads a string as Rust's `Debug` writes one (`{:?}`), at the start of `text`: in double
/// quotes, with the escapes `\"`, `\\`, `\n`, `\r`, `\t`, `\0`, `\'` and `\u{…}` (1 to 6 hex
/// digits). Returns the string unescaped and what follows its closing quote.
fn debug_str(text: &str) -> Option<(String, &str)> {
    let inner = text.strip_prefix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, inner.get(i + 1..)?)),
            '\\' => out.push(match chars.next()?.1 {
                '"' => '"',
                '\\' => '\\',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                '0' => '\0',
                '\'' => '\'',
                'u' => {
                    if chars.next()?.1 != '{' {
                        return None;
                    }
                    let (mut code, mut digits) = (0u32, 0);
                    loop {
                        let c = chars.next()?.1;
                        if c == '}' {
                            break;
                        }
                        digits += 1;
                        if digits > 6 {
                            return None;
                        }
                        code = code << 4 | c.to_digit(16)?;
                    }
                    if digits == 0 {
                        return None;
                    }
                    char::from_u32(code)? // `None` for a surrogate or past U+10FFFF
                }
                _ => return None,
            }),
            c => out.push(c),
        }
    }
    None // no closing quote
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    /// 2026-11-28T19:30:00Z, plus `nanos`.
    fn at(nanos: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_894_200) + Duration::from_nanos(nanos)
    }

    fn field(name: &'static str, value: impl Into<FieldValue>) -> Field {
        Field {
            name: name.into(),
            value: value.into(),
        }
    }

    fn data() -> DeliveryData {
        DeliveryData {
            route: "orders".into(),
            provider: None,
            id: None,
            event_type: None,
            attempt: None,
            signature: SignatureStatus::Unchecked,
            received_at: at(123_456_789),
            body_len: 0,
            fingerprint: None,
            times_seen: None,
            first_seen: None,
            sent_at: None,
        }
    }

    /// A delivery with no optional value.
    fn bare(outcome: Outcome) -> DeliveryReport {
        DeliveryReport {
            delivery: Delivery::new(data()),
            status: None,
            outcome,
            reason: None,
            body_read: Duration::ZERO,
            handler: Duration::ZERO,
            total: Duration::ZERO,
            flags: Flags::default(),
            fields: Vec::new(),
            payload: None,
        }
    }

    /// A delivery with every optional value, times to the nanosecond.
    fn full(outcome: Outcome) -> DeliveryReport {
        let data = DeliveryData {
            provider: Some("shop".into()),
            id: Some(HeaderValue::from_static("d-7\tb")),
            event_type: Some(HeaderValue::from_static("order.created")),
            attempt: Some(4),
            signature: SignatureStatus::Verified { secret_index: 2 },
            body_len: u64::MAX,
            fingerprint: Some(Fingerprint::Sha256(std::array::from_fn(|i| i as u8 * 7))),
            times_seen: Some(3),
            first_seen: Some(at(1)),
            sent_at: Some(at(123_456_789) - Duration::from_nanos(2_500_000_001)),
            ..data()
        };
        DeliveryReport {
            delivery: Delivery::new(data),
            status: Some(StatusCode::OK),
            outcome,
            reason: Some("missing \"order_id\" \\ é \u{1F600}".into()),
            body_read: Duration::from_nanos(21_999),
            handler: Duration::from_micros(54),
            total: Duration::from_micros(u64::MAX),
            flags: Flags {
                near_timeout: true,
                ..Flags::default()
            },
            fields: vec![
                field("records", 12u64),
                field("ok", false),
                field("balance", -3i64),
            ],
            payload: Some(Box::new(PayloadViolation::TooDeep { max: 32 })),
        }
    }

    /// Serializes `report`, reads it back as a `Report`, serializes that: the same JSON. Also
    /// with `type` moved last, and as the report's own type.
    #[track_caller]
    fn round_trip(report: &Report) -> Report {
        let json = serde_json::to_string(report).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        let (tag, rest) = json[1..].split_once(',').unwrap();
        assert!(tag.starts_with("\"type\":"), "{json}");
        let type_last = format!("{{{},{tag}}}", &rest[..rest.len() - 1]);
        let late: Report = serde_json::from_str(&type_last).unwrap();
        assert_eq!(serde_json::to_string(&late).unwrap(), json);
        let own = match report {
            Report::Delivery(_) => {
                serde_json::to_string(&serde_json::from_str::<DeliveryReport>(&json).unwrap())
            }
            Report::Alert(_) => {
                serde_json::to_string(&serde_json::from_str::<Alert>(&type_last).unwrap())
            }
            Report::Health(_) => {
                serde_json::to_string(&serde_json::from_str::<HealthReport>(&json).unwrap())
            }
        };
        assert_eq!(own.unwrap(), json);
        back
    }

    #[track_caller]
    fn delivery_round_trip(report: DeliveryReport) -> DeliveryReport {
        match round_trip(&Report::Delivery(report)) {
            Report::Delivery(d) => d,
            other => panic!("not a delivery: {other:?}"),
        }
    }

    #[test]
    fn the_schema_example_reads_back_byte_for_byte() {
        // docs/report-schema.md
        let line = r#"{"type":"delivery","route":"orders","provider":"shop","delivery_id":"d-7","event_type":"order.created","attempt":null,"signature":"unchecked","secret_index":null,"status":200,"outcome":"failure","outcome_detail":"marked","reason":"missing order_id","payload_check":null,"received_at":"2026-11-28T19:30:00.123456Z","body_read_us":21,"handler_us":54,"total_us":75,"body_bytes":12,"fingerprint":"xxh3-128:5b7d2e4f0c1a9e8d7c6b5a4f3e2d1c0b","times_seen":null,"first_seen":null,"mean_retry_interval_ms":null,"lag_ms":null,"flags":[],"fields":{}}"#;
        let report: Report = serde_json::from_str(line).unwrap();
        assert_eq!(serde_json::to_string(&report).unwrap(), line);
        let d = report.as_delivery().unwrap();
        assert_eq!(d.outcome, Outcome::Failure(FailureKind::Marked));
        assert_eq!(d.delivery.received_at(), at(123_456_000));
        assert_eq!(
            d.delivery.fingerprint(),
            Some(Fingerprint::Xxh3_128(0x5b7d2e4f0c1a9e8d7c6b5a4f3e2d1c0b))
        );
        let alert = r#"{"type":"alert","kind":"failure_rate","route":"payments","severity":"critical","state":"opened","opened_at":"1970-01-05T09:12:00Z","at":"1970-01-05T09:12:00Z","figures":{"failure_rate":0.6,"failed":12,"handled":20,"window_minutes":5}}"#;
        let report: Report = serde_json::from_str(alert).unwrap();
        assert_eq!(serde_json::to_string(&report).unwrap(), alert);
    }

    #[test]
    fn every_example_in_the_schema_reads_back_byte_for_byte() {
        let schema = include_str!("../../docs/report-schema.md");
        let mut examples = 0;
        for block in schema.split("```json\n").skip(1) {
            let (line, _) = block.split_once("\n```").unwrap();
            let report: Report =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert_eq!(serde_json::to_string(&report).unwrap(), line);
            examples += 1;
        }
        assert_eq!(examples, 4);
    }

    #[test]
    fn every_outcome_with_and_without_optional_values() {
        let mut seen = 0;
        for outcome in outcomes() {
            for report in [bare(outcome), full(outcome)] {
                let (status, total) = (report.status, report.total);
                let back = delivery_round_trip(report);
                assert_eq!(back.outcome, outcome);
                assert_eq!(back.status, status);
                assert_eq!(back.total, total);
            }
            seen += 1;
        }
        assert_eq!(seen, 6 + 6 + 10);
    }

    #[test]
    fn the_delivery_record_reads_back_to_the_microsecond() {
        let original = full(Outcome::Success);
        let back = delivery_round_trip(original.clone());
        let (a, b) = (&original.delivery, &back.delivery);
        assert_eq!(b.route(), "orders");
        assert_eq!(b.provider(), a.provider());
        assert_eq!(b.id(), Some("d-7\tb"));
        assert_eq!(b.event_type(), a.event_type());
        assert_eq!(b.attempt(), Some(4));
        assert_eq!(b.signature(), SignatureStatus::Verified { secret_index: 2 });
        assert_eq!(b.body_len(), u64::MAX);
        assert_eq!(b.fingerprint(), a.fingerprint());
        assert_eq!(b.times_seen(), Some(3));
        assert_eq!(b.received_at(), at(123_456_000));
        assert_eq!(b.first_seen(), Some(at(0)));
        // Sent 2.500000001 s before: the lag is written, and read back, in whole milliseconds.
        assert_eq!(b.lag(), Some(Duration::from_millis(2500)));
        assert_eq!(
            b.sent_at(),
            Some(at(123_456_000) - Duration::from_millis(2500))
        );
        assert_eq!(
            b.mean_retry_interval(),
            Some(Duration::from_nanos(61_728_000))
        );
        assert_eq!(back.reason, original.reason);
        assert_eq!(back.body_read, Duration::from_micros(21));
        assert_eq!(back.handler, original.handler);
        assert_eq!(back.flags, original.flags);
        assert_eq!(back.payload, original.payload);
        assert_eq!(back.fields, original.fields);
    }

    #[test]
    fn the_mean_retry_interval_agrees_with_the_times_as_written() {
        // 1.9999999 s between the attempts, 2.000000 s between the times as written: the
        // figure is the one a reader works out from the written times.
        let mut report = bare(Outcome::Success);
        let d = report.delivery.make_mut();
        d.first_seen = Some(at(500));
        d.received_at = at(2_000_000_400);
        d.times_seen = Some(2);
        let json = serde_json::to_value(Report::Delivery(report.clone())).unwrap();
        assert_eq!(json["mean_retry_interval_ms"], 2000);
        delivery_round_trip(report);
    }

    #[test]
    fn fingerprints_read_back_from_their_display_form() {
        use crate::FingerprintAlgorithm as A;

        let fingerprints = [
            Fingerprint::of(A::Xxh3_128, b"{}"),
            Fingerprint::of(A::Sha256, b"{}"),
            Fingerprint::Xxh3_128(0),
            Fingerprint::Xxh3_128(u128::MAX),
            Fingerprint::Sha256([0; 32]),
            Fingerprint::Sha256([0xff; 32]),
        ];
        for fp in fingerprints {
            let text = serde_json::to_string(&fp.to_string()).unwrap();
            assert_eq!(
                serde_json::from_str::<Fingerprint>(&text).unwrap(),
                fp,
                "{text}"
            );
        }
    }

    #[test]
    fn a_provider_clock_ahead_reads_back_as_no_lag() {
        let mut report = bare(Outcome::Success);
        report.delivery.make_mut().sent_at = Some(at(999_999_999_999));
        let back = delivery_round_trip(report);
        assert_eq!(back.delivery.lag(), Some(Duration::ZERO));
        assert_eq!(back.delivery.sent_at(), Some(at(123_456_000)));
    }

    /// Flags with exactly the listed ones set. Lists every field: a new flag fails to compile
    /// here until the test covers it.
    fn flags(bits: u8) -> Flags {
        let on = |i: u8| bits & 1 << i != 0;
        Flags {
            near_timeout: on(0),
            over_budget: on(1),
            dedupe_unavailable: on(2),
            many_attempts: on(3),
            rapid_retries: on(4),
            claim_expired: on(5),
            payload_flagged: on(6),
        }
    }

    #[test]
    fn every_combination_of_flags() {
        for bits in 0..1 << 7 {
            let mut report = bare(Outcome::Success);
            report.flags = flags(bits);
            assert_eq!(delivery_round_trip(report).flags, flags(bits), "{bits:#b}");
        }
    }

    #[test]
    fn unknown_flags_are_skipped() {
        let json = r#"["rapid_retries","from_the_future","near_timeout"]"#;
        let read: Flags = serde_json::from_str(json).unwrap();
        assert_eq!(read, flags(0b1_0001));
    }

    fn violations() -> Vec<PayloadViolation> {
        let mut all = vec![
            PayloadViolation::TooLarge { size: 21, max: 16 },
            PayloadViolation::TooLarge {
                size: usize::MAX,
                max: 0,
            },
            PayloadViolation::TooDeep { max: 0 },
            PayloadViolation::TooDeep { max: 126 },
        ];
        for kind in [
            JsonErrorKind::Syntax,
            JsonErrorKind::Eof,
            JsonErrorKind::Utf8,
        ] {
            all.push(PayloadViolation::InvalidJson {
                line: 1,
                column: 10_000,
                kind,
            });
        }
        let pointers = [
            "",
            "/data/object/id",
            "/a~1b/\"quoted\"/back\\slash/it's",
            "/é/日本/\u{1F600}/e\u{301}/\u{301}",
            "/tab\t/nl\n/cr\r/nul\0/esc\u{1b}/del\u{7f}/zw\u{200b}/bom\u{feff}/\u{e0001}/\u{10ffff}",
            "\" is null",
            "/ must not be null, and is missing\"",
        ];
        for pointer in pointers {
            all.push(PayloadViolation::Missing {
                pointer: pointer.into(),
            });
            for absent in [false, true] {
                all.push(PayloadViolation::Null {
                    pointer: pointer.into(),
                    absent,
                });
            }
        }
        all
    }

    #[test]
    fn every_payload_violation() {
        for violation in violations() {
            // flagged…
            let mut report = bare(Outcome::Success);
            report.flags.payload_flagged = true;
            report.payload = Some(Box::new(violation.clone()));
            let back = delivery_round_trip(report);
            assert_eq!(back.payload.as_deref(), Some(&violation));
            // …or rejected
            let mut report = bare(Outcome::Rejected(RejectReason::PayloadCheck));
            report.status = Some(StatusCode::UNPROCESSABLE_ENTITY);
            report.payload = Some(Box::new(violation.clone()));
            let back = delivery_round_trip(report);
            assert_eq!(back.payload.as_deref(), Some(&violation));
            // and on its own
            let json = serde_json::to_string(&violation).unwrap();
            let alone: PayloadViolation = serde_json::from_str(&json).unwrap();
            assert_eq!(alone, violation);
        }
    }

    #[test]
    fn every_char_reads_back_from_its_debug_form() {
        let chars: Vec<char> = (0..=u32::from(char::MAX))
            .filter_map(char::from_u32)
            .collect();
        for chunk in chars.chunks(4096) {
            let s: String = chunk.iter().collect();
            let written = format!("{s:?} rest");
            assert_eq!(debug_str(&written), Some((s, " rest")));
        }
        for bad in [
            "no quote",
            "\"unterminated",
            "\"bad escape \\q\"",
            "\"\\u{}\"",
            "\"\\u{d800}\"",
            "\"\\u{110000}\"",
            "\"\\u{1234567}\"",
            "\"\\u1234\"",
            "\"\\u{12\"",
            "\"trailing backslash\\",
        ] {
            assert_eq!(debug_str(bad), None, "{bad}");
        }
    }

    #[test]
    fn fields_of_every_kind() {
        let mut report = bare(Outcome::Success);
        report.fields = vec![
            field("bool", true),
            field("i64", i64::MIN),
            field("u64", u64::MAX),
            field("f64", -0.5),
            field("f64_whole", 5.0),
            field("f64_tiny", 5e-324),
            field("f64_huge", 1.7976931348623157e308),
            field("f64_third", 1.0 / 3.0),
            field("nan", f64::NAN),
            field("inf", f64::NEG_INFINITY),
            field("str", "quote \" backslash \\ tab \t é \u{1F600}"),
            field("", ""),
            field("twice", 1u64),
            field("twice", 2u64),
        ];
        let back = delivery_round_trip(report.clone());
        let values: Vec<_> = back.fields.iter().map(|f| &f.value).collect();
        assert_eq!(values[0], &FieldValue::Bool(true));
        assert_eq!(values[1], &FieldValue::I64(i64::MIN));
        assert_eq!(values[2], &FieldValue::U64(u64::MAX));
        assert_eq!(values[3], &FieldValue::F64(-0.5));
        assert_eq!(values[4], &FieldValue::F64(5.0));
        assert_eq!(values[7], &FieldValue::F64(1.0 / 3.0));
        assert!(matches!(values[8], FieldValue::F64(v) if v.is_nan()));
        assert!(matches!(values[9], FieldValue::F64(v) if v.is_nan()));
        assert_eq!(back.fields[10], report.fields[10]);
        assert_eq!(back.fields[12..], report.fields[12..]);
        // An `I64` that is not negative is written as a plain integer, and reads back as a `U64`.
        let mut report = bare(Outcome::Success);
        report.fields = vec![field("n", 7i64)];
        assert_eq!(
            delivery_round_trip(report).fields,
            [field("n", FieldValue::U64(7))]
        );
    }

    #[test]
    fn floats_read_back_to_the_bit() {
        // serde_json's default float parser is off by one unit in the last place for many of
        // these; the crate's dev-dependencies turn on its `float_roundtrip` feature.
        let mut report = bare(Outcome::Success);
        report.fields = (1..2000u32)
            .map(|i| field("x", f64::from(i) / 70.0))
            .chain([field("x", 4.876_124_613_219_678_5e191)])
            .collect();
        let back = delivery_round_trip(report.clone());
        assert_eq!(back.fields, report.fields);
    }

    /// The figures each watcher writes (`src/watch/`), by kind.
    fn figures(kind: AlertKind) -> Vec<Field> {
        let latency = |last: Field| {
            vec![
                field("p50_ms", 12.3),
                field("p95_ms", 140.0),
                field("p99_ms", 2999.9),
                field("samples", 20u64),
                last,
            ]
        };
        match kind {
            AlertKind::Spike | AlertKind::Drop => {
                vec![field("per_minute", 0u32), field("trailing_mean", 6.1)]
            }
            AlertKind::Silence => vec![
                field("silent_for_s", 1801u64),
                field("expected_interval_s", 1800u64),
            ],
            AlertKind::AllRejected => vec![
                field("deliveries", 5u32),
                field("rejected", 5u32),
                field("window_minutes", 5u64),
            ],
            AlertKind::RetryStorm => vec![
                field("retried", 10u32),
                field("deliveries", 11u32),
                field("window_minutes", 10u64),
            ],
            AlertKind::FailureRate => vec![
                field("failure_rate", 12.0 / 17.0),
                field("failed", 12u32),
                field("handled", 17u32),
                field("window_minutes", 5u64),
            ],
            AlertKind::ConsecutiveFailures => vec![field("consecutive_failures", 5u32)],
            AlertKind::NearTimeout => latency(field("budget_ms", 3000.0)),
            AlertKind::LatencyDegraded => latency(field("baseline_p95_ms", 61.7)),
            AlertKind::MemoryGrowth => vec![
                field("rss_bytes", 431_222_784u64),
                field("baseline_bytes", 162_787_328u64),
                field("growth_bytes", 268_435_456u64),
                field("window_minutes", 30u64),
            ],
            AlertKind::InstanceSilent => vec![
                field("deliveries", 0u32),
                field("others_per_minute", 12.5),
                field("instances", 3u32),
                field("window_minutes", 5u64),
            ],
            AlertKind::InstanceFailureRate => vec![
                field("failure_rate", 0.8),
                field("failed", 16u32),
                field("handled", 20u32),
                field("others_failure_rate", 0.05),
                field("window_minutes", 5u64),
            ],
        }
    }

    #[test]
    fn every_alert_kind_opened_and_resolved_with_and_without_an_instance() {
        for kind in AlertKind::ALL {
            for (state, instance) in ALERT_STATES
                .into_iter()
                .flat_map(|s| [(s, None), (s, Some("web-2 \"eu\" é"))])
            {
                let alert = Alert {
                    kind,
                    route: "payments".into(),
                    severity: kind.severity(),
                    state,
                    opened_at: at(999_999_999),
                    at: at(60_999_999_999),
                    figures: figures(kind),
                    instance: instance.map(Arc::from),
                };
                let json = serde_json::to_string(&alert).unwrap();
                assert_eq!(
                    json.contains(r#""instance":"#),
                    instance.is_some(),
                    "{json}"
                );
                let back = match round_trip(&Report::Alert(alert.clone())) {
                    Report::Alert(a) => a,
                    other => panic!("not an alert: {other:?}"),
                };
                assert_eq!(back.kind, kind);
                assert_eq!(back.state, state);
                assert_eq!(back.severity, kind.severity());
                assert_eq!(&*back.route, "payments");
                assert_eq!(back.instance.as_deref(), instance);
                assert_eq!(back.opened_at, at(0));
                assert_eq!(back.at, at(60_000_000_000));
                assert_eq!(back.figures, alert.figures);
            }
        }
        // An alert from before fleets has no `instance`; a `null` one reads as none too.
        let json = r#"{"type":"alert","kind":"memory_growth","route":"(process)","severity":"warning","state":"opened","opened_at":"1970-01-01T00:00:00Z","at":"1970-01-01T00:00:00Z","figures":{}}"#;
        let alert: Alert = serde_json::from_str(json).unwrap();
        assert_eq!(alert.instance, None);
        assert_eq!(serde_json::to_string(&alert).unwrap(), json);
        let null = json.replace(r#""figures""#, r#""instance":null,"figures""#);
        let alert: Alert = serde_json::from_str(&null).unwrap();
        assert_eq!(alert.instance, None);
        assert_eq!(serde_json::to_string(&alert).unwrap(), json);
        // The severity is read as written, not worked out from the kind.
        let json = r#"{"type":"alert","kind":"spike","route":"r","severity":"critical","state":"resolved","opened_at":"1970-01-01T00:00:00Z","at":"1970-01-01T00:00:01Z","figures":{}}"#;
        let alert: Alert = serde_json::from_str(json).unwrap();
        assert_eq!(alert.severity, Severity::Critical);
        assert_eq!(serde_json::to_string(&alert).unwrap(), json);
    }

    fn health(sinks: Vec<SinkHealth>) -> HealthReport {
        HealthReport {
            rss_bytes: Some(u64::MAX),
            fleet: None,
            at: at(5),
            reporter: ReporterStats {
                enqueued: 1,
                dropped_full: 2,
                dropped_closed: 3,
                sent: 4,
                failed: 5,
                batches: 6,
                alerts: 7,
                sink_panics: 8,
                watcher_panics: u64::MAX,
                queue_depth: 10,
            },
            sinks,
        }
    }

    #[test]
    fn health_reports_with_and_without_sinks() {
        let down = SinkHealth {
            name: "hooks.example.com".into(),
            accepted: 11,
            sent: 12,
            failed: 13,
            dropped: 14,
            queued: 15,
            retries: 16,
            panics: 17,
            consecutive_failures: u32::MAX,
            down: true,
            latency: Some(Duration::from_micros(1234)),
        };
        for (sinks, rss_bytes) in [
            (vec![], Some(u64::MAX)),
            (vec![down, SinkHealth::new("slack")], None),
        ] {
            let report = HealthReport {
                rss_bytes,
                ..health(sinks)
            };
            let back = match round_trip(&Report::Health(Box::new(report.clone()))) {
                Report::Health(h) => *h,
                other => panic!("not a health report: {other:?}"),
            };
            assert_eq!(
                back,
                HealthReport {
                    at: at(0),
                    ..report
                }
            );
        }
        // Written as a number or null; a report from before `rss_bytes` reads as `None`.
        let json = serde_json::to_string(&health(vec![])).unwrap();
        assert!(
            json.contains(r#""queue_depth":10,"rss_bytes":18446744073709551615,"sinks":[]"#),
            "{json}"
        );
        let older = json.replace(r#""rss_bytes":18446744073709551615,"#, "");
        let back: HealthReport = serde_json::from_str(&older).unwrap();
        assert_eq!(back.rss_bytes, None);
        assert!(serde_json::to_string(&back)
            .unwrap()
            .contains(r#""rss_bytes":null"#));
    }

    /// A fleet view with every counter distinct.
    fn fleet(last_write: Option<SystemTime>) -> FleetHealth {
        FleetHealth {
            instance: "web-2".into(),
            leader: true,
            stale: false,
            last_write,
            failed_writes: 1,
            lost_deliveries: 2,
            dropped_counts: 3,
            dropped_alerts: 4,
            pending_deliveries: u64::MAX,
        }
    }

    #[test]
    fn health_reports_with_and_without_a_fleet() {
        let stale = FleetHealth {
            leader: false,
            stale: true,
            instance: "web-3 \"eu\" é".into(),
            ..fleet(None)
        };
        for (written, read) in [
            (None, None),
            // The last write is written, and read back, to the millisecond.
            (
                Some(fleet(Some(at(123_999_999)))),
                Some(fleet(Some(at(123_000_000)))),
            ),
            (Some(stale.clone()), Some(stale)),
        ] {
            for sinks in [vec![], vec![SinkHealth::new("slack")]] {
                let report = HealthReport {
                    fleet: written.clone(),
                    ..health(sinks)
                };
                let back = match round_trip(&Report::Health(Box::new(report.clone()))) {
                    Report::Health(h) => *h,
                    other => panic!("not a health report: {other:?}"),
                };
                assert_eq!(
                    back,
                    HealthReport {
                        at: at(0),
                        fleet: read.clone(),
                        ..report
                    }
                );
            }
        }
        // Written between `rss_bytes` and `sinks`, only when set.
        let report = HealthReport {
            fleet: Some(fleet(Some(at(123_999_999)))),
            ..health(vec![])
        };
        let json = serde_json::to_string(&report).unwrap();
        let written = r#""rss_bytes":18446744073709551615,"fleet":{"instance":"web-2","leader":true,"stale":false,"last_write":"2026-11-28T19:30:00.123Z","failed_writes":1,"lost_deliveries":2,"dropped_counts":3,"dropped_alerts":4,"pending_deliveries":18446744073709551615},"sinks":[]}"#;
        assert!(json.ends_with(written), "{json}");
        let without = serde_json::to_string(&health(vec![])).unwrap();
        assert!(!without.contains("fleet"), "{without}");
        // A report from before fleets, or with a `null` fleet, reads as none.
        let back: HealthReport = serde_json::from_str(&without).unwrap();
        assert_eq!(back.fleet, None);
        let null = without.replace(r#""sinks""#, r#""fleet":null,"sinks""#);
        let back: HealthReport = serde_json::from_str(&null).unwrap();
        assert_eq!(back.fleet, None);
        assert_eq!(serde_json::to_string(&back).unwrap(), without);
        // In the fleet, unknown keys are skipped and `last_write` may be absent or null.
        let newer = json.replace(
            r#""last_write":"2026-11-28T19:30:00.123Z","#,
            r#""lease_holder":{"id":["web-1"]},"#,
        );
        let back: HealthReport = serde_json::from_str(&newer).unwrap();
        assert_eq!(back.fleet, Some(fleet(None)));
        let null = json.replace("\"2026-11-28T19:30:00.123Z\"", "null");
        let back: HealthReport = serde_json::from_str(&null).unwrap();
        assert_eq!(back.fleet, Some(fleet(None)));
        assert!(serde_json::to_string(&back)
            .unwrap()
            .contains(r#""last_write":null"#));
    }

    #[test]
    fn unknown_keys_are_skipped_and_null_keys_may_be_absent() {
        let report = Report::Delivery(full(Outcome::Failure(FailureKind::ServerError)));
        let json = serde_json::to_string(&report).unwrap();
        let rest = json.strip_prefix(r#"{"type":"delivery","#).unwrap();
        let rest = rest.strip_suffix('}').unwrap();
        // Keys of another report type, after `type`, are skipped unread; so are unknown keys,
        // and `mean_retry_interval_ms`, derived.
        let text = format!(
            r#"{{"type":"delivery","zzz":[{{}}],"figures":[1,2],"sinks":"not a list","instance":7,"fleet":[],{rest},"new_key":{{"nested":[true,null]}},"mean_retry_interval_ms":"derived: not read"}}"#
        );
        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);

        let mut value = serde_json::to_value(Report::Delivery(bare(Outcome::Success))).unwrap();
        for key in [
            "provider",
            "delivery_id",
            "event_type",
            "attempt",
            "secret_index",
            "status",
            "outcome_detail",
            "reason",
            "payload_check",
            "fingerprint",
            "times_seen",
            "first_seen",
            "mean_retry_interval_ms",
            "lag_ms",
        ] {
            value.as_object_mut().unwrap().remove(key);
        }
        let back: Report = serde_json::from_value(value).unwrap();
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            serde_json::to_string(&Report::Delivery(bare(Outcome::Success))).unwrap()
        );
    }

    /// `json` with `key` replaced by `value` (`None`: removed).
    fn edit(json: &serde_json::Value, key: &str, value: Option<serde_json::Value>) -> String {
        let mut json = json.clone();
        let map = json.as_object_mut().unwrap();
        match value {
            Some(v) => map.insert(key.into(), v),
            None => map.remove(key),
        };
        serde_json::to_string(&json).unwrap()
    }

    #[track_caller]
    fn error(text: &str) -> String {
        match serde_json::from_str::<Report>(text) {
            Ok(report) => panic!("read {report:?} from {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn malformed_reports_are_errors() {
        use serde_json::json;

        let delivery = serde_json::to_value(Report::Delivery(full(Outcome::Success))).unwrap();
        let in_fleet = serde_json::to_value(Report::Health(Box::new(HealthReport {
            fleet: Some(fleet(Some(at(0)))),
            ..health(vec![])
        })))
        .unwrap();
        let fleet_with = |key: &str, value: serde_json::Value| {
            let mut fleet = in_fleet["fleet"].clone();
            fleet[key] = value;
            fleet
        };
        let fleet_without = |key: &str| {
            let mut fleet = in_fleet["fleet"].clone();
            fleet.as_object_mut().unwrap().remove(key);
            fleet
        };
        let cases: Vec<(String, &str)> = vec![
            (edit(&delivery, "type", None), "missing field `type`"),
            (
                edit(&delivery, "type", Some(json!("deliveries"))),
                "unknown report type `deliveries`",
            ),
            (
                edit(&delivery, "type", Some(json!(1))),
                "invalid type: integer `1`",
            ),
            (
                edit(&delivery, "outcome", Some(json!("exploded"))),
                "unknown outcome `exploded`",
            ),
            (edit(&delivery, "outcome", None), "missing field `outcome`"),
            (
                edit(&delivery, "outcome", Some(json!("failure"))),
                "outcome `failure` needs an outcome_detail",
            ),
            (
                edit(&delivery, "outcome_detail", Some(json!("marked"))),
                "outcome `success` has no outcome_detail",
            ),
            (
                edit(
                    &edit_value(&delivery, "outcome", json!("rejected")),
                    "outcome_detail",
                    Some(json!("marked")),
                ),
                "unknown outcome_detail `marked` for outcome `rejected`",
            ),
            (
                edit(&delivery, "fingerprint", Some(json!("md5:00"))),
                "invalid value: string \"md5:00\"",
            ),
            (
                edit(&delivery, "fingerprint", Some(json!("sha256:00"))),
                "invalid value",
            ),
            (
                // Uppercase hex would not write back the same.
                edit(
                    &delivery,
                    "fingerprint",
                    Some(json!("xxh3-128:5B7D2E4F0C1A9E8D7C6B5A4F3E2D1C0B")),
                ),
                "invalid value",
            ),
            (
                edit(
                    &delivery,
                    "fingerprint",
                    Some(json!("xxh3-128:5b7d2e4f0c1a9e8d7c6b5a4f3e2d1c0")),
                ),
                "invalid value",
            ),
            (
                edit(
                    &delivery,
                    "fingerprint",
                    Some(json!(format!("xxh3-128:{}", "A".repeat(32)))),
                ),
                "invalid value",
            ),
            (
                edit(
                    &delivery,
                    "fingerprint",
                    Some(json!(format!("xxh3-128:+{}", "0".repeat(31)))),
                ),
                "invalid value",
            ),
            (
                edit(
                    &delivery,
                    "fingerprint",
                    Some(json!(format!("xxh3-128:{}", "0".repeat(33)))),
                ),
                "invalid value",
            ),
            (
                edit(
                    &delivery,
                    "fingerprint",
                    Some(json!(format!("sha256:{}é", "0".repeat(63)))),
                ),
                "invalid value",
            ),
            (
                edit(&delivery, "signature", Some(json!("forged"))),
                "unknown signature `forged`",
            ),
            (
                edit(&delivery, "secret_index", None),
                "needs its secret_index",
            ),
            (
                edit(
                    &edit_value(&delivery, "signature", json!("failed")),
                    "secret_index",
                    Some(json!(0)),
                ),
                "secret_index is for a `verified` signature only",
            ),
            (
                edit(&delivery, "received_at", None),
                "missing field `received_at`",
            ),
            (
                edit(&delivery, "received_at", Some(json!("yesterday"))),
                "invalid time",
            ),
            (
                edit(&delivery, "first_seen", Some(json!("1969-12-31T23:59:59Z"))),
                "invalid time",
            ),
            (edit(&delivery, "route", None), "missing field `route`"),
            (
                edit(&delivery, "status", Some(json!(1000))),
                "expected an HTTP status",
            ),
            (
                edit(&delivery, "status", Some(json!(70000))),
                "invalid value",
            ),
            (
                edit(&delivery, "body_read_us", Some(json!(-1))),
                "invalid value",
            ),
            (
                edit(&delivery, "delivery_id", Some(json!("é"))),
                "a header value of visible ASCII",
            ),
            (
                edit(&delivery, "flags", Some(json!("near_timeout"))),
                "a list of flag names",
            ),
            (edit(&delivery, "flags", None), "missing field `flags`"),
            (
                edit(&delivery, "fields", Some(json!({"a": [1]}))),
                "a boolean, a number, a string or null",
            ),
            (
                edit(
                    &delivery,
                    "payload_check",
                    Some(json!({"check": "required"})),
                ),
                "missing field `message`",
            ),
            (
                edit(
                    &delivery,
                    "payload_check",
                    Some(json!({"check": "json", "message": "body is fine"})),
                ),
                "unrecognised message for payload check `json`",
            ),
            (
                edit(
                    &delivery,
                    "payload_check",
                    Some(json!({"check": "required", "message": "field \"/a\" is null"})),
                ),
                "unrecognised message for payload check `required`",
            ),
            (
                edit(
                    &delivery,
                    "payload_check",
                    Some(
                        json!({"check": "max_bytes", "message": "body of 012 bytes is over the limit of 1"}),
                    ),
                ),
                "unrecognised message for payload check `max_bytes`",
            ),
            (
                edit(
                    &delivery,
                    "payload_check",
                    Some(
                        json!({"check": "required", "message": "required field \"/a\\q\" is missing"}),
                    ),
                ),
                "unrecognised message for payload check `required`",
            ),
            (
                edit(
                    &delivery,
                    "payload_check",
                    Some(json!({"check": "schema", "message": "x"})),
                ),
                "unknown payload check `schema`",
            ),
            (
                r#"{"type":"delivery","type":"delivery"}"#.to_owned(),
                "duplicate field `type`",
            ),
            (
                r#"{"type":"alert","kind":"spike","kind":"drop"}"#.to_owned(),
                "duplicate field `kind`",
            ),
            (
                r#"{"type":"alert","kind":"tsunami"}"#.to_owned(),
                "unknown alert kind `tsunami`",
            ),
            (
                r#"{"type":"alert","state":"closed"}"#.to_owned(),
                "unknown alert state `closed`, expected one of `opened`, `resolved`",
            ),
            (
                r#"{"type":"alert","severity":"info"}"#.to_owned(),
                "unknown severity `info`, expected one of `warning`, `critical`",
            ),
            (
                r#"{"type":"health","at":"1970-01-01T00:00:00Z"}"#.to_owned(),
                "missing field `enqueued`",
            ),
            (
                serde_json::to_string(&Report::Health(Box::new(health(vec![SinkHealth::new(
                    "s",
                )]))))
                .unwrap()
                .replace("\"down\":false,", ""),
                "missing field `down`",
            ),
            (
                r#"{"type":"alert","instance":7}"#.to_owned(),
                "invalid type: integer `7`, expected a string",
            ),
            (
                r#"{"type":"alert","instance":"a","instance":"b"}"#.to_owned(),
                "duplicate field `instance`",
            ),
            (
                edit(&in_fleet, "fleet", Some(json!([]))),
                "expected an instance's view of its fleet",
            ),
            (
                edit(&in_fleet, "fleet", Some(json!({"instance": "web-2"}))),
                "missing field `leader`",
            ),
            (
                edit(
                    &in_fleet,
                    "fleet",
                    Some(fleet_without("pending_deliveries")),
                ),
                "missing field `pending_deliveries`",
            ),
            (
                edit(
                    &in_fleet,
                    "fleet",
                    Some(fleet_with("last_write", json!("noon"))),
                ),
                "invalid time",
            ),
            (
                edit(
                    &in_fleet,
                    "fleet",
                    Some(fleet_with("failed_writes", json!(-1))),
                ),
                "invalid value",
            ),
            (
                edit(&in_fleet, "fleet", Some(fleet_with("stale", json!("yes")))),
                "invalid type: string \"yes\", expected a boolean",
            ),
            (
                serde_json::to_string(&in_fleet)
                    .unwrap()
                    .replace(r#""stale":false"#, r#""stale":false,"stale":true"#),
                "duplicate field `stale`",
            ),
            ("[]".to_owned(), "invalid type: sequence, expected a report"),
            ("\"delivery\"".to_owned(), "invalid type: string"),
            ("{\"type\":\"delivery\"".to_owned(), "EOF"),
        ];
        for (text, want) in cases {
            let got = error(&text);
            assert!(got.contains(want), "{text}\n  gave: {got}\n  want: {want}");
        }
        // The type must be the one asked for.
        let text = serde_json::to_string(&Report::Health(Box::new(health(vec![])))).unwrap();
        let err = serde_json::from_str::<DeliveryReport>(&text).unwrap_err();
        assert!(err.to_string().contains("expected delivery"), "{err}");
    }

    fn edit_value(
        json: &serde_json::Value,
        key: &str,
        value: serde_json::Value,
    ) -> serde_json::Value {
        serde_json::from_str(&edit(json, key, Some(value))).unwrap()
    }

    #[test]
    fn mangled_reports_never_panic() {
        let mut report = full(Outcome::Rejected(RejectReason::PayloadCheck));
        report.payload = Some(Box::new(PayloadViolation::Null {
            pointer: "/a\"b\\c/é\u{301}".into(),
            absent: true,
        }));
        let reports = [
            Report::Delivery(report),
            Report::Alert(Alert {
                kind: AlertKind::NearTimeout,
                route: "r".into(),
                severity: Severity::Warning,
                state: AlertState::Opened,
                opened_at: at(0),
                at: at(0),
                figures: figures(AlertKind::NearTimeout),
                instance: Some("web-2".into()),
            }),
            Report::Health(Box::new(HealthReport {
                fleet: Some(fleet(Some(at(123_999_999)))),
                ..health(vec![SinkHealth::new("s")])
            })),
        ];
        let mut parsed = 0;
        for report in &reports {
            let json = serde_json::to_string(report).unwrap();
            for i in 0..json.len() {
                for with in ["", "\"", "\\", "0", "9", "x", "}", "-", "null", "\\u{d800}"] {
                    let (Some(before), Some(after)) = (json.get(..i), json.get(i + 1..)) else {
                        continue; // not a char boundary
                    };
                    let mangled = format!("{before}{with}{after}");
                    parsed += usize::from(serde_json::from_str::<Report>(&mangled).is_ok());
                }
            }
        }
        assert!(parsed > 0, "some mangled reports are still reports");
    }

    /// Matches each enum exhaustively: a new variant fails to compile here until its table
    /// above lists it.
    #[test]
    fn the_tables_list_every_variant() {
        for o in outcomes() {
            match o {
                Outcome::Success
                | Outcome::Late
                | Outcome::Failure(_)
                | Outcome::Rejected(_)
                | Outcome::Duplicate
                | Outcome::InFlight
                | Outcome::Panicked
                | Outcome::Cancelled => {}
            }
        }
        let failure = |k: FailureKind| match k {
            FailureKind::Redirect
            | FailureKind::ClientError
            | FailureKind::ServerError
            | FailureKind::Marked
            | FailureKind::ServiceError
            | FailureKind::NotAccepted => FAILURE_KINDS.contains(&k),
        };
        assert!(FAILURE_KINDS.into_iter().all(failure));
        let reject = |r: RejectReason| match r {
            RejectReason::TooLarge
            | RejectReason::BodyRead
            | RejectReason::BodyTimeout
            | RejectReason::MissingSignature
            | RejectReason::MalformedSignature
            | RejectReason::BadSignature
            | RejectReason::StaleTimestamp
            | RejectReason::FutureTimestamp
            | RejectReason::DedupeUnavailable
            | RejectReason::PayloadCheck => REJECT_REASONS.contains(&r),
        };
        assert!(REJECT_REASONS.into_iter().all(reject));
        let plain = |o: Outcome| match o {
            Outcome::Success
            | Outcome::Late
            | Outcome::Duplicate
            | Outcome::InFlight
            | Outcome::Panicked
            | Outcome::Cancelled => PLAIN_OUTCOMES.contains(&o),
            Outcome::Failure(_) | Outcome::Rejected(_) => false,
        };
        assert!(PLAIN_OUTCOMES.into_iter().all(plain));
        for s in SIGNATURES {
            match s {
                SignatureStatus::Unchecked
                | SignatureStatus::Verified { .. }
                | SignatureStatus::Failed => {}
            }
        }
        for s in SEVERITIES {
            match s {
                Severity::Warning | Severity::Critical => {}
            }
        }
        for s in ALERT_STATES {
            match s {
                AlertState::Opened | AlertState::Resolved => {}
            }
        }
        for (kind, _) in JSON_ERRORS {
            match kind {
                JsonErrorKind::Syntax | JsonErrorKind::Eof | JsonErrorKind::Utf8 => {}
            }
        }
        for v in violation_kinds() {
            match v {
                PayloadViolation::TooLarge { .. }
                | PayloadViolation::InvalidJson { .. }
                | PayloadViolation::Missing { .. }
                | PayloadViolation::Null { .. }
                | PayloadViolation::TooDeep { .. } => {}
            }
        }
        // Each listed once, by a distinct name.
        let names: Vec<_> = outcomes().map(|o| (o.as_str(), o.detail())).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
    }
}
