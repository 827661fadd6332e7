//! A cheap JSON "peek": a few scalar fields pulled out of a webhook body by [`JsonPointer`], in
//! one pass, without building a `serde_json::Value`.
//!
//! A hand-written scanner walks the root value and the objects and arrays on the requested
//! paths; every other value is skipped by tracking only strings and bracket depth (see [`peek`] for what that
//! checks). The scalars at the ends of the paths are handed to serde_json, so that their values
//! are exactly serde_json's. Strings without escapes are borrowed from the body.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{bits, pointer::Token, JsonPointer};

/// A scalar found at a path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar<'a> {
    /// A string, borrowed from the body when the JSON string has no escapes.
    Str(Cow<'a, str>),
    /// A non-negative integer.
    U64(u64),
    /// A negative integer.
    I64(i64),
    /// A number with a fraction or exponent, or an integer too large for 64 bits.
    F64(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

impl<'a> Scalar<'a> {
    /// Text form for ids and event types: strings as-is, integers in decimal, others `None`.
    pub(crate) fn as_text(&self) -> Option<Cow<'a, str>> {
        match self {
            Scalar::Str(s) => Some(s.clone()),
            Scalar::U64(n) => Some(Cow::Owned(n.to_string())),
            Scalar::I64(n) => Some(Cow::Owned(n.to_string())),
            Scalar::F64(_) | Scalar::Bool(_) | Scalar::Null => None,
        }
    }

    /// Integer form: `U64`, a non-negative `I64`, or a string of decimal digits (Mailgun sends
    /// timestamps as strings); else `None`.
    pub(crate) fn as_u64(&self) -> Option<u64> {
        match self {
            Scalar::U64(n) => Some(*n),
            Scalar::I64(n) => u64::try_from(*n).ok(),
            // `parse` alone would also accept a leading `+`.
            Scalar::Str(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse().ok()
            }
            _ => None,
        }
    }
}

/// Why the body could not be peeked.
#[derive(Debug)]
pub(crate) struct PeekError(serde_json::Error);

impl PeekError {
    /// A syntax error found by the scanner at byte `at`.
    fn syntax(what: &str, at: usize) -> Self {
        PeekError(de::Error::custom(format_args!("{what} at byte {at}")))
    }

    /// serde_json's error on the value (or key) that starts at byte `at`; its own line and column
    /// count from that value, so they are replaced by the offset.
    fn in_value(err: serde_json::Error, at: usize) -> Self {
        PeekError(de::Error::custom(format_args!(
            "{err}, in the value at byte {at}"
        )))
    }
}

impl fmt::Display for PeekError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "body is not valid JSON: {}", self.0)
    }
}

impl std::error::Error for PeekError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Finds the scalar at each pointer (`None` stands for no path: its slot stays `None`).
///
/// Returns `None` for a path that is absent, or whose value is an object or array. A token is an
/// index in an array and a key in an object, as [`JsonPointer`] says. If a key appears twice in
/// an object, the last value wins, as with `serde_json::Value`. The document is scanned once;
/// values not on any path are skipped. At most 64 paths are supported.
///
/// Fails if the body is not one JSON value followed only by whitespace. What is checked:
///
/// * The root value, every object and array on a path (its brackets, keys, colons and commas),
///   and every value directly in such an object or array are checked as JSON. Keys of these objects must be UTF-8
///   without control characters; keys with escapes are unescaped (by serde_json) before they are
///   compared, so `"\u0074ype"` is `type`.
/// * A scalar on a path (at its end or not) is parsed by serde_json alone, so it is fully
///   checked (strings must be UTF-8 and escapes valid) and its value is serde_json's: a string
///   is borrowed when it has no escapes; integers are `U64` or `I64`, other numbers `F64`.
/// * A skipped string (off the paths) must be terminated; its contents are not checked (no
///   UTF-8, escape or control-character check), only backslashes before a quote are counted.
/// * A skipped number or literal directly in a walked object or array is checked against the
///   JSON grammar.
/// * Inside a skipped object or array (one on no path), only strings and brackets are tracked: strings must be terminated, brackets balanced and of matching kinds,
///   and any other byte must be one that can appear in JSON outside a string (whitespace,
///   `,:`, digits, `+-.`, and the letters of `true`, `false`, `null`, `e` and `E`). Their order
///   is not checked: `[1 2,,]` or `{"a" "b"}` inside a skipped value is accepted.
///
/// Skipping is iterative: there is no depth limit, and no recursion (so no stack overflow). Only
/// the descent along a path recurses, as deep as the longest path.
pub(crate) fn peek<'a, const N: usize>(
    body: &'a [u8],
    paths: [Option<&JsonPointer>; N],
) -> Result<[Option<Scalar<'a>>; N], PeekError> {
    const { assert!(N <= 64, "peek supports at most 64 paths") };
    let mut out = std::array::from_fn(|_| None);
    let alive = (0..N)
        .filter(|&i| paths[i].is_some())
        .fold(0, |mask, i| mask | 1 << i);
    let tokens = paths.map(|p| p.map_or(&[][..], JsonPointer::tokens));
    let mut walker = Walker {
        body,
        pos: 0,
        paths: &tokens,
        out: &mut out,
    };
    walker.value(0, alive)?;
    let end = skip_ws(body, walker.pos);
    if end != body.len() {
        return Err(PeekError::syntax("trailing characters", end));
    }
    Ok(out)
}

/// The scanner's state: a position in the body, the paths and their slots.
struct Walker<'w, 'a> {
    /// The whole body.
    body: &'a [u8],
    /// The next byte to read.
    pos: usize,
    /// All requested paths' tokens.
    paths: &'w [&'w [Token]],
    /// One slot per path.
    out: &'w mut [Option<Scalar<'a>>],
}

impl Walker<'_, '_> {
    /// Reads the value at `pos` (whitespace first), `depth` keys from the root; `alive` marks the
    /// paths whose first `depth` keys led here. The root is walked even without paths.
    fn value(&mut self, depth: usize, alive: u64) -> Result<(), PeekError> {
        self.pos = skip_ws(self.body, self.pos);
        if alive == 0 && depth > 0 {
            self.pos = skip_value(self.body, self.pos)?;
            return Ok(());
        }
        // This value replaces anything an earlier duplicate key left on these paths.
        for i in bits(alive) {
            self.out[i] = None;
        }
        match self.body.get(self.pos) {
            Some(b'{') => self.object(depth, alive),
            Some(b'[') if self.indexed(depth, alive) => self.array(depth, alive),
            Some(b'[') => {
                self.pos = skip_container(self.body, self.pos)?;
                Ok(())
            }
            _ => self.scalar(depth, alive),
        }
    }

