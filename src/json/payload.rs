//! Payload checks: cheap, opt-in checks of a delivery's body, per route.
//!
//! [`PayloadChecks`] holds [`Check`]s, each added to [`reject`](PayloadChecks::reject) or only to
//! [`flag`](PayloadChecks::flag) a body that fails it. Give them to a route with
//! [`Policy::payload_checks`](crate::Policy::payload_checks): the layer runs them after the
//! signature is verified and before dedupe. A rejecting check answers `422 Unprocessable Entity`
//! without calling the handler; a flagging one lets the delivery through and flags its report
//! `payload_flagged`. Either way the report's `payload` names the failed check
//! ([`PayloadViolation`]).
//!
//! # The checks
//!
//! - [`Check::max_bytes`]: a body size limit. Unlike [`Policy::max_body_bytes`], which stops
//!   reading at its limit and answers `413`, this check sees the whole body: use it to flag large
//!   bodies, or to reject them with a `422`.
//! - [`Check::json`]: the body is one valid JSON value, in UTF-8.
//! - [`Check::require`]: a field, by [JSON pointer](https://www.rfc-editor.org/rfc/rfc6901), is
//!   present (it may be `null`).
//! - [`Check::not_null`]: a field is present and not `null`.
//! - [`Check::max_depth`]: arrays and objects nest at most so deep. With a rejecting depth check
//!   the parse stops at the first level too deep, so it also guards against deeply nested bodies.
//!
//! The last three read the body as JSON and so imply [`Check::json`]: a body that is not JSON is
//! rejected if any check that reads JSON rejects, and only flagged if all of them flag.
//!
//! # Which violation is reported
//!
//! One per delivery: the first rejecting violation if there is one (a reject is never hidden
//! behind a flag), else the first flagged one. Checks are looked at in this order: size, JSON
//! validity, depth, then the field checks in the order they were added.
//!
//! # Cost
//!
//! Size checks alone never parse the body. The others parse it once, without building a
//! document: the body's UTF-8 is validated, values on no pointer's path are skipped by
//! serde_json's skipper (which does not recurse), and only a depth check makes the parse visit
//! every value. The checks allocate nothing of their own (serde_json's parser keeps a scratch
//! buffer, for escaped strings and for the nesting it skips).
//!
//! # Limits and details
//!
//! - At most [`PayloadChecks::MAX_POINTERS`] (64) field checks per route.
//! - Depth limits and pointers go at most [`PayloadChecks::MAX_DEPTH`] (126) levels deep: the
//!   parse then always stays within serde_json's own recursion limit (128), so a body nested
//!   deeper than a depth check allows is always reported as too deep, never as invalid JSON.
//! - Without a depth check, deep nesting is valid JSON: a balanced body a million arrays deep
//!   passes [`Check::json`] (skipped without recursion), and an unbalanced one fails it as a
//!   truncated body.
//! - When an object repeats a key, the last value counts, as with `serde_json::Value`.
//! - Escapes are checked as serde_json checks them: a lone surrogate escape (`"\ud800"`) is
//!   rejected in a value that is parsed (on a pointer's path, or anywhere under a depth check)
//!   and accepted in a skipped one, as the JSON grammar allows.
//!
//! # Example
//!
//! ```
//! use webhook_monitor::{
//!     payload::{Action, Check, PayloadViolation},
//!     PayloadChecks, Policy,
//! };
//!
//! let checks = PayloadChecks::new()
//!     .reject(Check::max_depth(32))
//!     .reject(Check::require("/data/object/id"))
//!     .flag(Check::not_null("/data/object/customer"));
//!
//! let body = br#"{"data": {"object": {"id": "pi_1", "customer": null}}}"#;
//! let (violation, action) = checks.evaluate(body).expect("customer is null");
//! assert_eq!(action, Action::Flag);
//! assert_eq!(violation.check(), "not_null");
//! assert!(checks.evaluate(br#"{"data": {}}"#).is_some_and(|(v, a)| {
//!     matches!(v, PayloadViolation::Missing { .. }) && a == Action::Reject
//! }));
//!
//! let policy = Policy::custom("orders").payload_checks(checks);
//! # let _ = policy;
//! ```
//!
//! [`Policy::max_body_bytes`]: crate::Policy::max_body_bytes

use std::{fmt, ops::ControlFlow, sync::Arc};

use serde::{
    de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor},
    ser::{Serialize, SerializeMap, Serializer},
};

use super::{
    bits,
    peek::{KeyPath, KeySeed},
    IntoPointer, JsonPointer,
};

/// The payload checks of one route: a builder of [`Check`]s, each rejecting or flagging.
///
/// Build it with [`new`](Self::new), then [`reject`](Self::reject) and [`flag`](Self::flag);
/// hand it to [`Policy::payload_checks`](crate::Policy::payload_checks). See the
/// [module docs](self) for what each check does, what it costs and which violation is reported.
///
/// # Example
///
/// ```
/// use webhook_monitor::{payload::Check, PayloadChecks};
///
/// // Reject a body that is not JSON or lacks the object id; only flag a missing event type.
/// let checks = PayloadChecks::new()
///     .reject(Check::json())
///     .reject(Check::require("/data/object/id"))
///     .flag(Check::require("/type"));
/// # let _ = checks;
/// ```
#[derive(Debug, Clone, Default)]
pub struct PayloadChecks {
    max_bytes: Limits,
    depth: Limits,
    /// What to do with a body that is not JSON: reject if any check that reads JSON rejects;
    /// `None` when no check reads JSON.
    json: Option<Action>,
    pointers: Vec<PointerCheck>,
}

