//! What identifies a delivery in the store: its id, when the signature vouches for it, or its
//! body.

use http::HeaderMap;
use sha2::Digest as _;

use super::DedupeKey;
use crate::{Fingerprint, Policy};

/// The store key of a delivery: the route's name and its delivery id when the route's scheme
/// vouches for the id, the route's name and the body's SHA-256 otherwise.
///
/// An id the signature does not cover (a header the scheme does not sign) is attacker's data:
/// keyed on it, a signed body replayed under a fresh id would run again, and leave a new key
/// behind each time. A route without a scheme verifies nothing and trusts its ids.
///
/// The body's SHA-256 is the delivery's `fingerprint` when that is one (the policy's
/// [`FingerprintAlgorithm::Sha256`](crate::FingerprintAlgorithm::Sha256)): the body is not
/// hashed twice.
pub(crate) fn delivery_key(
    policy: &Policy,
    id: Option<&str>,
    fingerprint: Option<&Fingerprint>,
    headers: &HeaderMap,
    body: &[u8],
) -> String {
    // Sized up front: `format!` would grow (reallocate) the string as it writes.
    let join = |kind: &str, value: &str| {
        let mut key = String::with_capacity(policy.name.len() + kind.len() + value.len());
        key.push_str(&policy.name);
        key.push_str(kind);
        key.push_str(value);
        key
    };
    match id.filter(|_| policy.dedupe_key == DedupeKey::DeliveryId && vouched(policy, headers)) {
        Some(id) => join(":id:", id),
        None => {
            let digest: [u8; 32] = match fingerprint {
                Some(Fingerprint::Sha256(digest)) => *digest,
                _ => sha2::Sha256::digest(body).into(),
            };
            join(":sha256:", &hex::encode(digest))
        }
    }
}

/// Whether the route's signature vouches for its delivery id in a request with `headers`.
fn vouched(policy: &Policy, headers: &HeaderMap) -> bool {
    match (&policy.scheme, &policy.delivery_id) {
        (None, _) => true,
        (Some(scheme), Some(source)) => scheme.covers(source, headers),
        (Some(_), None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Source;

    const BODY: &[u8] = br#"{"id":"evt_1"}"#;
    const BODY_SHA256: &str = "sha256:";

    fn key(policy: &Policy, id: Option<&str>, headers: &[(&'static str, &str)]) -> String {
        let headers: HeaderMap = headers
            .iter()
            .map(|(n, v)| (http::HeaderName::from_static(n), v.parse().unwrap()))
            .collect();
        delivery_key(policy, id, None, &headers, BODY)
    }

    #[test]
    fn a_signed_id_is_the_key_an_unsigned_one_is_not() {
        // Stripe signs the body, and its id is a body field.
        let stripe = Policy::stripe("whsec_test");
        assert_eq!(key(&stripe, Some("evt_1"), &[]), "stripe:id:evt_1");
        // GitHub signs the body only: X-GitHub-Delivery is anyone's to change.
        let github = Policy::github("secret");
        let digest = key(&github, Some("guid-1"), &[]);
        assert!(digest.starts_with("github:sha256:"), "{digest}");
        assert_eq!(
            key(&github, Some("guid-2"), &[]),
            digest,
            "a fresh id changes nothing"
        );
        // Standard Webhooks signs `webhook-id`; a Svix route's `svix-id` only when the request
        // was checked with the `svix-*` headers.
        let sw = Policy::standard_webhooks(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]).unwrap();
        let checked_by_webhook_headers = [("webhook-signature", "v1,x")];
        assert_eq!(
            key(&sw, Some("msg_1"), &checked_by_webhook_headers),
            "standard_webhooks:id:msg_1"
        );
        let svix = Policy::svix(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]).unwrap();
        assert_eq!(
            key(&svix, Some("msg_1"), &[("svix-signature", "v1,x")]),
            "svix:id:msg_1"
        );
        // Checked with the `webhook-*` headers: `svix-id` is vouched for when it holds the
        // signed `webhook-id`'s value (Svix sends both), and only then.
        let both = [("webhook-signature", "v1,x"), ("svix-signature", "v1,x")];
        let ids = |svix_id| {
            [
                both[0],
                both[1],
                ("webhook-id", "msg_1"),
                ("svix-id", svix_id),
            ]
        };
        assert_eq!(key(&svix, Some("msg_1"), &ids("msg_1")), "svix:id:msg_1");
        assert!(key(&svix, Some("msg_2"), &ids("msg_2")).contains(BODY_SHA256));
        assert!(key(&svix, Some("msg_1"), &both).contains(BODY_SHA256));
        // GitLab's token signs nothing; Mailgun signs its token, not its event data.
        assert!(key(&Policy::gitlab("t"), Some("idem-1"), &[]).contains(BODY_SHA256));
        let mailgun = Policy::mailgun("key");
        assert_eq!(key(&mailgun, Some("tok"), &[]), "mailgun:id:tok");
        let by_event_id = mailgun.delivery_id(Source::json("/event-data/id"));
        assert!(key(&by_event_id, Some("ev"), &[]).contains(BODY_SHA256));
    }

    #[test]
    fn a_sha256_fingerprint_is_the_digest_not_hashed_again() {
        let github = Policy::github("secret");
        let headers = HeaderMap::new();
        let from_body = key(&github, Some("guid-1"), &[]);
        let fingerprint = Fingerprint::of(crate::FingerprintAlgorithm::Sha256, BODY);
        let reused = delivery_key(&github, Some("guid-1"), Some(&fingerprint), &headers, BODY);
        assert_eq!(reused, from_body);
        // The fingerprint is taken as it is: the body is not read again.
        let other = Fingerprint::of(crate::FingerprintAlgorithm::Sha256, b"another body");
        let taken = delivery_key(&github, Some("guid-1"), Some(&other), &headers, BODY);
        assert_ne!(taken, from_body);
        // An XXH3 fingerprint is no digest: the body is hashed.
        let xxh3 = Fingerprint::of(crate::FingerprintAlgorithm::Xxh3_128, BODY);
        let hashed = delivery_key(&github, Some("guid-1"), Some(&xxh3), &headers, BODY);
        assert_eq!(hashed, from_body);
    }

    #[test]
    fn a_route_without_a_scheme_trusts_its_ids() {
        let policy = Policy::custom("orders").delivery_id(Source::header("x-id"));
        assert_eq!(key(&policy, Some("7"), &[]), "orders:id:7");
        let by_body = policy.dedupe_key(DedupeKey::BodySha256);
        assert!(key(&by_body, Some("7"), &[]).starts_with("orders:sha256:"));
        assert!(key(&Policy::custom("orders"), None, &[]).starts_with("orders:sha256:"));
    }
}
