//! Who may read the dashboard ([`Auth`]), and the guard every request goes through: method,
//! credentials, the `?token=` login, and the security headers on every response.

use std::{fmt, sync::Arc};

use axum::{
    extract::{NestedPath, Request, State},
    http::{
        header::{self, HeaderMap, HeaderName, HeaderValue},
        Method, StatusCode,
    },
    middleware::Next,
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use super::{Prefix, Shared};
use crate::history::History;

/// Who may read the dashboard: the credentials [`Dashboard::auth`](super::Dashboard::auth)
/// asks for.
///
/// - [`Auth::bearer`]: `Authorization: Bearer <token>`, for scripts and the JSON API. A `&str`
///   or a `String` converts into one.
///
///   Browsers cannot send that header, so a page opened once as `<page>?token=<token>` logs
///   the browser in: the dashboard answers `303 See Other` to the same address without the
///   token (so that it leaves the address bar and the history), and sets the cookie
///   `wm_session` (`HttpOnly; SameSite=Lax`, scoped to the dashboard's path), which then
///   authenticates the browser's requests. The cookie holds an HMAC-SHA256 of a fixed label
///   keyed by the token, not the token: changing the token logs every browser out. `Lax`, not
///   `Strict`, so that the `?token=` link works when followed from a chat message or an email
///   (a `Strict` cookie is not sent on that first redirect): the dashboard only reads, so a
///   cross-site navigation gains another site nothing, and it cannot read the answer or frame
///   the page. The cookie is not marked `Secure`: serve the dashboard over HTTPS (or only on
///   loopback) so that neither it nor the token travels in the clear.
/// - [`Auth::basic`]: HTTP Basic authentication (`401` with
///   `WWW-Authenticate: Basic realm="webhook-monitor"`, so browsers ask for it).
///
/// Credentials are compared in constant time (as SHA-256 digests, so that their length does
/// not show either), and never rendered, logged or put in JSON. `Debug` shows the scheme only.
/// Missing or wrong credentials get `401` with a short plain-text body.
///
/// # Example
///
/// ```
/// use webhook_monitor::dashboard::Auth;
///
/// let auth = Auth::bearer("a-long-random-token");
/// assert_eq!(format!("{auth:?}"), "Auth { scheme: \"bearer\", .. }");
/// let auth: Auth = String::from("a-long-random-token").into();
/// # let _ = auth;
/// ```
#[derive(Clone)]
pub struct Auth {
    scheme: Scheme,
}

#[derive(Clone)]
enum Scheme {
    /// [`Dashboard::insecure_without_auth`](super::Dashboard::insecure_without_auth).
    None,
    Bearer {
        /// SHA-256 of the token.
        digest: [u8; 32],
        /// The `wm_session` cookie's value: hex HMAC-SHA256(token, [`SESSION_LABEL`]).
        session: Box<str>,
    },
    Basic {
        /// SHA-256 of `user:password`.
        digest: [u8; 32],
    },
}

/// What the session cookie's HMAC signs, keyed by the token.
const SESSION_LABEL: &[u8] = b"webhook-monitor dashboard session";
/// The session cookie's name.
const COOKIE: &str = "wm_session";

impl Auth {
    /// Requests must carry `Authorization: Bearer <token>`, or the session cookie a
    /// `?token=<token>` login sets (see [`Auth`]).
    ///
    /// Use a long random token (32 characters or more) from a secret store or the
    /// environment.
    ///
    /// # Panics
    ///
    /// If `token` is empty: that would be no authentication at all.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::dashboard::Auth;
    ///
    /// let token = std::env::var("DASHBOARD_TOKEN").unwrap_or_else(|_| "a-long-random-token".into());
    /// let auth = Auth::bearer(token);
    /// # let _ = auth;
    /// ```
    pub fn bearer(token: impl Into<String>) -> Self {
        let token = token.into();
        assert!(!token.is_empty(), "the dashboard's bearer token is empty");
        let mut mac = Hmac::<Sha256>::new_from_slice(token.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(SESSION_LABEL);
        let session = hex::encode(mac.finalize().into_bytes()).into_boxed_str();
        Self {
            scheme: Scheme::Bearer {
                digest: Sha256::digest(token.as_bytes()).into(),
                session,
            },
        }
    }

    /// Requests must carry HTTP Basic credentials for `user` and `password`.
    ///
    /// # Panics
    ///
    /// If `password` is empty.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::dashboard::Auth;
    ///
    /// let auth = Auth::basic("ops", "a-long-random-password");
    /// assert_eq!(format!("{auth:?}"), "Auth { scheme: \"basic\", .. }");
    /// ```
    pub fn basic(user: impl AsRef<str>, password: impl AsRef<str>) -> Self {
        let (user, password) = (user.as_ref(), password.as_ref());
        assert!(!password.is_empty(), "the dashboard's password is empty");
        let mut hasher = Sha256::new();
        hasher.update(user.as_bytes());
        hasher.update(b":");
        hasher.update(password.as_bytes());
        Self {
            scheme: Scheme::Basic {
                digest: hasher.finalize().into(),
            },
        }
    }

    pub(super) fn none() -> Self {
        Self {
            scheme: Scheme::None,
        }
    }

    fn scheme_name(&self) -> &'static str {
        match self.scheme {
            Scheme::None => "none",
            Scheme::Bearer { .. } => "bearer",
            Scheme::Basic { .. } => "basic",
        }
    }

    /// Whether the request's credentials are right.
    fn admits(&self, headers: &HeaderMap) -> bool {
        match &self.scheme {
            Scheme::None => true,
            Scheme::Bearer { digest, session } => {
                credentials(headers, "bearer").is_some_and(|token| same_digest(digest, token))
                    || session_cookie(headers)
                        .is_some_and(|value| bool::from(value.as_bytes().ct_eq(session.as_bytes())))
            }
            Scheme::Basic { digest } => credentials(headers, "basic")
                .and_then(|encoded| {
                    base64::engine::general_purpose::STANDARD
                        .decode(encoded)
                        .ok()
                })
                .is_some_and(|pair| same_digest(digest, &pair)),
        }
    }

    /// The answer to a request without the right credentials.
    fn challenge(&self) -> Response {
        let challenge = match self.scheme {
            Scheme::Basic { .. } => r#"Basic realm="webhook-monitor""#,
            Scheme::None | Scheme::Bearer { .. } => "Bearer",
        };
        (
            StatusCode::UNAUTHORIZED,
            [
                (header::WWW_AUTHENTICATE, challenge),
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            ],
            "401 Unauthorized: this dashboard needs credentials.\n",
        )
            .into_response()
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("scheme", &self.scheme_name())
            .finish_non_exhaustive()
    }
}

impl From<&str> for Auth {
    /// A [bearer](Auth::bearer) token.
    fn from(token: &str) -> Self {
        Self::bearer(token)
    }
}

impl From<String> for Auth {
    /// A [bearer](Auth::bearer) token.
    fn from(token: String) -> Self {
        Self::bearer(token)
    }
}

/// Whether `given`'s SHA-256 is `digest`, in constant time.
fn same_digest(digest: &[u8; 32], given: &[u8]) -> bool {
    let given: [u8; 32] = Sha256::digest(given).into();
    bool::from(given.ct_eq(digest))
}

/// The credentials of an `Authorization: <scheme> <credentials>` header (scheme matched
/// without regard to case).
fn credentials<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h [u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let at = value.iter().position(|&b| b == b' ')?;
    let (name, rest) = value.split_at(at);
    name.eq_ignore_ascii_case(scheme.as_bytes())
        .then(|| rest.trim_ascii())
}

/// The value of the `wm_session` cookie, in any `Cookie` header.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then_some(value)
        })
}