impl PayloadChecks {
    /// The most field checks ([`Check::require`], [`Check::not_null`]) one route can have.
    pub const MAX_POINTERS: usize = 64;

    /// The deepest [`Check::max_depth`] limit, as deep as a pointer goes
    /// ([`JsonPointer::MAX_TOKENS`]).
    pub const MAX_DEPTH: usize = JsonPointer::MAX_TOKENS;

    /// No checks: every body passes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check that rejects a body failing it: the layer answers `422 Unprocessable
    /// Entity` without calling the handler.
    ///
    /// # Panics
    ///
    /// If this is field check number [`MAX_POINTERS`](Self::MAX_POINTERS) + 1.
    #[must_use]
    pub fn reject(self, check: Check) -> Self {
        self.add(check, Action::Reject)
    }

    /// Adds a check that only flags a body failing it: the handler is called, and the report is
    /// flagged `payload_flagged` and names the check.
    ///
    /// # Panics
    ///
    /// If this is field check number [`MAX_POINTERS`](Self::MAX_POINTERS) + 1.
    #[must_use]
    pub fn flag(self, check: Check) -> Self {
        self.add(check, Action::Flag)
    }

    fn add(mut self, Check(rule): Check, action: Action) -> Self {
        match rule {
            Rule::MaxBytes(max) => {
                self.max_bytes.tighten(max, action);
                return self; // the only check that does not read JSON
            }
            Rule::Json => {}
            Rule::MaxDepth(max) => self.depth.tighten(max, action),
            Rule::Field { pointer, not_null } => {
                assert!(
                    self.pointers.len() < Self::MAX_POINTERS,
                    "at most {} field checks per route",
                    Self::MAX_POINTERS
                );
                self.pointers.push(PointerCheck {
                    pointer,
                    not_null,
                    action,
                });
            }
        }
        if action == Action::Reject || self.json.is_none() {
            self.json = Some(action);
        }
        self
    }

    /// Checks `body`: the first rejecting violation, else the first flagged one, else `None`.
    ///
    /// The layer calls this for every delivery of a route with checks; call it yourself to test
    /// your checks.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::{
    ///     payload::{Action, Check, PayloadViolation},
    ///     PayloadChecks,
    /// };
    ///
    /// let checks = PayloadChecks::new()
    ///     .flag(Check::max_bytes(16))
    ///     .reject(Check::json());
    /// assert_eq!(checks.evaluate(b"[1, 2]"), None);
    /// let (too_large, action) = checks.evaluate(b"[1, 2, 3, 4, 5, 6, 7]").expect("flagged");
    /// assert_eq!(action, Action::Flag);
    /// assert_eq!(too_large, PayloadViolation::TooLarge { size: 21, max: 16 });
    /// // Also too large, but the rejection wins.
    /// let (invalid, action) = checks.evaluate(b"[1, 2, 3, 4, 5, 6, 7").expect("rejected");
    /// assert_eq!((invalid.check(), action), ("json", Action::Reject));
    /// ```
    pub fn evaluate(&self, body: &[u8]) -> Option<(PayloadViolation, Action)> {
        let mut flagged = None;
        let mut note = |violation, action| match action {
            Action::Reject => ControlFlow::Break(violation),
            Action::Flag => {
                flagged.get_or_insert(violation);
                ControlFlow::Continue(())
            }
        };
        match self.scan(body, &mut note) {
            ControlFlow::Break(violation) => Some((violation, Action::Reject)),
            ControlFlow::Continue(()) => flagged.map(|violation| (violation, Action::Flag)),
        }
    }

    /// Hands every violation of `body` to `note`, in the documented order, until it breaks.
    fn scan(
        &self,
        body: &[u8],
        note: &mut impl FnMut(PayloadViolation, Action) -> ControlFlow<PayloadViolation>,
    ) -> ControlFlow<PayloadViolation> {
        let size = body.len();
        for (max, action) in self.max_bytes.iter() {
            if size > max {
                note(PayloadViolation::TooLarge { size, max }, action)?;
            }
        }
        let Some(json) = self.json else {
            return ControlFlow::Continue(());
        };
        let walk = match self.walk(body) {
            Ok(walk) => walk,
            // Only a rejecting depth limit stops the walk.
            Err(violation @ PayloadViolation::TooDeep { .. }) => {
                return note(violation, Action::Reject)
            }
            Err(violation) => return note(violation, json),
        };
        if let Some(max) = walk.flagged_depth {
            note(PayloadViolation::TooDeep { max }, Action::Flag)?;
        }
        for (i, check) in self.pointers.iter().enumerate() {
            let bit = 1 << i;
            let found = walk.found & bit != 0;
            let violation = if !found && !check.not_null {
                PayloadViolation::Missing {
                    pointer: Arc::clone(check.pointer.text()),
                }
            } else if check.not_null && (!found || walk.null & bit != 0) {
                PayloadViolation::Null {
                    pointer: Arc::clone(check.pointer.text()),
                    absent: !found,
                }
            } else {
                continue;
            };
            note(violation, check.action)?;
        }
        ControlFlow::Continue(())
    }

