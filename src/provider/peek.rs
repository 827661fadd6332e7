//! A cheap JSON "peek": a few scalar fields pulled out of a webhook body by path, in one pass,
//! without building a `serde_json::Value`.
//!
//! Only the keys on a requested path are descended into; every other value is skipped with
//! [`IgnoredAny`]. Strings without escapes are borrowed from the body.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

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

/// Finds the scalar at each path (a path is a list of object keys from the root, e.g.
/// `&["data", "object", "id"]`).
///
/// Returns `None` for a path that is absent, or whose value is an object or array. Arrays are
/// never indexed into. If a key appears twice in an object, the last value wins, as with
/// `serde_json::Value`. The document is parsed once; values not on any path are skipped.
///
/// Fails if the body is not exactly one valid JSON value (trailing garbage included). Values on a
/// path are fully checked (strings must be UTF-8). Skipped values go through serde_json's
/// iterative skipper: JSON syntax is checked, but not UTF-8 inside strings, and there is no depth
/// limit (and no recursion, so no stack overflow). Only the descent along a path recurses, as
/// deep as the longest path. At most 64 paths are supported.
pub(crate) fn peek<'a, const N: usize>(
    body: &'a [u8],
    paths: [&[&str]; N],
) -> Result<[Option<Scalar<'a>>; N], PeekError> {
    const { assert!(N <= 64, "peek supports at most 64 paths") };
    let mut out = std::array::from_fn(|_| None);
    let alive = if N == 0 { 0 } else { u64::MAX >> (64 - N) };
    let mut de = serde_json::Deserializer::from_slice(body);
    let walker = Walker {
        paths: &paths,
        out: &mut out,
        depth: 0,
        alive,
    };
    walker.deserialize(&mut de).map_err(PeekError)?;
    de.end().map_err(PeekError)?;
    Ok(out)
}

/// Iterates over the indices of the set bits of `mask`.
pub(crate) fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let i = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        Some(i)
    })
}

/// Walks one value at `depth`; `alive` marks the paths whose first `depth` keys led here.
struct Walker<'w, 'de> {
    /// All requested paths.
    paths: &'w [&'w [&'w str]],
    /// One slot per path.
    out: &'w mut [Option<Scalar<'de>>],
    /// How many keys from the root this value is.
    depth: usize,
    /// Bit `i` is set when path `i` has this value as a prefix.
    alive: u64,
}

impl<'de> Walker<'_, 'de> {
    /// Stores `scalar` for every alive path that ends at this value.
    fn capture<E>(self, scalar: Scalar<'de>) -> Result<(), E> {
        for i in bits(self.alive) {
            if self.paths[i].len() == self.depth {
                self.out[i] = Some(scalar.clone());
            }
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Walker<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        // This value replaces anything an earlier duplicate key left on these paths.
        for i in bits(self.alive) {
            self.out[i] = None;
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walker<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.capture(Scalar::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.capture(Scalar::I64(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.capture(Scalar::U64(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.capture(Scalar::F64(v))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        self.capture(Scalar::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.capture(Scalar::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.capture(Scalar::Str(Cow::Owned(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.capture(Scalar::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (paths, depth, alive, out) = (self.paths, self.depth, self.alive, self.out);
        while let Some(next) = map.next_key_seed(KeySeed {
            paths,
            depth,
            alive,
        })? {
            if next == 0 {
                map.next_value::<IgnoredAny>()?;
            } else {
                let child = Walker {
                    paths,
                    out: &mut *out,
                    depth: depth + 1,
                    alive: next,
                };
                map.next_value_seed(child)?;
            }
        }
        Ok(())
    }
}

/// A path of object keys from the root, as [`KeySeed`] matches it.
pub(crate) trait KeyPath {
    /// The key at `depth` (0 for a key of the root object), if the path goes that deep.
    fn key(&self, depth: usize) -> Option<&str>;
}

impl KeyPath for &[&str] {
    fn key(&self, depth: usize) -> Option<&str> {
        self.get(depth).copied()
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
        let open = "[".repeat(10_000);
        assert!(peek(open.as_bytes(), []).is_err());
        assert!(peek(format!(r#"{{"id":1,"x":{open}"#).as_bytes(), [&["id"]]).is_err());
        // Balanced deep nesting is skipped iteratively by serde_json: accepted, no recursion.
        let balanced = format!(r#"{{"x":{open}{},"id":1}}"#, "]".repeat(10_000));
        assert_eq!(
            peek(balanced.as_bytes(), [&["id"]]).unwrap(),
            [Some(Scalar::U64(1))]
        );
        let objects = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
        assert!(peek(objects.as_bytes(), [&["a", "a", "a"]]).unwrap()[0].is_none());
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