    /// Parses the scalar at `pos` with serde_json and stores it for the paths that end here.
    fn scalar(&mut self, depth: usize, alive: u64) -> Result<(), PeekError> {
        let start = self.pos;
        let end = scalar_end(self.body, start)?;
        let span = self.body.get(start..end).unwrap_or_default();
        let scalar: Scalar<'_> =
            serde_json::from_slice(span).map_err(|e| PeekError::in_value(e, start))?;
        self.pos = end;
        for i in bits(alive) {
            if self.paths[i].len() == depth {
                self.out[i] = Some(scalar.clone());
            }
        }
        Ok(())
    }

    /// Walks the object at `pos` (its `{`), descending into the values of keys on alive paths.
    fn object(&mut self, depth: usize, alive: u64) -> Result<(), PeekError> {
        self.pos = skip_ws(self.body, self.pos + 1);
        if self.body.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            if self.body.get(self.pos) != Some(&b'"') {
                return Err(self.unexpected("expected a key"));
            }
            let next = self.key(depth, alive)?;
            self.pos = skip_ws(self.body, self.pos);
            if self.body.get(self.pos) != Some(&b':') {
                return Err(self.unexpected("expected `:`"));
            }
            self.pos += 1;
            self.value(depth + 1, next)?;
            self.pos = skip_ws(self.body, self.pos);
            match self.body.get(self.pos) {
                Some(b',') => self.pos = skip_ws(self.body, self.pos + 1),
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.unexpected("expected `,` or `}`")),
            }
        }
    }

    /// Whether an alive path goes on into an array here, by an index.
    fn indexed(&self, depth: usize, alive: u64) -> bool {
        bits(alive).any(|i| self.paths[i].get(depth).is_some_and(|t| t.index.is_some()))
    }

    /// Walks the array at `pos` (its `[`), descending into the elements at alive paths' indices.
    fn array(&mut self, depth: usize, alive: u64) -> Result<(), PeekError> {
        self.pos = skip_ws(self.body, self.pos + 1);
        if self.body.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(());
        }
        let mut index = 0;
        loop {
            let next = bits(alive)
                .filter(|&i| self.paths[i].get(depth).and_then(|t| t.index) == Some(index))
                .fold(0, |mask, i| mask | 1 << i);
            self.value(depth + 1, next)?;
            self.pos = skip_ws(self.body, self.pos);
            match self.body.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.unexpected("expected `,` or `]`")),
            }
            index += 1; // at most one per byte of the body: no overflow
        }
    }

    /// Reads the key at `pos` (its opening quote) and returns the mask of alive paths whose key
    /// at `depth` it is.
    fn key(&mut self, depth: usize, alive: u64) -> Result<u64, PeekError> {
        let start = self.pos;
        let close = string_end(self.body, start + 1)?;
        self.pos = close + 1;
        let raw = self.body.get(start + 1..close).unwrap_or_default();
        // Printable ASCII without escapes, as almost every key is: valid as it stands.
        let plain = raw.iter().all(|&b| (0x20..0x80).contains(&b) && b != b'\\');
        if !plain && raw.contains(&b'\\') {
            // Escapes: serde_json unescapes and checks the key (see `KeySeed`).
            let span = self.body.get(start..=close).unwrap_or_default();
            let mut de = serde_json::Deserializer::from_slice(span);
            let seed = KeySeed {
                paths: self.paths,
                depth,
                alive,
            };
            return seed
                .deserialize(&mut de)
                .map_err(|e| PeekError::in_value(e, start));
        }
        if !plain && (raw.iter().any(|&b| b < 0x20) || std::str::from_utf8(raw).is_err()) {
            return Err(PeekError::syntax("invalid key", start));
        }
        Ok(bits(alive)
            .filter(|&i| self.paths[i].get(depth).map(|t| t.key.as_bytes()) == Some(raw))
            .fold(0, |mask, i| mask | 1 << i))
    }

    /// An error at `pos`: `what`, or the end of the body.
    fn unexpected(&self, what: &str) -> PeekError {
        if self.pos >= self.body.len() {
            PeekError::syntax("unexpected end", self.pos)
        } else {
            PeekError::syntax(what, self.pos)
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// Builds a [`Scalar`] from serde_json's view of a scalar value.
struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON scalar")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::I64(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::U64(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::F64(v))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }

    // Never reached: the scanner hands only scalar spans to serde_json.
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom("not a scalar"))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom("not a scalar"))
    }
}

// ---------------------------------------------------------------------------------------------
// The scanner: free functions over the body, each taking a position and returning the position
// after what it read. None of them recurses, and none indexes out of bounds.

/// Byte classes for [`skip_container`].
const OTHER: u8 = 0;
const QUOTE: u8 = 1;
const OPEN_ARRAY: u8 = 2;
const OPEN_OBJECT: u8 = 3;
const CLOSE_ARRAY: u8 = 4;
const CLOSE_OBJECT: u8 = 5;
const INVALID: u8 = 6;
const SPACE: u8 = 7;

/// The class of each byte outside a string: brackets and quotes are structural; space and
/// newline start whitespace runs (indentation), skipped eight bytes at a time; the other bytes
/// that can appear in JSON between strings (tab, carriage return, `,:`, number and literal
/// characters) are `OTHER`; every other byte is `INVALID`.
static CLASS: [u8; 256] = {
    let mut table = [INVALID; 256];
    let other = b"\t\r,:0123456789+-.eEaflnrstu";
    let mut i = 0;
    while i < other.len() {
        table[other[i] as usize] = OTHER;
        i += 1;
    }
    table[b' ' as usize] = SPACE;
    table[b'\n' as usize] = SPACE;
    table[b'"' as usize] = QUOTE;
    table[b'[' as usize] = OPEN_ARRAY;
    table[b'{' as usize] = OPEN_OBJECT;
    table[b']' as usize] = CLOSE_ARRAY;
    table[b'}' as usize] = CLOSE_OBJECT;
    table
};

/// `0x01` in every byte of a word.
const ONES: u64 = u64::MAX / 255;
/// `0x80` in every byte of a word.
const HIGHS: u64 = ONES << 7;
/// A space in every byte of a word.
const SPACES: u64 = ONES * b' ' as u64;