    /// Parses `body` once, tracking depth and which pointers are found. Fails with
    /// [`PayloadViolation::InvalidJson`], or with [`PayloadViolation::TooDeep`] for the rejecting
    /// depth limit.
    fn walk(&self, body: &[u8]) -> Result<Walk<'_>, PayloadViolation> {
        let text =
            std::str::from_utf8(body).map_err(|err| invalid_utf8(body, err.valid_up_to()))?;
        let mut walk = Walk {
            pointers: &self.pointers,
            depth: self.depth,
            found: 0,
            null: 0,
            too_deep: None,
            flagged_depth: None,
        };
        let alive = u64::MAX
            .checked_shr(64 - self.pointers.len() as u32)
            .unwrap_or(0);
        let mut de = serde_json::Deserializer::from_str(text);
        let root = Walker {
            walk: &mut walk,
            depth: 0,
            alive,
        };
        match (
            root.deserialize(&mut de).and_then(|()| de.end()),
            walk.too_deep,
        ) {
            (Ok(()), _) => Ok(walk),
            (Err(_), Some(max)) => Err(PayloadViolation::TooDeep { max }),
            (Err(err), None) => Err(PayloadViolation::InvalidJson {
                line: err.line(),
                column: err.column(),
                kind: match err.classify() {
                    serde_json::error::Category::Eof => JsonErrorKind::Eof,
                    _ => JsonErrorKind::Syntax,
                },
            }),
        }
    }
}

/// The violation for a body whose UTF-8 breaks at byte `at`, located as serde_json locates its
/// errors (1-based line, and 1-based column in bytes).
fn invalid_utf8(body: &[u8], at: usize) -> PayloadViolation {
    let before = &body[..at];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |newline| newline + 1);
    PayloadViolation::InvalidJson {
        line: 1 + before.iter().filter(|&&b| b == b'\n').count(),
        column: at - line_start + 1,
        kind: JsonErrorKind::Utf8,
    }
}

/// One check, to add to [`PayloadChecks`] with [`reject`](PayloadChecks::reject) or
/// [`flag`](PayloadChecks::flag).
///
/// # Example
///
/// ```
/// use webhook_monitor::{payload::Check, PayloadChecks};
///
/// let checks = PayloadChecks::new()
///     .flag(Check::max_bytes(64 * 1024))
///     .reject(Check::json())
///     .reject(Check::max_depth(32))
///     .reject(Check::require("/data/object/id"))
///     .reject(Check::require("/data/items/0/sku"))
///     .flag(Check::not_null("/data/object/customer"));
/// # let _ = checks;
/// ```
#[derive(Debug, Clone)]
pub struct Check(Rule);

#[derive(Debug, Clone)]
enum Rule {
    MaxBytes(usize),
    Json,
    MaxDepth(usize),
    Field {
        pointer: JsonPointer,
        not_null: bool,
    },
}

impl Check {
    /// The body is at most `max` bytes. Reported as [`PayloadViolation::TooLarge`].
    ///
    /// The only check that does not parse the body. Added twice with the same action, the
    /// smaller limit counts.
    pub fn max_bytes(max: usize) -> Self {
        Self(Rule::MaxBytes(max))
    }

    /// The body is exactly one valid JSON value, in UTF-8 (surrounding whitespace allowed).
    /// Reported as [`PayloadViolation::InvalidJson`].
    pub fn json() -> Self {
        Self(Rule::Json)
    }

    /// The field at `pointer` is present; it may be `null`. Reported as
    /// [`PayloadViolation::Missing`].
    ///
    /// `pointer` is a [`JsonPointer`], or a pointer string (`"/data/object/id"`, `"/items/0"`,
    /// `""` for the whole body).
    ///
    /// # Panics
    ///
    /// If `pointer` is a string that is not a valid JSON pointer (see [`IntoPointer`]).
    #[track_caller]
    pub fn require(pointer: impl IntoPointer) -> Self {
        Self(Rule::Field {
            pointer: pointer.into_pointer(),
            not_null: false,
        })
    }

    /// The field at `pointer` is present and not `null` (an absent field fails too). Reported as
    /// [`PayloadViolation::Null`]. `pointer` is as for [`require`](Self::require).
    ///
    /// # Panics
    ///
    /// As [`require`](Self::require).
    #[track_caller]
    pub fn not_null(pointer: impl IntoPointer) -> Self {
        Self(Rule::Field {
            pointer: pointer.into_pointer(),
            not_null: true,
        })
    }