/// Every request: `405` for anything but GET and HEAD; then credentials (or the `?token=`
/// login); then the page; and the security headers on whatever answers.
pub(super) async fn guard<H: History>(
    State(shared): State<Arc<Shared<H>>>,
    mut req: Request,
    next: Next,
) -> Response {
    let prefix = prefix(&req);
    let mut res = if !matches!(*req.method(), Method::GET | Method::HEAD) {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            [
                (header::ALLOW, "GET, HEAD"),
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            ],
            "405 Method Not Allowed: the dashboard only reads.\n",
        )
            .into_response()
    } else if let Some(token) = login_token(&req) {
        login(&shared.auth, &req, &prefix, token.as_bytes())
    } else if shared.auth.admits(req.headers()) {
        req.extensions_mut().insert(Prefix(prefix.into()));
        next.run(req).await
    } else {
        shared.auth.challenge()
    };
    secure(res.headers_mut());
    res
}

/// The `token` query parameter, when the dashboard uses a bearer token.
fn login_token(req: &Request) -> Option<String> {
    let query = req.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned())
}

/// `?token=<token>`: with the right token, set the session cookie and send the browser to the
/// same address without the token.
fn login<H>(auth: &Auth, req: &Request<H>, prefix: &str, token: &[u8]) -> Response {
    let Scheme::Bearer { digest, session } = &auth.scheme else {
        return match auth.scheme {
            // No credentials needed: only drop the token from the address.
            Scheme::None => redirect(req, prefix, None),
            _ => auth.challenge(),
        };
    };
    if !same_digest(digest, token) {
        return auth.challenge();
    }
    // A prefix that could break out of the attribute scopes the cookie to the whole site
    // instead.
    let path = match prefix {
        "" => "/",
        p if p
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b';' && b != b',') =>
        {
            p
        }
        _ => "/",
    };
    let cookie = format!("{COOKIE}={session}; HttpOnly; SameSite=Lax; Path={path}");
    redirect(req, prefix, HeaderValue::from_str(&cookie).ok())
}