/// The high bit of each byte of `word` that equals `byte`, exact up to the first such byte (the
/// classic "has zero byte" test on `word ^ byte`: borrows can only mark bytes above a zero).
#[inline(always)]
fn bytes_equal(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * u64::from(byte));
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// The index of the first `"` at or after `from`, or the body's length if there is none.
/// Sixteen bytes at a time, as two words. The escape check is left to the caller.
#[inline(always)]
fn find_quote(body: &[u8], from: usize) -> usize {
    let mut i = from;
    while let Some(chunk) = body.get(i..i + 16) {
        let pair = u128::from_le_bytes(chunk.try_into().unwrap_or([0; 16]));
        let low = bytes_equal(pair as u64, b'"');
        let high = bytes_equal((pair >> 64) as u64, b'"');
        if low | high != 0 {
            let at = if low != 0 {
                low.trailing_zeros()
            } else {
                64 + high.trailing_zeros()
            };
            return i + (at / 8) as usize;
        }
        i += 16;
    }
    while let Some(&b) = body.get(i) {
        if b == b'"' {
            break;
        }
        i += 1;
    }
    i
}

/// The index of the quote that closes the string whose contents start at `from` (just after
/// its opening quote), or `None` if the string is not terminated. A quote is escaped when an odd
/// number of backslashes precede it; the opening quote stops the count.
#[inline(always)]
fn closing_quote(body: &[u8], from: usize) -> Option<usize> {
    let mut q = find_quote(body, from);
    loop {
        match body.get(q.wrapping_sub(1)..=q) {
            Some([b'\\', b'"']) if escaped(body, q) => q = find_quote(body, q + 1),
            Some([_, b'"']) => return Some(q),
            _ => return None,
        }
    }
}

/// Whether the quote at `q` follows an odd number of backslashes.
#[cold]
#[inline(never)]
fn escaped(body: &[u8], q: usize) -> bool {
    let before = body.get(..q).unwrap_or_default();
    before.iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
}

/// The index of the quote that closes the string whose contents start at `from` (just after
/// its opening quote).
fn string_end(body: &[u8], from: usize) -> Result<usize, PeekError> {
    closing_quote(body, from).ok_or_else(|| unterminated_string(from))
}

/// The error for a string whose contents start at `from`.
#[cold]
#[inline(never)]
fn unterminated_string(from: usize) -> PeekError {
    PeekError::syntax("unterminated string", from.saturating_sub(1))
}

/// The first non-whitespace index at or after `i`.
#[inline(always)]
fn skip_ws(body: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = body.get(i) {
        i += 1;
    }
    i
}

/// The first non-whitespace index at or after `i`, skipping runs of spaces (indentation) up to
/// eight at a time. Out of line, so that the string loop of [`skip_container`] keeps its
/// registers.
#[inline(never)]
fn skip_ws_run(body: &[u8], mut i: usize) -> usize {
    loop {
        // The leading spaces of a word are the trailing zero bytes of `word ^ SPACES`.
        while let Some(chunk) = body.get(i..i + 8) {
            let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default()) ^ SPACES;
            if word != 0 {
                i += (word.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        match body.get(i) {
            Some(b' ' | b'\n' | b'\r' | b'\t') => i += 1,
            _ => return i,
        }
    }
}

/// Skips the value at `i` (no whitespace before it) and returns the index after it.
fn skip_value(body: &[u8], i: usize) -> Result<usize, PeekError> {
    match body.get(i) {
        Some(b'"') => Ok(string_end(body, i + 1)? + 1),
        Some(b'{' | b'[') => skip_container(body, i),
        Some(b't') => literal(body, i, b"true"),
        Some(b'f') => literal(body, i, b"false"),
        Some(b'n') => literal(body, i, b"null"),
        Some(b'-' | b'0'..=b'9') => number_end(body, i),
        Some(_) => Err(PeekError::syntax("expected a value", i)),
        None => Err(PeekError::syntax("unexpected end", i)),
    }
}

/// Checks that `word` is at `i` and returns the index after it.
fn literal(body: &[u8], i: usize, word: &[u8]) -> Result<usize, PeekError> {
    if body.get(i..i + word.len()) == Some(word) {
        Ok(i + word.len())
    } else {
        Err(PeekError::syntax("invalid literal", i))
    }
}

/// Checks the number at `i` against JSON's grammar and returns the index after it.
fn number_end(body: &[u8], mut i: usize) -> Result<usize, PeekError> {
    let start = i;
    let digits = |mut i: usize| {
        while body.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    if body.get(i) == Some(&b'-') {
        i += 1;
    }
    match body.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(i + 1),
        _ => return Err(PeekError::syntax("invalid number", start)),
    }
    if body.get(i) == Some(&b'.') {
        let end = digits(i + 1);
        if end == i + 1 {
            return Err(PeekError::syntax("invalid number", start));
        }
        i = end;
    }
    if let Some(b'e' | b'E') = body.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = body.get(i) {
            i += 1;
        }
        let end = digits(i);
        if end == i {
            return Err(PeekError::syntax("invalid number", start));
        }
        i = end;
    }
    Ok(i)
}

/// The end of the scalar at `i` (no whitespace before it): after the closing quote for a string,
/// else before the first byte that ends a token (whitespace, `,`, `]`, `}`) or the body's end.
/// What is in between is left to serde_json to check.
fn scalar_end(body: &[u8], i: usize) -> Result<usize, PeekError> {
    match body.get(i) {
        Some(b'"') => Ok(string_end(body, i + 1)? + 1),
        None => Err(PeekError::syntax("unexpected end", i)),
        Some(_) => {
            let rest = body.get(i..).unwrap_or_default();
            let len = rest
                .iter()
                .position(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b',' | b']' | b'}'))
                .unwrap_or(rest.len());
            Ok(i + len)
        }
    }
}