    /// Arrays and objects nest at most `max` levels deep: a scalar body is 0 deep, `{}` and
    /// `[1]` are 1 deep, `{"a": [1]}` is 2 deep. Reported as [`PayloadViolation::TooDeep`].
    ///
    /// `max` is capped at [`PayloadChecks::MAX_DEPTH`]. A rejecting limit stops the parse at the
    /// first level past it. Added twice with the same action, the smaller limit counts.
    pub fn max_depth(max: usize) -> Self {
        Self(Rule::MaxDepth(max.min(PayloadChecks::MAX_DEPTH)))
    }
}

/// What a failed check does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Answer `422 Unprocessable Entity` without calling the handler.
    Reject,
    /// Call the handler, and flag the report `payload_flagged`.
    Flag,
}

/// A failed payload check: what the report's `payload` holds, and what
/// [`PayloadChecks::evaluate`] returns.
///
/// Its message never quotes the body. Serializes, as in reports, to
/// `{"check": "<check name>", "message": "<Display>"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PayloadViolation {
    /// The body is larger than a [`Check::max_bytes`] limit.
    TooLarge {
        /// The body's size in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The body is not one valid JSON value.
    InvalidJson {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error, in bytes.
        column: usize,
        /// What is wrong.
        kind: JsonErrorKind,
    },
    /// A [`Check::require`]d field is absent.
    Missing {
        /// The field's JSON pointer, as given to the check.
        pointer: Arc<str>,
    },
    /// A [`Check::not_null`] field is `null` or absent.
    Null {
        /// The field's JSON pointer, as given to the check.
        pointer: Arc<str>,
        /// The field is absent (rather than `null`).
        absent: bool,
    },
    /// Arrays and objects nest deeper than a [`Check::max_depth`] limit.
    TooDeep {
        /// The limit.
        max: usize,
    },
}

impl PayloadViolation {
    /// The failed check's name, as in reports: `max_bytes`, `json`, `required`, `not_null` or
    /// `max_depth`.
    pub fn check(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "max_bytes",
            Self::InvalidJson { .. } => "json",
            Self::Missing { .. } => "required",
            Self::Null { .. } => "not_null",
            Self::TooDeep { .. } => "max_depth",
        }
    }
}

impl fmt::Display for PayloadViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { size, max } => {
                write!(f, "body of {size} bytes is over the limit of {max}")
            }
            Self::InvalidJson { line, column, kind } => {
                let what = match kind {
                    JsonErrorKind::Syntax => "syntax error",
                    JsonErrorKind::Eof => "unexpected end of input",
                    JsonErrorKind::Utf8 => "invalid UTF-8",
                };
                write!(
                    f,
                    "body is not valid JSON: {what} at line {line} column {column}"
                )
            }
            Self::Missing { pointer } => write!(f, "required field {pointer:?} is missing"),
            Self::Null {
                pointer,
                absent: true,
            } => write!(f, "field {pointer:?} must not be null, and is missing"),
            Self::Null { pointer, .. } => write!(f, "field {pointer:?} is null"),
            Self::TooDeep { max } => write!(f, "body nests deeper than {max} levels"),
        }
    }
}

impl std::error::Error for PayloadViolation {}

impl Serialize for PayloadViolation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("check", self.check())?;
        m.serialize_entry("message", &format_args!("{self}"))?;
        m.end()
    }
}

/// What is wrong with a body that is not JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JsonErrorKind {
    /// Not JSON syntax: an unexpected character, trailing characters, a bad escape or number.
    Syntax,
    /// The body ends before its value does (truncated, or empty).
    Eof,
    /// The body is not UTF-8.
    Utf8,
}

/// The tightest limit per action.
#[derive(Debug, Clone, Copy, Default)]
struct Limits {
    reject: Option<usize>,
    flag: Option<usize>,
}

impl Limits {
    fn tighten(&mut self, max: usize, action: Action) {
        let slot = match action {
            Action::Reject => &mut self.reject,
            Action::Flag => &mut self.flag,
        };
        *slot = Some(slot.map_or(max, |old| old.min(max)));
    }

    /// The set limits, the rejecting one first.
    fn iter(self) -> impl Iterator<Item = (usize, Action)> {
        let reject = self.reject.map(|max| (max, Action::Reject));
        reject
            .into_iter()
            .chain(self.flag.map(|max| (max, Action::Flag)))
    }

    fn any(self) -> bool {
        self.reject.is_some() || self.flag.is_some()
    }
}

/// A field check.
#[derive(Debug, Clone)]
struct PointerCheck {
    pointer: JsonPointer,
    not_null: bool,
    action: Action,
}

impl KeyPath for PointerCheck {
    fn key(&self, depth: usize) -> Option<&str> {
        Some(&self.pointer.tokens().get(depth)?.key)
    }
}

/// What one parse learns; shared by every [`Walker`] of the parse.
struct Walk<'c> {
    pointers: &'c [PointerCheck],
    /// The depth limits still to check: the flagging one is cleared once exceeded.
    depth: Limits,
    /// Bit `i`: pointer `i` was found.
    found: u64,
    /// Bit `i`: pointer `i` was found and is `null`.
    null: u64,
    /// The rejecting depth limit, once exceeded (the parse stops there).
    too_deep: Option<usize>,
    /// The flagging depth limit, once exceeded.
    flagged_depth: Option<usize>,
}

