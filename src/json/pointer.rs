//! [`JsonPointer`]: the one way to name a field of a JSON body.

use std::{fmt, str::FromStr, sync::Arc};

/// A field of a JSON body, named by an [RFC 6901](https://www.rfc-editor.org/rfc/rfc6901) JSON
/// pointer: `""` for the whole body, else `/`-separated tokens, each an object key (`~1` stands
/// for `/` and `~0` for `~`) or an array index (`/items/0`; no leading zeros; `-` never matches).
///
/// One path type for everything that reads a body field: where a delivery's id, event type,
/// attempt or send time comes from ([`Source::json`](crate::provider::Source::json)), a
/// scheme's timestamp ([`TimestampSource::JsonMillis`](crate::provider::TimestampSource)), and
/// the [payload checks](crate::payload) ([`Check::require`](crate::payload::Check::require)).
/// Each of those takes an [`IntoPointer`]: a pointer string written in code, or a
/// `JsonPointer` parsed at run time, from configuration, with [`parse`](Self::parse).
///
/// A token is an index in an array and a key in an object, so `/0/id` reads `[{"id": 1}]` and
/// `{"0": {"id": 1}}` alike. Pointers have at most [`MAX_TOKENS`](Self::MAX_TOKENS) tokens.
///
/// Cheap to clone (two reference counts).
///
/// # Example
///
/// ```
/// use webhook_monitor::{payload::Check, provider::Source, JsonPointer, PayloadChecks, Policy};
///
/// // From configuration: parsed at run time, with an error to show.
/// let configured = "/data/object/id";
/// let id = JsonPointer::parse(configured)?;
/// assert_eq!(id.as_str(), configured);
/// assert!(JsonPointer::parse("data/id").is_err());
///
/// // The same pointer names the delivery id and a required field; a literal works as well.
/// let policy = Policy::custom("orders")
///     .delivery_id(Source::json(&id))
///     .event_type(Source::json("/type"))
///     .payload_checks(PayloadChecks::new().reject(Check::require(id)));
/// # let _ = policy;
/// # Ok::<_, webhook_monitor::InvalidPointer>(())
/// ```
#[derive(Clone)]
pub struct JsonPointer {
    /// As given (the escaped form is canonical: equal texts are equal pointers).
    text: Arc<str>,
    tokens: Arc<[Token]>,
}

/// One reference token of a pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    /// Unescaped: matched against object keys.
    pub(crate) key: Box<str>,
    /// The array index it denotes, if any.
    pub(crate) index: Option<usize>,
}

impl JsonPointer {
    /// The most tokens a pointer can have. A walk along a pointer recurses once per token, so
    /// this bounds the stack a pointer can take; it is also the deepest
    /// [`Check::max_depth`](crate::payload::Check::max_depth), so that a parse stays within
    /// serde_json's own recursion limit (128).
    pub const MAX_TOKENS: usize = 126;

    /// Parses a pointer.
    ///
    /// # Errors
    ///
    /// If `text` is neither empty nor starts with `/`, if a `~` is not followed by `0` or `1`,
    /// or if it has more than [`MAX_TOKENS`](Self::MAX_TOKENS) tokens.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::JsonPointer;
    ///
    /// let p = JsonPointer::parse("/a~1b/0")?;
    /// assert_eq!(p.to_string(), "/a~1b/0");
    /// let err = JsonPointer::parse("/a~2").unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     r#"invalid JSON pointer "/a~2": '~' must be followed by '0' or '1'"#
    /// );
    /// # Ok::<_, webhook_monitor::InvalidPointer>(())
    /// ```
    pub fn parse(text: &str) -> Result<Self, InvalidPointer> {
        let invalid = |why| InvalidPointer {
            text: text.into(),
            why,
        };
        let tokens: Arc<[Token]> = match text.strip_prefix('/') {
            None if text.is_empty() => Arc::new([]),
            None => return Err(invalid(Why::NoSlash)),
            Some(rest) => {
                if rest.split('/').nth(Self::MAX_TOKENS).is_some() {
                    return Err(invalid(Why::TooDeep));
                }
                rest.split('/')
                    .map(|raw| Token::parse(raw).ok_or_else(|| invalid(Why::Escape)))
                    .collect::<Result<_, _>>()?
            }
        };
        Ok(Self {
            text: text.into(),
            tokens,
        })
    }

    /// The pointer as written (escaped).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The pointer's text, shared.
    pub(crate) fn text(&self) -> &Arc<str> {
        &self.text
    }

    /// The unescaped tokens.
    pub(crate) fn tokens(&self) -> &[Token] {
        &self.tokens
    }
}

impl Token {
    /// Unescapes `~1` and `~0`; `None` for any other `~`.
    fn parse(raw: &str) -> Option<Self> {
        let mut key = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            key.push(match c {
                '~' => match chars.next()? {
                    '0' => '~',
                    '1' => '/',
                    _ => return None,
                },
                c => c,
            });
        }
        let canonical = key == "0" || !key.starts_with('0');
        let digits = !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit());
        let index = (canonical && digits).then(|| key.parse().ok()).flatten();
        Some(Self {
            key: key.into(),
            index,
        })
    }
}