/// Skips the object or array whose opening bracket is at `open` and returns the index after its
/// closing bracket. Only strings and brackets are tracked (see [`peek`]); the kinds of the open
/// brackets are kept one bit each, in a register for the innermost 64 and spilled to a vector
/// beyond, so depth is unbounded.
fn skip_container(body: &[u8], open: usize) -> Result<usize, PeekError> {
    // Bit 0 of `kinds` is the innermost open bracket: 1 for `{`, 0 for `[`.
    let mut kinds = u64::from(body.get(open) == Some(&b'{'));
    let mut spilled: Vec<u64> = Vec::new();
    let mut depth = 1usize;
    let mut i = open + 1;
    loop {
        let Some(&b) = body.get(i) else {
            return Err(PeekError::syntax("unterminated object or array", open));
        };
        i += 1;
        match CLASS[b as usize] {
            // The rest of a number or literal, and the `,` after it, in a tight loop.
            OTHER => {
                while body.get(i).is_some_and(|&c| CLASS[c as usize] == OTHER) {
                    i += 1;
                }
            }
            QUOTE => {
                // A string, and the strings that follow it directly after a `:` or `,` (keys and
                // values of compact JSON).
                loop {
                    let q = find_quote(body, i);
                    if body.get(q.wrapping_sub(1)) == Some(&b'\\') && escaped(body, q) {
                        i = q + 1;
                        continue;
                    }
                    if q >= body.len() {
                        return Err(unterminated_string(i));
                    }
                    // A `:` or `,`, whitespace, and an opening quote: on to that string.
                    i = q + 1;
                    if let Some(b':' | b',') = body.get(i) {
                        i += 1;
                        if body.get(i) != Some(&b'"') {
                            // The one space after a key in pretty-printed JSON, without a call.
                            i = if body.get(i + 1) == Some(&b'"') && body.get(i) == Some(&b' ') {
                                i + 1
                            } else {
                                skip_ws_run(body, i)
                            };
                            if body.get(i) != Some(&b'"') {
                                break;
                            }
                        }
                        i += 1;
                        continue;
                    }
                    break;
                }
            }
            SPACE => i = skip_ws_run(body, i),
            OPEN_ARRAY | OPEN_OBJECT => {
                if depth % 64 == 0 {
                    spilled.push(kinds);
                    kinds = 0;
                }
                kinds = kinds << 1 | u64::from(b == b'{');
                depth += 1;
            }
            CLOSE_ARRAY | CLOSE_OBJECT => {
                if kinds & 1 != u64::from(b == b'}') {
                    return Err(PeekError::syntax("mismatched bracket", i - 1));
                }
                kinds >>= 1;
                depth -= 1;
                if depth == 0 {
                    return Ok(i);
                }
                if depth % 64 == 0 {
                    kinds = spilled.pop().unwrap_or_default();
                }
            }
            _ => return Err(PeekError::syntax("unexpected byte", i - 1)),
        }
    }
}

/// A path from the root, as [`KeySeed`] matches it.
pub(crate) trait KeyPath {
    /// The key at `depth` (0 for a key of the root object), if the path goes that deep.
    fn key(&self, depth: usize) -> Option<&str>;
}

impl KeyPath for &[Token] {
    fn key(&self, depth: usize) -> Option<&str> {
        self.get(depth).map(|t| &*t.key)
    }
}

/// Reads an object key and returns the mask of alive paths whose key at `depth` it is.
///
/// The key is compared where it lies (borrowed, or in serde_json's scratch buffer when it has
/// escapes), so no key is ever allocated.
pub(crate) struct KeySeed<'w, P> {
    /// All requested paths.
    pub(crate) paths: &'w [P],
    /// Depth of the object holding the key.
    pub(crate) depth: usize,
    /// Paths that led to this object.
    pub(crate) alive: u64,
}