/// Walks one value, `depth` arrays and objects deep; `alive` marks the pointers whose first
/// `depth` tokens led here.
struct Walker<'w, 'c> {
    walk: &'w mut Walk<'c>,
    depth: usize,
    alive: u64,
}

impl Walker<'_, '_> {
    /// The alive pointers that end at this value.
    fn ends(&self) -> u64 {
        bits(self.alive)
            .filter(|&i| self.walk.pointers[i].pointer.tokens().len() == self.depth)
            .fold(0, |mask, i| mask | 1 << i)
    }

    fn scalar<E>(self, null: bool) -> Result<(), E> {
        let ends = self.ends();
        self.walk.found |= ends;
        if null {
            self.walk.null |= ends;
        }
        Ok(())
    }

    /// Enters this array or object: checks its depth and returns its children's.
    fn enter<E: de::Error>(&mut self) -> Result<usize, E> {
        self.walk.found |= self.ends();
        let depth = self.depth + 1;
        let limits = &mut self.walk.depth;
        if let Some(max) = limits.reject.filter(|&max| depth > max) {
            self.walk.too_deep = Some(max);
            return Err(E::custom("nested too deep"));
        }
        if let Some(max) = limits.flag.filter(|&max| depth > max) {
            self.walk.flagged_depth = Some(max);
            limits.flag = None;
        }
        Ok(depth)
    }
}