/// `303 See Other` to the request's address without its `token` parameter.
fn redirect<H>(req: &Request<H>, prefix: &str, cookie: Option<HeaderValue>) -> Response {
    // The address as the browser sent it: the nest path, then the path the router sees (the
    // overview, `/` inside, is the nest path itself). One leading slash: never a
    // scheme-relative `//host` address.
    let inner = req.uri().path().trim_start_matches('/');
    let mut location = match (prefix.trim_start_matches('/'), inner) {
        ("", inner) => format!("/{inner}"),
        (prefix, "") => format!("/{prefix}"),
        (prefix, inner) => format!("/{prefix}/{inner}"),
    };
    let query = req.uri().query().unwrap_or_default();
    let rest = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form_urlencoded::parse(query.as_bytes()).filter(|(name, _)| name != "token"))
        .finish();
    if !rest.is_empty() {
        location.push('?');
        location.push_str(&rest);
    }
    let mut res = StatusCode::SEE_OTHER.into_response();
    let headers = res.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, location);
    }
    if let Some(cookie) = cookie {
        headers.insert(header::SET_COOKIE, cookie);
    }
    res
}

/// The path the dashboard is nested at (axum's [`NestedPath`]), without a trailing slash; empty
/// when it is not nested.
fn prefix<B>(req: &Request<B>) -> String {
    req.extensions()
        .get::<NestedPath>()
        .map_or("", |p| p.as_str().trim_end_matches('/'))
        .to_owned()
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The headers every response carries.
fn secure(headers: &mut HeaderMap) {
    let set: [(HeaderName, &'static str); 5] = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).expect("a valid value"),
            );
        }
        map
    }

    #[test]
    fn bearer_by_header_or_cookie() {
        let auth = Auth::bearer("s3cret-token");
        let Scheme::Bearer { session, .. } = &auth.scheme else {
            unreachable!()
        };
        // hex HMAC-SHA256(key = token, "webhook-monitor dashboard session")
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret-token").expect("any length");
        mac.update(b"webhook-monitor dashboard session");
        assert_eq!(&**session, hex::encode(mac.finalize().into_bytes()));

        assert!(auth.admits(&headers(&[("authorization", "Bearer s3cret-token")])));
        assert!(auth.admits(&headers(&[("authorization", "bearer  s3cret-token ")])));
        assert!(!auth.admits(&headers(&[("authorization", "Bearer s3cret-tokem")])));
        assert!(!auth.admits(&headers(&[("authorization", "Basic s3cret-token")])));
        assert!(!auth.admits(&headers(&[])));
        let cookie = format!("a=b; {COOKIE}={session}");
        assert!(auth.admits(&headers(&[("cookie", "x=y"), ("cookie", &cookie)])));
        assert!(!auth.admits(&headers(&[("cookie", "wm_session=00")])));
    }

    #[test]
    fn basic_by_header() {
        let auth = Auth::basic("ops", "pa:ss");
        let encoded = base64::engine::general_purpose::STANDARD.encode("ops:pa:ss");
        assert!(auth.admits(&headers(&[("authorization", &format!("Basic {encoded}"))])));
        let wrong = base64::engine::general_purpose::STANDARD.encode("ops:pa:sS");
        assert!(!auth.admits(&headers(&[("authorization", &format!("Basic {wrong}"))])));
        assert!(!auth.admits(&headers(&[("authorization", "Basic !!!")])));
        assert!(Auth::none().admits(&headers(&[])));
    }

    #[test]
    fn redirects_go_to_the_address_as_sent_without_the_token() {
        let location = |inner: &str, prefix: &str| {
            let req = Request::builder()
                .uri(inner)
                .body(())
                .expect("a valid request");
            let res = redirect(&req, prefix, None);
            let location = res.headers().get(header::LOCATION).expect("a location");
            location.to_str().expect("ascii").to_owned()
        };
        assert_eq!(location("/?token=t", "/_webhooks"), "/_webhooks");
        assert_eq!(
            location("/alerts?token=t&x=1", "/_webhooks"),
            "/_webhooks/alerts?x=1"
        );
        assert_eq!(location("/alerts?token=t", ""), "/alerts");
        assert_eq!(location("/?token=t", ""), "/");
        assert_eq!(location("//evil.example/?token=t", ""), "/evil.example/");
    }
}