impl<'de, P: KeyPath> DeserializeSeed<'de> for KeySeed<'_, P> {
    type Value = u64;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<P: KeyPath> Visitor<'_> for KeySeed<'_, P> {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<u64, E> {
        Ok(bits(self.alive)
            .filter(|&i| self.paths[i].key(self.depth) == Some(key))
            .fold(0, |mask, i| mask | 1 << i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `peek` with each path given as its keys (each escaped into a pointer token).
    fn peek<'a, const N: usize>(
        body: &'a [u8],
        paths: [&[&str]; N],
    ) -> Result<[Option<Scalar<'a>>; N], PeekError> {
        let pointers = paths.map(|keys| {
            let escaped = keys.iter().map(|k| k.replace('~', "~0").replace('/', "~1"));
            JsonPointer::parse(&escaped.map(|k| format!("/{k}")).collect::<String>()).unwrap()
        });
        super::peek(body, std::array::from_fn(|i| Some(&pointers[i])))
    }

    fn text<'a>(s: &Option<Scalar<'a>>) -> Option<Cow<'a, str>> {
        s.as_ref().and_then(Scalar::as_text)
    }

    #[test]
    fn top_level_and_nested_fields() {
        let body = br#"{"id":"evt_1","meta":{"event_name":"order_created","n":[1]},
            "data":{"object":{"id":"ch_1","list":[{"id":"x"}]}}}"#;
        let [id, nested, meta, absent, deep_absent, obj, arr] = peek(
            body,
            [
                &["id"],
                &["data", "object", "id"],
                &["meta", "event_name"],
                &["nope"],
                &["id", "x"],
                &["data", "object"],
                &["meta", "n"],
            ],
        )
        .unwrap();
        assert_eq!(text(&id).as_deref(), Some("evt_1"));
        assert_eq!(text(&nested).as_deref(), Some("ch_1"));
        assert_eq!(text(&meta).as_deref(), Some("order_created"));
        assert_eq!((absent, deep_absent, obj, arr), (None, None, None, None));
    }

    #[test]
    fn array_indices_as_json_pointers_have_them() {
        let p = |s: &str| JsonPointer::parse(s).unwrap();
        let body = br#"{"items": [{"id": "a"}, {"id": "b", "n": [5, 6]}], "0": {"id": "k"}}"#;
        let pointers = [
            p("/items/1/id"),
            p("/items/1/n/1"),
            p("/0/id"),
            p("/items/01"),
            p("/items/-"),
            p("/items/2"),
            p("/items/0"),
        ];
        let got = super::peek(body, pointers.each_ref().map(Some)).unwrap();
        let text = got.each_ref().map(|s| text(s).map(Cow::into_owned));
        assert_eq!(
            text,
            [
                Some("b".into()),
                Some("6".into()),
                Some("k".into()),
                None,
                None,
                None,
                None
            ]
        );
        // A token is an index in an array and a key in an object.
        let [first] = super::peek(br#"[{"id": 7}]"#, [Some(&p("/0/id"))]).unwrap();
        assert_eq!(first, Some(Scalar::U64(7)));
        // No pointer: its slot stays empty, and the body is still checked.
        let [none, id] = super::peek(br#"{"id": 1}"#, [None, Some(&p("/id"))]).unwrap();
        assert_eq!((none, id), (None, Some(Scalar::U64(1))));
        assert!(super::peek(br#"{"id": 1"#, [None]).is_err());
        // A walked array is checked as JSON: its commas and brackets.
        for bad in [
            &br#"{"items": [1 2]}"#[..],
            br#"{"items": [1,]}"#,
            br#"{"items": [1"#,
        ] {
            assert!(super::peek(bad, [Some(&p("/items/0"))]).is_err(), "{bad:?}");
        }
        let [empty] = super::peek(br#"{"items": [ ]}"#, [Some(&p("/items/0"))]).unwrap();
        assert_eq!(empty, None);
    }

    #[test]
    fn pretty_printed_as_providers_send_it() {
        // Stripe sends events pretty-printed, `type` after `data`; indentation deeper than eight
        // spaces, a space after every `:`, and numbers and literals before newlines.
        let value = serde_json::json!({
            "id": "evt_1", "object": "event", "created": 1_724_000_123,
            "data": {"object": {"id": "in_1", "amount": 1500, "paid": true, "charge": null,
                "lines": {"data": [{"id": "il_1", "period": {"end": 1, "start": -2.5},
                    "metadata": {"note": "a \"quoted\" {brace}"}, "tags": [[], [{}]]}]}}},
            "livemode": false, "type": "invoice.paid"
        });
        let body = serde_json::to_vec_pretty(&value).unwrap();
        assert!(body.windows(10).any(|w| w == b"\n         "));
        let [ty, created, id, paid] = peek(
            &body,
            [
                &["type"],
                &["created"],
                &["data", "object", "id"],
                &["data", "object", "paid"],
            ],
        )
        .unwrap();
        assert_eq!(ty, Some(Scalar::Str("invoice.paid".into())));
        assert_eq!(created, Some(Scalar::U64(1_724_000_123)));
        assert_eq!(id, Some(Scalar::Str("in_1".into())));
        assert_eq!(paid, Some(Scalar::Bool(true)));
        // Cut anywhere inside, the body is an error, never a panic or a value.
        for end in 1..body.len() {
            assert!(peek(&body[..end], [&["type"]]).is_err(), "cut at {end}");
        }
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let body = br#"{"a":"plain","b":"say \"hi\"","c":"caf\u00e9"}"#;
        let [a, b, c] = peek(body, [&["a"], &["b"], &["c"]]).unwrap();
        match a {
            Some(Scalar::Str(Cow::Borrowed(s))) => {
                assert_eq!(s, "plain");
                assert!(body.as_ptr_range().contains(&s.as_ptr()));
            }
            other => panic!("expected a borrowed string, got {other:?}"),
        }
        assert!(matches!(b, Some(Scalar::Str(Cow::Owned(ref s))) if s == "say \"hi\""));
        assert!(matches!(c, Some(Scalar::Str(Cow::Owned(ref s))) if s == "café"));
    }

    #[test]
    fn numbers_and_other_scalars() {
        let body = br#"{"u":42,"i":-7,"f":1.5,"t":true,"z":null,"ts":"1700000000","x":"+1"}"#;
        let paths: [&[&str]; 7] = [&["u"], &["i"], &["f"], &["t"], &["z"], &["ts"], &["x"]];
        let [u, i, f, t, z, ts, x] = peek(body, paths).unwrap().map(Option::unwrap);
        assert_eq!(
            (&u, &i, &f),
            (&Scalar::U64(42), &Scalar::I64(-7), &Scalar::F64(1.5))
        );
        assert_eq!((&t, &z), (&Scalar::Bool(true), &Scalar::Null));
        assert_eq!((u.as_u64(), i.as_u64(), f.as_u64()), (Some(42), None, None));
        assert_eq!((ts.as_u64(), x.as_u64()), (Some(1_700_000_000), None));
        assert_eq!(Scalar::I64(5).as_u64(), Some(5));
        assert_eq!(u.as_text().as_deref(), Some("42"));
        assert_eq!(i.as_text().as_deref(), Some("-7"));
        assert_eq!((f.as_text(), t.as_text(), z.as_text()), (None, None, None));
    }

    #[test]
    fn last_duplicate_key_wins() {
        let body = br#"{"id":"a","a":{"b":1},"id":"b","a":{"c":2},"k":1,"k":{}}"#;
        let [id, ab, k] = peek(body, [&["id"], &["a", "b"], &["k"]]).unwrap();
        assert_eq!(text(&id).as_deref(), Some("b"));
        assert_eq!((ab, k), (None, None));
    }

    #[test]
    fn root_array_and_scalar() {
        assert_eq!(peek(br#"[{"id":1}]"#, [&["id"]]).unwrap(), [None]);
        assert_eq!(peek(b" 7 ", [&[]]).unwrap(), [Some(Scalar::U64(7))]);
    }

    #[test]
    fn invalid_bodies_are_errors() {
        let bodies: [&[u8]; 7] = [
            b"",
            b"   ",
            b"{",
            b"{\"id\":}",
            b"{\"id\":1} x",
            b"{}{}",
            b"nul",
        ];
        for body in bodies {
            let err = peek(body, [&["id"]]).unwrap_err();
            assert!(
                err.to_string().starts_with("body is not valid JSON: "),
                "{err}"
            );
            assert!(std::error::Error::source(&err).is_some());
        }
    }

    #[test]
    fn zero_paths_only_validates() {
        assert!(peek(br#"{"a":[1,{"b":null}]}"#, []).is_ok());
        assert!(peek(br#"{"a":[1,{"b":null}]"#, []).is_err());
    }

    #[test]
    fn deep_nesting_errors_without_overflow() {
        let open = "[".repeat(100_000);
        assert!(peek(open.as_bytes(), []).is_err());
        assert!(peek(open.as_bytes(), [&["id"]]).is_err());
        assert!(peek(format!(r#"{{"id":1,"x":{open}"#).as_bytes(), [&["id"]]).is_err());
        let keys = r#"{"a":"#.repeat(100_000);
        assert!(peek(keys.as_bytes(), []).is_err());
        assert!(peek(keys.as_bytes(), [&["a", "a", "a"]]).is_err());
        assert!(peek(format!("{keys}1").as_bytes(), [&["a", "a"]]).is_err());
        // Balanced deep nesting is skipped iteratively: accepted, no recursion.
        let balanced = format!(r#"{{"x":{open}{},"id":1}}"#, "]".repeat(100_000));
        assert_eq!(
            peek(balanced.as_bytes(), [&["id"]]).unwrap(),
            [Some(Scalar::U64(1))]
        );
        let objects = format!("{keys}1{}", "}".repeat(100_000));
        assert!(peek(objects.as_bytes(), [&["a", "a", "a"]]).unwrap()[0].is_none());
        assert!(peek(objects.as_bytes(), []).is_ok());
        // One bracket of the wrong kind, deep down (beyond the 64 kinds kept in a register), or
        // one bracket short or too many, is an error.
        let mixed = format!("{}{}", "[{".repeat(50_000), "}]".repeat(50_000));
        assert!(peek(mixed.as_bytes(), []).is_ok());
        let swapped = mixed.replacen("}]", "]}", 1);
        assert!(peek(swapped.as_bytes(), []).is_err());
        let swapped = format!("{}]}}{}", "[{".repeat(50_000), "}]".repeat(49_999));
        assert!(peek(swapped.as_bytes(), []).is_err());
        assert!(peek(&mixed.as_bytes()[..mixed.len() - 1], []).is_err());
        assert!(peek(format!("{mixed}]").as_bytes(), []).is_err());
    }

    #[test]
    fn skipped_values_track_strings_and_brackets() {
        let ok: [&[u8]; 8] = [
            br#"{"x":"a\"b}","id":1}"#,
            br#"{"x":"a\\","id":1}"#,
            br#"{"x":["\\\"]",{"y":"\\\\"}],"id":1}"#,
            br#"{"x":{"}":"{","[":[]},"id":1}"#,
            br#"{"x":"\u005C","id":1}"#,
            br#"{"x":-0.5e+7,"y":[true,false,null,-1E2],"id":1}"#,
            b"{\"x\":\"\xff\x01\",\"id\":1}",
            // Inside a skipped value the order of tokens is not checked.
            br#"{"x":[1 2,,],"y":{"a" "b"},"id":1}"#,
        ];
        for body in ok {
            let [id] = peek(body, [&["id"]]).unwrap_or_else(|e| panic!("{e}: {body:?}"));
            assert_eq!(id, Some(Scalar::U64(1)), "{body:?}");
        }
        let bad: [&[u8]; 13] = [
            br#"{"x":"a\"}"#,
            br#"{"x":[}"#,
            br#"{"x":{]}"#,
            br#"{"x":[[]]]}"#,
            br#"{"x":[1,{"a":2]},"id":1}"#,
            br#"{"x":[hello],"id":1}"#,
            br#"{"x":tru,"id":1}"#,
            br#"{"x":01,"id":1}"#,
            br#"{"x":1.,"id":1}"#,
            br#"{"x":-,"id":1}"#,
            br#"{"x":1e,"id":1}"#,
            br#"{"x":1,"id":1,}"#,
            br#"{"x" 1,"id":1}"#,
        ];
        for body in bad {
            assert!(peek(body, [&["id"]]).is_err(), "{body:?}");
            assert!(peek(body, []).is_err(), "{body:?}");
        }
    }

    #[test]
    fn escaped_keys_are_unescaped() {
        let body = br#"{"\u0074ype":"a","ty\u0070e":{"i\u0064":2},"t\"":3,"id\\":4}"#;
        let [ty, nested, quote, backslash] =
            peek(body, [&["type"], &["type", "id"], &["t\\\""], &["id\\\\"]]).unwrap();
        assert_eq!(ty, None);
        assert_eq!(nested, Some(Scalar::U64(2)));
        assert_eq!((quote, backslash), (None, None));
        let [quote, backslash] = peek(body, [&["t\""], &["id\\"]]).unwrap();
        assert_eq!(
            (quote, backslash),
            (Some(Scalar::U64(3)), Some(Scalar::U64(4)))
        );
        // Escapes and control characters in a walked key are checked.
        assert!(peek(br#"{"\x":1}"#, [&["id"]]).is_err());
        assert!(peek(br#"{"\ud800":1}"#, [&["id"]]).is_err());
        assert!(peek(b"{\"a\x01\":1}", [&["id"]]).is_err());
    }

    #[test]
    fn scalars_on_paths_are_checked_by_serde_json() {
        let bad: [&[u8]; 6] = [
            br#"{"id":01}"#,
            br#"{"id":1x}"#,
            br#"{"id":"\q"}"#,
            br#"{"id":truex}"#,
            br#"{"id":1e999}"#,
            b"{\"id\":\"\x01\"}",
        ];
        for body in bad {
            assert!(peek(body, [&["id"]]).is_err(), "{body:?}");
            assert!(peek(body, [&["id", "deeper"]]).is_err(), "{body:?}");
        }
        let body = br#"{"a":123456789012345678901234567890,"b":-5e-1}"#;
        let [big, neg] = peek(body, [&["a"], &["b"]]).unwrap();
        assert_eq!(big, Some(Scalar::F64(1.2345678901234568e29)));
        assert_eq!(neg, Some(Scalar::F64(-0.5)));
    }

    #[test]
    fn utf8_checked_on_paths_only() {
        assert!(peek(b"{\"x\":\"\xff\",\"id\":1}", [&["id"]]).is_ok());
        assert!(peek(b"{\"id\":\"\xff\"}", [&["id"]]).is_err());
        assert!(peek(b"{\"\xff\":1}", [&["id"]]).is_err());
    }

    #[test]
    fn stripe_like_event() {
        let body = STRIPE_EVENT.as_bytes();
        assert!(body.len() >= 2048, "{}", body.len());
        let [id, ty, obj_id, created] = peek(
            body,
            [&["id"], &["type"], &["data", "object", "id"], &["created"]],
        )
        .unwrap();
        assert_eq!(text(&id).as_deref(), Some("evt_3PqR8sLkdIwHu7ix0Zr1Yb2c"));
        assert_eq!(text(&ty).as_deref(), Some("payment_intent.succeeded"));
        assert_eq!(
            text(&obj_id).as_deref(),
            Some("pi_3PqR8sLkdIwHu7ix0Xb9Qw1e")
        );
        assert_eq!(created.and_then(|c| c.as_u64()), Some(1_724_000_123));
    }

    /// Differential tests against `serde_json::Value`, and never-panic tests.
    mod differential {
        use std::borrow::Cow;

        use proptest::prelude::*;
        use serde_json::Value;

        use super::{super::Scalar, peek};

        /// Keys that the generated paths use too, so that documents hit them (`0` and `1` are
        /// array indices too).
        const KEYS: [&str; 7] = ["id", "type", "data", "a", "é", "0", "1"];

        /// A JSON value, kept as the text to write for its leaves.
        #[derive(Debug, Clone)]
        enum Json {
            /// A literal, number or string literal, as written.
            Token(String),
            /// Items, and a seed for the whitespace between them.
            Array(Vec<Json>, u8),
            /// Keys as string literals, values, and a seed for the whitespace.
            Object(Vec<(String, Json)>, u8),
        }

        /// Whitespace between tokens, chosen by `seed` and the token's index.
        fn ws(seed: u8, i: usize) -> &'static str {
            // Runs of eight spaces and more, as deep indentation has, and a tab after spaces.
            const WS: [&str; 8] = [
                "",
                "",
                " ",
                "\n  ",
                "\t",
                "\r\n ",
                "\n                 ",
                "        \t  ",
            ];
            WS[(usize::from(seed) + i * 7) % WS.len()]
        }

        impl Json {
            fn write(&self, out: &mut String) {
                match self {
                    Json::Token(t) => out.push_str(t),
                    Json::Array(items, seed) => {
                        out.push('[');
                        for (i, item) in items.iter().enumerate() {
                            if i > 0 {
                                out.push(',');
                            }
                            out.push_str(ws(*seed, 2 * i));
                            item.write(out);
                            out.push_str(ws(*seed, 2 * i + 1));
                        }
                        out.push(']');
                    }
                    Json::Object(entries, seed) => {
                        out.push('{');
                        for (i, (key, value)) in entries.iter().enumerate() {
                            if i > 0 {
                                out.push(',');
                            }
                            out.push_str(ws(*seed, 3 * i));
                            out.push_str(key);
                            out.push_str(ws(*seed, 3 * i + 1));
                            out.push(':');
                            out.push_str(ws(*seed, 3 * i + 2));
                            value.write(out);
                        }
                        out.push_str(ws(*seed, 1));
                        out.push('}');
                    }
                }
            }
        }

        /// A string literal for `text`, each character written raw or escaped as `how` says
        /// (`\"`, `\\`, `\/`, `\n`, `\t`, or `\u` in either case, surrogate pairs included).
        fn literal(text: &str, how: &[u8]) -> String {
            let mut out = String::from('"');
            for (i, c) in text.chars().enumerate() {
                let how = how.get(i).copied().unwrap_or(0);
                match (c, how % 3) {
                    ('"', 0) => out.push_str("\\\""),
                    ('\\', 0) => out.push_str("\\\\"),
                    ('/', 0) => out.push_str("\\/"),
                    ('\n', 0) => out.push_str("\\n"),
                    ('\t', 0) => out.push_str("\\t"),
                    (c, 1) | (c @ ('"' | '\\' | '\u{0}'..='\u{1f}'), _) => {
                        let mut units = [0; 2];
                        for unit in c.encode_utf16(&mut units) {
                            if how % 2 == 0 {
                                out.push_str(&format!("\\u{unit:04x}"));
                            } else {
                                out.push_str(&format!("\\u{unit:04X}"));
                            }
                        }
                    }
                    (c, _) => out.push(c),
                }
            }
            out.push('"');
            out
        }

        /// Text for strings and keys: the path keys, or characters that need escapes.
        fn text() -> impl Strategy<Value = String> {
            let chars = prop_oneof![
                4 => prop::sample::select(vec![
                    'a', 'z', '_', ' ', '"', '\\', '/', '\n', '\t', '\u{1}', 'é', '€', '😀', '{', ']',
                ]),
                1 => any::<char>(),
            ];
            prop_oneof![
                prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned),
                prop::collection::vec(chars, 0..12).prop_map(|c| c.into_iter().collect()),
            ]
        }

        fn string_literal() -> impl Strategy<Value = String> {
            (text(), prop::collection::vec(any::<u8>(), 0..12))
                .prop_map(|(text, how)| literal(&text, &how))
        }

        /// A key: mostly one of the path keys, escaped or not.
        fn key() -> impl Strategy<Value = String> {
            let path_key = prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned);
            let key = prop_oneof![3 => path_key, 1 => text()];
            (key, prop::collection::vec(any::<u8>(), 0..12))
                .prop_map(|(key, how)| literal(&key, &how))
        }

        fn number() -> impl Strategy<Value = String> {
            let finite = || any::<f64>().prop_filter("finite", |f| f.is_finite());
            prop_oneof![
                any::<u64>().prop_map(|n| n.to_string()),
                any::<i64>().prop_map(|n| n.to_string()),
                (0u64..100).prop_map(|n| n.to_string()),
                finite().prop_map(|f| format!("{f:?}")),
                finite().prop_map(|f| format!("{f:e}")),
                "-?(0|[1-9][0-9]{0,30})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,2})?",
            ]
        }

        fn leaf() -> impl Strategy<Value = Json> {
            prop_oneof![
                prop::sample::select(vec!["null", "true", "false"])
                    .prop_map(|t| Json::Token(t.to_owned())),
                number().prop_map(Json::Token),
                string_literal().prop_map(Json::Token),
            ]
        }

        fn json() -> impl Strategy<Value = Json> {
            leaf().prop_recursive(6, 64, 6, |inner| {
                prop_oneof![
                    (prop::collection::vec(inner.clone(), 0..6), any::<u8>())
                        .prop_map(|(items, seed)| Json::Array(items, seed)),
                    (prop::collection::vec((key(), inner), 0..6), any::<u8>())
                        .prop_map(|(entries, seed)| Json::Object(entries, seed)),
                ]
            })
        }

        /// A body: mostly an object (as webhooks send), with whitespace around it.
        fn document() -> impl Strategy<Value = String> {
            let root = prop_oneof![
                4 => (prop::collection::vec((key(), json()), 0..8), any::<u8>())
                    .prop_map(|(entries, seed)| Json::Object(entries, seed)),
                1 => json(),
            ];
            (root, any::<u8>(), any::<u8>()).prop_map(|(root, before, after)| {
                let mut out = ws(before, 0).to_owned();
                root.write(&mut out);
                out.push_str(ws(after, 0));
                out
            })
        }

        /// Four paths of up to three path keys (the empty path is the root).
        fn paths() -> impl Strategy<Value = Vec<Vec<&'static str>>> {
            let key = prop::sample::select(KEYS.to_vec());
            prop::collection::vec(prop::collection::vec(key, 0..4), 4)
        }

        /// What `peek` must return for `path`, read from the `Value` (by RFC 6901, as
        /// `Value::pointer` reads it).
        fn reference(root: &Value, path: &[&str]) -> Option<Scalar<'static>> {
            let escape = |k: &str| k.replace('~', "~0").replace('/', "~1");
            let pointer: String = path.iter().map(|k| format!("/{}", escape(k))).collect();
            Some(match root.pointer(&pointer)? {
                Value::Null => Scalar::Null,
                Value::Bool(b) => Scalar::Bool(*b),
                Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                    (Some(u), _, _) => Scalar::U64(u),
                    (None, Some(i), _) => Scalar::I64(i),
                    (None, None, Some(f)) => Scalar::F64(f),
                    (None, None, None) => unreachable!("a number without a value"),
                },
                Value::String(s) => Scalar::Str(Cow::Owned(s.clone())),
                Value::Array(_) | Value::Object(_) => return None,
            })
        }

        /// Checks `peek` against the reference when serde_json accepts `body`; else only that
        /// `peek` returns.
        fn check(body: &[u8], paths: &[Vec<&str>]) -> Result<(), TestCaseError> {
            let paths: [&[&str]; 4] = std::array::from_fn(|i| paths[i].as_slice());
            let got = peek(body, paths);
            if let Ok(root) = serde_json::from_slice::<Value>(body) {
                let want = paths.map(|p| reference(&root, p));
                let got = got.map_err(|e| TestCaseError::fail(format!("{e}")))?;
                prop_assert_eq!(got, want);
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            #[test]
            fn same_as_serde_json_value(doc in document(), paths in paths()) {
                let value = serde_json::from_str::<Value>(&doc);
                prop_assume!(value.is_ok(), "serde_json rejects {}", doc);
                check(doc.as_bytes(), &paths)?;
                // Paths to what the document holds, so that deep paths hit too.
                if let Ok(Value::Object(root)) = &value {
                    for (k, v) in root {
                        let mut deep = vec![k.as_str()];
                        if let Some(k2) = v.as_object().and_then(|inner| inner.keys().next_back()) {
                            deep.push(k2);
                        }
                        let paths = [deep.clone(), deep[..1].to_vec(), vec![], paths[0].clone()];
                        check(doc.as_bytes(), &paths)?;
                    }
                }
            }

            #[test]
            fn truncated_object_is_an_error(doc in document(), cut in any::<prop::sample::Index>()) {
                let body = doc.trim_end().as_bytes();
                prop_assume!(body.last() == Some(&b'}'));
                let body = &body[..cut.index(body.len())];
                prop_assert!(peek(body, [&["id"], &["data", "a"]]).is_err(), "{:?}", body);
                prop_assert!(peek(body, []).is_err());
            }

            #[test]
            fn mutated_documents_never_panic(
                doc in document(),
                paths in paths(),
                edits in prop::collection::vec(
                    (
                        any::<prop::sample::Index>(),
                        0u8..4,
                        prop::sample::select(b"{}[]\",:\\ 0e-x\xff\x01".to_vec()),
                    ),
                    1..4,
                ),
            ) {
                let mut body = doc.into_bytes();
                for (at, op, byte) in edits {
                    let i = at.index(body.len() + 1);
                    match op {
                        0 if i < body.len() => {
                            body.remove(i);
                        }
                        1 => body.insert(i, byte),
                        2 if i < body.len() => body[i] = byte,
                        _ => body.truncate(i),
                    }
                }
                check(&body, &paths)?;
            }

            #[test]
            fn arbitrary_bytes_never_panic(
                body in prop_oneof![
                    prop::collection::vec(any::<u8>(), 0..64),
                    prop::collection::vec(
                        prop::sample::select(b"{}[]\",:\\ 0123e.-tfnul\"ida".to_vec()),
                        0..64,
                    ),
                ],
                paths in paths(),
            ) {
                check(&body, &paths)?;
            }
        }
    }

    /// A `payment_intent.succeeded` event shaped like Stripe's, with decoy `id`/`type` keys nested.
    const STRIPE_EVENT: &str = r#"{
  "id": "evt_3PqR8sLkdIwHu7ix0Zr1Yb2c", "object": "event", "api_version": "2024-06-20",
  "created": 1724000123,
  "data": {
    "object": {
      "id": "pi_3PqR8sLkdIwHu7ix0Xb9Qw1e", "object": "payment_intent", "amount": 2000,
      "amount_capturable": 0, "amount_details": {"tip": {}}, "amount_received": 2000,
      "application": null, "application_fee_amount": null,
      "automatic_payment_methods": {"allow_redirects": "always", "enabled": true},
      "canceled_at": null, "cancellation_reason": null, "capture_method": "automatic_async",
      "client_secret": "pi_3PqR8sLkdIwHu7ix0Xb9Qw1e_secret_XmZ1fQ8uY2pLr6oKd0W",
      "confirmation_method": "automatic", "created": 1724000120, "currency": "usd",
      "customer": "cus_QhXo5vT1hZ9yJm", "description": "Order #1042 \u2014 2 items",
      "invoice": null, "last_payment_error": null, "livemode": false,
      "latest_charge": "ch_3PqR8sLkdIwHu7ix0Fk2Lm8n",
      "metadata": {"order_id": "1042", "type": "web", "id": "not-the-event-id"},
      "next_action": null, "on_behalf_of": null, "payment_method": "pm_1PqR8rLkdIwHu7ixQ2w3e4r5",
      "payment_method_configuration_details": {"id": "pmc_1Ow2LkdIwHu7ixK3h", "parent": null},
      "payment_method_options": {
        "card": {"installments": null, "mandate_options": null, "network": null,
                 "request_three_d_secure": "automatic"},
        "link": {"persistent_token": null},
        "us_bank_account": {"financial_connections": {"permissions": ["payment_method"]},
                            "verification_method": "automatic"}
      },
      "payment_method_types": ["card", "link", "us_bank_account"], "processing": null,
      "receipt_email": "jenny.rosen@example.com", "review": null, "setup_future_usage": null,
      "shipping": {
        "address": {"city": "San Francisco", "country": "US", "line1": "510 Townsend St",
                    "line2": null, "postal_code": "94103", "state": "CA"},
        "carrier": null, "name": "Jenny Rosen", "phone": null, "tracking_number": null
      },
      "source": null, "statement_descriptor": null, "statement_descriptor_suffix": null,
      "status": "succeeded", "transfer_data": null, "transfer_group": null,
      "charges": {"object": "list", "data": [{"id": "ch_3PqR8sLkdIwHu7ix0Fk2Lm8n",
        "object": "charge", "amount": 2000, "paid": true, "outcome": {"network_status":
        "approved_by_network", "risk_level": "normal", "risk_score": 32, "type": "authorized"},
        "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242",
        "exp_month": 12, "exp_year": 2027, "funding": "credit", "country": "US"}}}],
        "has_more": false, "total_count": 1, "url": "/v1/charges?payment_intent=pi_3PqR8s"}
    },
    "previous_attributes": null
  },
  "livemode": false, "pending_webhooks": 2,
  "request": {"id": "req_8bXq0z1Yv2Wc3u", "idempotency_key": "a1b2c3d4-e5f6-4789-abcd-ef01234567"},
  "type": "payment_intent.succeeded"
}"#;
}