impl<'de> DeserializeSeed<'de> for Walker<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.alive == 0 && !self.walk.depth.any() {
            // Nothing to learn here: serde_json's skipper checks the syntax without recursing.
            return deserializer.deserialize_ignored_any(IgnoredAny).map(drop);
        }
        // This value replaces anything an earlier duplicate key left on these pointers.
        self.walk.found &= !self.alive;
        self.walk.null &= !self.alive;
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walker<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar(false)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar(false)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar(false)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar(false)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar(false)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar(true)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let depth = self.enter()?;
        let pointers = self.walk.pointers;
        for index in 0.. {
            let alive = bits(self.alive)
                .filter(|&i| {
                    let token = pointers[i].pointer.tokens().get(self.depth);
                    token.and_then(|t| t.index) == Some(index)
                })
                .fold(0, |mask, i| mask | 1 << i);
            let child = Walker {
                walk: &mut *self.walk,
                depth,
                alive,
            };
            if seq.next_element_seed(child)?.is_none() {
                break;
            }
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let depth = self.enter()?;
        let pointers = self.walk.pointers;
        while let Some(alive) = map.next_key_seed(KeySeed {
            paths: pointers,
            depth: self.depth,
            alive: self.alive,
        })? {
            map.next_value_seed(Walker {
                walk: &mut *self.walk,
                depth,
                alive,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use PayloadViolation as V;

    fn ptr(p: &str) -> Arc<str> {
        p.into()
    }

    fn nested(levels: usize, closed: bool) -> String {
        let close = if closed {
            "]".repeat(levels)
        } else {
            String::new()
        };
        format!("{}{close}", "[".repeat(levels))
    }

    #[test]
    fn no_checks_pass_anything() {
        assert_eq!(PayloadChecks::new().evaluate(b"not json at all"), None);
    }

    #[test]
    fn max_bytes_alone_does_not_parse() {
        let checks = PayloadChecks::new().reject(Check::max_bytes(4));
        assert_eq!(checks.evaluate(b"{{{{"), None);
        assert_eq!(
            checks.evaluate(b"12345"),
            Some((V::TooLarge { size: 5, max: 4 }, Action::Reject))
        );
        let both = checks.reject(Check::max_bytes(2)).flag(Check::max_bytes(1));
        assert_eq!(
            both.evaluate(b"123"),
            Some((V::TooLarge { size: 3, max: 2 }, Action::Reject))
        );
        assert_eq!(
            both.evaluate(b"12"),
            Some((V::TooLarge { size: 2, max: 1 }, Action::Flag))
        );
    }

    #[test]
    fn invalid_json_is_located_and_classified() {
        let checks = PayloadChecks::new().reject(Check::json());
        let cases: [(&[u8], usize, usize, JsonErrorKind); 6] = [
            (b"", 1, 0, JsonErrorKind::Eof),
            (b"{\"a\":\n [1,", 2, 4, JsonErrorKind::Eof),
            (b"{\"a\":1} x", 1, 9, JsonErrorKind::Syntax),
            (b"{\"a\":tru}", 1, 9, JsonErrorKind::Syntax),
            (b"{\"a\":\n\"\xff\"}", 2, 2, JsonErrorKind::Utf8),
            (b"\xef\xbb\xbf{}", 1, 1, JsonErrorKind::Syntax), // a BOM is not JSON
        ];
        for (body, line, column, kind) in cases {
            let expected = V::InvalidJson { line, column, kind };
            assert_eq!(
                checks.evaluate(body),
                Some((expected, Action::Reject)),
                "{body:?}"
            );
        }
        for valid in [
            &b" {\"a\": [1, 2.5e3, -1, \"\\u00e9\", null, true]} "[..],
            b"1",
        ] {
            assert_eq!(checks.evaluate(valid), None);
        }
        // UTF-8 is checked in skipped strings too.
        let with_pointer = checks.reject(Check::require("/id"));
        assert_eq!(
            with_pointer
                .evaluate(b"{\"x\":\"\xff\",\"id\":1}")
                .map(|(v, _)| v.check()),
            Some("json")
        );
    }

    #[test]
    fn required_fields_by_pointer() {
        let checks = PayloadChecks::new()
            .reject(Check::require("/data/object/id"))
            .reject(Check::require("/type"));
        let ok = br#"{"type":null,"data":{"object":{"id":"pi_1","x":[{"id":2}]}}}"#;
        assert_eq!(checks.evaluate(ok), None, "present, null included");
        for (body, missing) in [
            (
                &br#"{"type":"t","data":{"object":{}}}"#[..],
                "/data/object/id",
            ),
            (
                br#"{"type":"t","data":{"object":"pi_1"}}"#,
                "/data/object/id",
            ),
            (
                br#"{"type":"t","data":[{"object":{"id":1}}]}"#,
                "/data/object/id",
            ),
            (br#"{"data":{"object":{"id":1}},"x":{"type":1}}"#, "/type"),
            (br#"[{"type":1}]"#, "/data/object/id"),
        ] {
            let expected = V::Missing {
                pointer: ptr(missing),
            };
            assert_eq!(
                checks.evaluate(body),
                Some((expected, Action::Reject)),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // A pointer may end at an object or array.
        let container = PayloadChecks::new().reject(Check::require("/data"));
        assert_eq!(container.evaluate(br#"{"data":{"a":[1]}}"#), None);
        assert_eq!(container.evaluate(br#"{"data":[]}"#), None);
    }

    #[test]
    fn not_null_fails_on_null_and_on_absence() {
        let checks = PayloadChecks::new().flag(Check::not_null("/customer"));
        assert_eq!(checks.evaluate(br#"{"customer":"cus_1"}"#), None);
        assert_eq!(checks.evaluate(br#"{"customer":{}}"#), None);
        assert_eq!(checks.evaluate(br#"{"customer":false}"#), None);
        let null = V::Null {
            pointer: ptr("/customer"),
            absent: false,
        };
        assert_eq!(
            checks.evaluate(br#"{"customer":null}"#),
            Some((null, Action::Flag))
        );
        let absent = V::Null {
            pointer: ptr("/customer"),
            absent: true,
        };
        assert_eq!(checks.evaluate(br#"{}"#), Some((absent, Action::Flag)));
    }

    #[test]
    fn pointer_escapes_and_array_indices() {
        let checks = PayloadChecks::new()
            .reject(Check::not_null("/a~1b/m~0n"))
            .reject(Check::not_null("/items/1/sku"))
            .reject(Check::not_null("/0"))
            .reject(Check::not_null("/~01"));
        let body = br#"{"a/b":{"m~n":1},"items":[{"sku":null},{"sku":"s2"}],"0":true,"~1":1}"#;
        assert_eq!(checks.evaluate(body), None);
        // The escapes are not matched literally.
        let literal = br#"{"a~1b":{"m~0n":1},"items":[{},{"sku":1}],"0":1,"~1":1}"#;
        assert_eq!(
            checks.evaluate(literal).map(|(v, _)| v),
            Some(V::Null {
                pointer: ptr("/a~1b/m~0n"),
                absent: true
            })
        );
        // "/0" is an index in an array as well as a key in an object.
        let index = PayloadChecks::new().reject(Check::require("/0/id"));
        assert_eq!(index.evaluate(br#"[{"id":1}]"#), None);
        assert_eq!(index.evaluate(br#"{"0":{"id":1}}"#), None);
        assert!(index.evaluate(br#"[{"x":1},{"id":1}]"#).is_some());
        // "01" is no index (leading zero), "-" is past the end: only object keys match them.
        for p in ["/01", "/-"] {
            let checks = PayloadChecks::new().reject(Check::require(p));
            assert!(checks.evaluate(br#"[1,2,3]"#).is_some(), "{p}");
            let key = format!(r#"{{"{}":1}}"#, &p[1..]);
            assert_eq!(checks.evaluate(key.as_bytes()), None, "{p}");
        }
        // An index too large for usize is no index either.
        let huge = PayloadChecks::new().reject(Check::require("/99999999999999999999999"));
        assert!(huge.evaluate(b"[1]").is_some());
        // The root pointer: present whenever the body is JSON.
        let root = PayloadChecks::new().reject(Check::not_null(""));
        assert_eq!(root.evaluate(b"{}"), None);
        assert!(root.evaluate(b" null ").is_some());
    }

    #[test]
    fn last_duplicate_key_wins() {
        let checks = PayloadChecks::new()
            .reject(Check::not_null("/id"))
            .reject(Check::require("/a/b"));
        assert_eq!(checks.evaluate(br#"{"id":null,"id":1,"a":{"b":1}}"#), None);
        assert!(checks
            .evaluate(br#"{"id":1,"id":null,"a":{"b":1}}"#)
            .is_some());
        let replaced = br#"{"id":1,"a":{"b":1},"a":{"c":1}}"#;
        assert_eq!(
            checks.evaluate(replaced).map(|(v, _)| v),
            Some(V::Missing {
                pointer: ptr("/a/b")
            })
        );
    }

    #[test]
    fn depth_counts_arrays_and_objects() {
        let checks = PayloadChecks::new().reject(Check::max_depth(2));
        for ok in ["1", "[]", r#"{"a":[1]}"#, r#"[{"a":1},[2]]"#] {
            assert_eq!(checks.evaluate(ok.as_bytes()), None, "{ok}");
        }
        for deep in [r#"{"a":[{}]}"#, "[[[1]]]", r#"[1,{"a":{"b":{}}}]"#] {
            assert_eq!(
                checks.evaluate(deep.as_bytes()),
                Some((V::TooDeep { max: 2 }, Action::Reject)),
                "{deep}"
            );
        }
        let zero = PayloadChecks::new().reject(Check::max_depth(0));
        assert_eq!(zero.evaluate(b"\"s\""), None);
        assert!(zero.evaluate(b"[]").is_some());
    }

    #[test]
    fn a_rejecting_depth_limit_stops_the_parse() {
        let checks = PayloadChecks::new().reject(Check::max_depth(32));
        let too_deep = Some((V::TooDeep { max: 32 }, Action::Reject));
        assert_eq!(checks.evaluate(nested(32, true).as_bytes()), None);
        assert_eq!(checks.evaluate(nested(33, true).as_bytes()), too_deep);
        // Unbalanced and far too deep: caught at level 33, long before the missing end.
        assert_eq!(checks.evaluate(nested(100_000, false).as_bytes()), too_deep);
        let objects = format!("{}1", r#"{"a":"#.repeat(100_000));
        assert_eq!(checks.evaluate(objects.as_bytes()), too_deep);
    }

    #[test]
    fn depth_limits_stay_within_serde_jsons_recursion_limit() {
        // serde_json stops at 128 levels; the cap keeps our own limit below it, so a body
        // deeper than the limit is always too deep, never "invalid JSON".
        let checks = PayloadChecks::new().reject(Check::max_depth(usize::MAX));
        let capped = Some((
            V::TooDeep {
                max: PayloadChecks::MAX_DEPTH,
            },
            Action::Reject,
        ));
        assert_eq!(checks.evaluate(nested(126, true).as_bytes()), None);
        for levels in [127, 128, 129, 10_000] {
            assert_eq!(
                checks.evaluate(nested(levels, true).as_bytes()),
                capped,
                "{levels}"
            );
        }
    }

    #[test]
    fn without_a_depth_check_deep_bodies_are_skipped_without_recursion() {
        let json = PayloadChecks::new()
            .reject(Check::json())
            .reject(Check::require("/0/0"));
        // Balanced: valid JSON, however deep.
        assert_eq!(json.evaluate(nested(100_000, true).as_bytes()), None);
        // Unbalanced: a truncated body.
        let (violation, action) = json.evaluate(nested(100_000, false).as_bytes()).unwrap();
        assert_eq!(action, Action::Reject);
        assert!(
            matches!(
                violation,
                V::InvalidJson {
                    kind: JsonErrorKind::Eof,
                    ..
                }
            ),
            "{violation:?}"
        );
        // A pointer as deep as allowed, on a body deeper still.
        let deepest = "/0".repeat(PayloadChecks::MAX_DEPTH);
        let checks = PayloadChecks::new().reject(Check::require(&deepest));
        assert_eq!(checks.evaluate(nested(10_000, true).as_bytes()), None);
        assert!(checks
            .evaluate(nested(PayloadChecks::MAX_DEPTH, true).as_bytes())
            .is_some());
    }

    #[test]
    fn a_flagging_depth_limit_lets_the_parse_go_on() {
        let checks = PayloadChecks::new()
            .flag(Check::max_depth(2))
            .reject(Check::require("/id"));
        let deep_then_id = format!(r#"{{"a":{},"id":1}}"#, nested(10_000, true));
        assert_eq!(
            checks.evaluate(deep_then_id.as_bytes()),
            Some((V::TooDeep { max: 2 }, Action::Flag))
        );
        // The rejecting check still runs past the flagged depth.
        let deep_no_id = format!(r#"{{"a":{}}}"#, nested(10_000, true));
        assert_eq!(
            checks.evaluate(deep_no_id.as_bytes()),
            Some((
                V::Missing {
                    pointer: ptr("/id")
                },
                Action::Reject
            ))
        );
        // Flag at 2, reject at 4.
        let both = PayloadChecks::new()
            .flag(Check::max_depth(2))
            .reject(Check::max_depth(4));
        assert_eq!(
            both.evaluate(b"[[[1]]]"),
            Some((V::TooDeep { max: 2 }, Action::Flag))
        );
        assert_eq!(
            both.evaluate(b"[[[[[1]]]]]"),
            Some((V::TooDeep { max: 4 }, Action::Reject))
        );
    }

    #[test]
    fn invalid_json_rejects_if_any_json_check_rejects() {
        let flag_only = PayloadChecks::new()
            .flag(Check::json())
            .flag(Check::require("/id"));
        assert_eq!(flag_only.evaluate(b"{").map(|(_, a)| a), Some(Action::Flag));
        let implied = PayloadChecks::new()
            .flag(Check::json())
            .reject(Check::require("/id"));
        assert_eq!(implied.evaluate(b"{").map(|(_, a)| a), Some(Action::Reject));
        let added_later = PayloadChecks::new()
            .reject(Check::require("/id"))
            .flag(Check::json())
            .flag(Check::not_null("/x"));
        assert_eq!(
            added_later.evaluate(b"{").map(|(_, a)| a),
            Some(Action::Reject)
        );
        let by_depth = PayloadChecks::new().reject(Check::max_depth(8));
        assert_eq!(
            by_depth.evaluate(b"{").map(|(v, a)| (v.check(), a)),
            Some(("json", Action::Reject))
        );
    }

    #[test]
    fn a_reject_beats_a_flag_and_the_first_flag_wins() {
        let checks = PayloadChecks::new()
            .flag(Check::max_bytes(1))
            .flag(Check::require("/a"))
            .flag(Check::not_null("/b"))
            .reject(Check::require("/c"));
        assert_eq!(
            checks.evaluate(br#"{"b":null}"#),
            Some((V::Missing { pointer: ptr("/c") }, Action::Reject))
        );
        assert_eq!(
            checks.evaluate(br#"{"b":null,"c":1}"#),
            Some((V::TooLarge { size: 16, max: 1 }, Action::Flag))
        );
        let fields_only = PayloadChecks::new()
            .flag(Check::require("/a"))
            .flag(Check::not_null("/b"));
        assert_eq!(
            fields_only.evaluate(br#"{"b":null}"#),
            Some((V::Missing { pointer: ptr("/a") }, Action::Flag))
        );
    }

    #[test]
    fn names_messages_and_json() {
        let cases = [
            (
                V::TooLarge { size: 10, max: 4 },
                "max_bytes",
                "body of 10 bytes is over the limit of 4",
            ),
            (
                V::InvalidJson {
                    line: 2,
                    column: 7,
                    kind: JsonErrorKind::Eof,
                },
                "json",
                "body is not valid JSON: unexpected end of input at line 2 column 7",
            ),
            (
                V::Missing {
                    pointer: ptr("/id"),
                },
                "required",
                r#"required field "/id" is missing"#,
            ),
            (
                V::Null {
                    pointer: ptr("/id"),
                    absent: false,
                },
                "not_null",
                r#"field "/id" is null"#,
            ),
            (
                V::Null {
                    pointer: ptr("/id"),
                    absent: true,
                },
                "not_null",
                r#"field "/id" must not be null, and is missing"#,
            ),
            (
                V::TooDeep { max: 3 },
                "max_depth",
                "body nests deeper than 3 levels",
            ),
        ];
        for (violation, check, message) in cases {
            assert_eq!(violation.check(), check);
            assert_eq!(violation.to_string(), message);
            assert_eq!(
                serde_json::to_value(&violation).unwrap(),
                serde_json::json!({"check": check, "message": message})
            );
        }
    }

    #[test]
    #[should_panic(
        expected = r#"invalid JSON pointer "data/id": it must be empty or start with '/'"#
    )]
    fn a_pointer_must_start_with_a_slash() {
        let _ = Check::require("data/id");
    }

    #[test]
    #[should_panic(expected = r#"invalid JSON pointer "/a~2": '~' must be followed by '0' or '1'"#)]
    fn a_tilde_must_be_an_escape() {
        let _ = Check::not_null("/a~2");
    }

    #[test]
    #[should_panic(expected = "'~' must be followed by '0' or '1'")]
    fn a_trailing_tilde_is_invalid() {
        let _ = Check::require("/a~");
    }

    #[test]
    #[should_panic(expected = "more than 126 tokens")]
    fn a_pointer_cannot_be_deeper_than_the_cap() {
        let _ = Check::require("/0".repeat(PayloadChecks::MAX_DEPTH + 1));
    }

    #[test]
    #[should_panic(expected = "at most 64 field checks per route")]
    fn at_most_64_field_checks() {
        (0..=PayloadChecks::MAX_POINTERS).fold(PayloadChecks::new(), |checks, i| {
            checks.flag(Check::require(format!("/{i}")))
        });
    }

    #[test]
    fn all_64_pointers_are_tracked() {
        let checks = (0..PayloadChecks::MAX_POINTERS).fold(PayloadChecks::new(), |checks, i| {
            checks.reject(Check::not_null(format!("/k{i}")))
        });
        let fields: Vec<String> = (0..64).map(|i| format!(r#""k{i}":{i}"#)).collect();
        assert_eq!(
            checks.evaluate(format!("{{{}}}", fields.join(",")).as_bytes()),
            None
        );
        let last_null = fields[..63].join(",") + r#","k63":null"#;
        assert_eq!(
            checks.evaluate(format!("{{{last_null}}}").as_bytes()),
            Some((
                V::Null {
                    pointer: ptr("/k63"),
                    absent: false
                },
                Action::Reject
            ))
        );
    }
}