impl PartialEq for JsonPointer {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for JsonPointer {}

impl std::hash::Hash for JsonPointer {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl fmt::Debug for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JsonPointer").field(&&*self.text).finish()
    }
}

impl fmt::Display for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for JsonPointer {
    type Err = InvalidPointer;

    fn from_str(text: &str) -> Result<Self, InvalidPointer> {
        Self::parse(text)
    }
}

impl TryFrom<&str> for JsonPointer {
    type Error = InvalidPointer;

    fn try_from(text: &str) -> Result<Self, InvalidPointer> {
        Self::parse(text)
    }
}

/// A string that is not a valid [`JsonPointer`]; its message quotes the string and says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPointer {
    text: Box<str>,
    why: Why,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    NoSlash,
    Escape,
    TooDeep,
}

impl fmt::Display for InvalidPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid JSON pointer {:?}: ", self.text)?;
        match self.why {
            Why::NoSlash => f.write_str("it must be empty or start with '/'"),
            Why::Escape => f.write_str("'~' must be followed by '0' or '1'"),
            Why::TooDeep => write!(f, "more than {} tokens", JsonPointer::MAX_TOKENS),
        }
    }
}

impl std::error::Error for InvalidPointer {}

/// What a body field's path can be given as: a [`JsonPointer`], or a pointer string written in
/// code (`"/data/object/id"`).
///
/// Strings are parsed where they are given, and an invalid one panics there: a pointer written
/// in code is a bug to fix, as with `HeaderName::from_static`. Parse a pointer that comes from
/// configuration with [`JsonPointer::parse`] first, to handle the error.
///
/// Sealed: implemented for `&str`, `String`, `&String`, `JsonPointer` and `&JsonPointer`.
pub trait IntoPointer: sealed::Sealed {
    /// The pointer.
    ///
    /// # Panics
    ///
    /// If `self` is a string that is not a valid pointer (see [`JsonPointer::parse`]).
    fn into_pointer(self) -> JsonPointer;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for &str {}
    impl Sealed for String {}
    impl Sealed for &String {}
    impl Sealed for super::JsonPointer {}
    impl Sealed for &super::JsonPointer {}
}

impl IntoPointer for &str {
    #[track_caller]
    fn into_pointer(self) -> JsonPointer {
        JsonPointer::parse(self).unwrap_or_else(|err| panic!("{err}"))
    }
}

impl IntoPointer for String {
    #[track_caller]
    fn into_pointer(self) -> JsonPointer {
        self.as_str().into_pointer()
    }
}

impl IntoPointer for &String {
    #[track_caller]
    fn into_pointer(self) -> JsonPointer {
        self.as_str().into_pointer()
    }
}

impl IntoPointer for JsonPointer {
    fn into_pointer(self) -> JsonPointer {
        self
    }
}

impl IntoPointer for &JsonPointer {
    fn into_pointer(self) -> JsonPointer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(p: &str) -> Vec<(String, Option<usize>)> {
        let p = JsonPointer::parse(p).expect("valid");
        p.tokens()
            .iter()
            .map(|t| (t.key.to_string(), t.index))
            .collect()
    }

    #[test]
    fn tokens_are_unescaped_and_indices_canonical() {
        assert_eq!(keys(""), []);
        assert_eq!(keys("/"), [(String::new(), None)]);
        assert_eq!(
            keys("/a~1b/m~0n/~01"),
            [
                ("a/b".into(), None),
                ("m~n".into(), None),
                ("~1".into(), None)
            ]
        );
        assert_eq!(
            keys("/0/10/01/-/99999999999999999999999"),
            [
                ("0".into(), Some(0)),
                ("10".into(), Some(10)),
                ("01".into(), None),
                ("-".into(), None),
                ("99999999999999999999999".into(), None),
            ]
        );
    }

    #[test]
    fn invalid_pointers_say_why() {
        let why = |p: &str| JsonPointer::parse(p).expect_err(p).to_string();
        assert_eq!(
            why("data/id"),
            r#"invalid JSON pointer "data/id": it must be empty or start with '/'"#
        );
        assert_eq!(
            why("/a~"),
            r#"invalid JSON pointer "/a~": '~' must be followed by '0' or '1'"#
        );
        let deep = "/0".repeat(JsonPointer::MAX_TOKENS + 1);
        assert!(why(&deep).ends_with("more than 126 tokens"));
        assert!(JsonPointer::parse(&"/0".repeat(JsonPointer::MAX_TOKENS)).is_ok());
    }

    #[test]
    fn equal_texts_are_equal_pointers() {
        let a = JsonPointer::parse("/a~1b").expect("valid");
        assert_eq!(a, "/a~1b".into_pointer());
        assert_ne!(a, "/a/b".into_pointer());
        assert_eq!(format!("{a:?}"), r#"JsonPointer("/a~1b")"#);
        assert_eq!("/x".parse::<JsonPointer>(), JsonPointer::parse("/x"));
    }

    #[test]
    #[should_panic(expected = r#"invalid JSON pointer "/a~2": '~' must be followed by '0' or '1'"#)]
    fn a_string_in_code_panics_where_it_is_given() {
        let _ = "/a~2".into_pointer();
    }
}
