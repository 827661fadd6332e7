//! The dashboard: an axum [`Router`] that shows a [`History`] — routes, charts,
//! recent deliveries, alerts and the reporter's health — as server-rendered pages and as JSON.
//!
//! Build it with [`Dashboard::new`], choose its [`Auth`], and nest it where the app wants it:
//!
//! ```no_run
//! use axum::Router;
//! use webhook_monitor::{dashboard::{Auth, Dashboard}, history::MemoryHistory, report::Reporter};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let history = MemoryHistory::new();
//! let (reporter, _guard) = Reporter::spawn(history.clone());
//! // … `WebhookMonitorLayer::new(policy, reporter.clone())` on the webhook routes …
//! let token = std::env::var("DASHBOARD_TOKEN")?;
//! let app = Router::new().nest(
//!     "/_webhooks",
//!     Dashboard::new(history).auth(Auth::bearer(token)).router(),
//! );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Pages and API
//!
//! Relative to where the router is nested (the overview is the nest path itself: `/_webhooks`, as
//! axum's `nest` does not route `/_webhooks/`):
//!
//! | path | what |
//! |---|---|
//! | `/` | every route: status, deliveries in the last hour and day, success rate, p50/p95 latency against the budget, a 24 h chart; open alerts on top |
//! | `/routes/{route}?window=1h\|6h\|24h\|48h` | one route: deliveries and latency charts over the window, its figures, and its recent deliveries, filtered by `outcome`, `event_type`, `delivery_id`, paged by `before` |
//! | `/routes/{route}/deliveries/{id}` | one recorded delivery: every field of its report, its timings, its other attempts |
//! | `/alerts` | open and resolved alerts |
//! | `/health` | the reporter's latest health report: its counters and each sink's; for a history a fleet shares, its instances (heartbeats, the lease's holder, figures from their health reports) and a warning for each instance whose fleet view is stale |
//! | `/api/…` | the same figures as JSON: `overview`, `routes/{route}`, `routes/{route}/deliveries`, `routes/{route}/deliveries/{id}`, `alerts`, `health` (documented in `docs/dashboard-api.md`) |
//! | `/assets/style.css`, `/assets/app.js`, `/assets/icon.svg` | the stylesheet, the live-refresh script and the page icon, served from the binary |
//!
//! The pages work without JavaScript; with it, the page refreshes itself every
//! [`refresh`](Dashboard::refresh) period, with a toggle to stop it.
//!
//! # Security
//!
//! A page that shows traffic is sensitive, so a router cannot be built without deciding who
//! may read it: [`Dashboard::router`] exists only once [`auth`](Dashboard::auth) (or the loudly
//! named [`insecure_without_auth`](Dashboard::insecure_without_auth)) was called. See [`Auth`]
//! for the schemes, and the browser login by `?token=`.
//!
//! Only `GET` and `HEAD` are served (anything else is `405`). Every response carries a strict
//! `Content-Security-Policy` (no inline script or style, nothing from elsewhere),
//! `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, `X-Frame-Options: DENY`
//! and `Cache-Control: no-store`. Everything shown is escaped; no secret of a route or of the
//! dashboard is ever rendered. When the history cannot be read, pages and API answer `503`
//! without the error's details.

mod api;
mod auth;
mod chart;
mod pages;
mod view;

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime},
};

use axum::{routing::get, Router};

pub use auth::Auth;

use crate::history::History;

/// The dashboard's builder: [`new`](Self::new), then [`auth`](Self::auth), then
/// [`router`](Self::router).
///
/// `A` is the authentication state. A new dashboard is `Dashboard<H, NeedsAuth>`, which has no
/// `router()`: calling [`auth`](Self::auth) (or
/// [`insecure_without_auth`](Self::insecure_without_auth)) turns it into a `Dashboard<H, Auth>`,
/// which has. Forgetting the authentication is a compile error, not an open dashboard:
///
/// ```compile_fail
/// use webhook_monitor::{dashboard::Dashboard, history::MemoryHistory};
///
/// let router: axum::Router = Dashboard::new(MemoryHistory::new()).router(); // no auth chosen
/// ```
///
/// # Example
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use webhook_monitor::{dashboard::{Auth, Dashboard}, history::MemoryHistory};
///
/// let history = Arc::new(MemoryHistory::new());
/// let router: axum::Router = Dashboard::new(Arc::clone(&history))
///     .auth(Auth::basic("ops", "a-long-random-password"))
///     .refresh(Duration::from_secs(30))
///     .router();
/// let app = axum::Router::new().nest("/_webhooks", router);
/// # let _: axum::Router = app;
/// ```
pub struct Dashboard<H, A = NeedsAuth> {
    history: H,
    auth: A,
    clock: Clock,
    refresh: Duration,
}

/// The state of a [`Dashboard`] whose authentication is not chosen yet: it has no
/// [`router`](Dashboard::router). Call [`Dashboard::auth`] or
/// [`Dashboard::insecure_without_auth`].
///
/// # Example
///
/// ```
/// use webhook_monitor::{dashboard::{Dashboard, NeedsAuth}, history::MemoryHistory};
///
/// let pending: Dashboard<MemoryHistory, NeedsAuth> = Dashboard::new(MemoryHistory::new());
/// let router: axum::Router = pending.auth("a-long-random-token").router();
/// # let _ = router;
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct NeedsAuth;

type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

impl<H> Dashboard<H, NeedsAuth> {
    /// A dashboard over `history`: a [`MemoryHistory`](crate::history::MemoryHistory) (clones
    /// share it), an `Arc` of one, or any [`History`].
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::{dashboard::Dashboard, history::MemoryHistory};
    ///
    /// let history = MemoryHistory::new();
    /// let dashboard = Dashboard::new(history.clone());
    /// # let _ = dashboard;
    /// ```
    #[must_use]
    pub fn new(history: H) -> Self {
        Self {
            history,
            auth: NeedsAuth,
            clock: Arc::new(SystemTime::now),
            refresh: Self::DEFAULT_REFRESH,
        }
    }

    /// Who may read the dashboard: a bearer token (a `&str` or `String` is one) or a user and
    /// password. See [`Auth`].
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::{dashboard::{Auth, Dashboard}, history::MemoryHistory};
    ///
    /// let token = "a-long-random-token"; // from the environment or a secret store
    /// let router: axum::Router = Dashboard::new(MemoryHistory::new()).auth(token).router();
    /// let router: axum::Router =
    ///     Dashboard::new(MemoryHistory::new()).auth(Auth::bearer(token)).router();
    /// # let _ = router;
    /// ```
    #[must_use]
    pub fn auth(self, auth: impl Into<Auth>) -> Dashboard<H, Auth> {
        self.with_auth(auth.into())
    }

    /// Serves the dashboard to anyone who can reach it, without credentials.
    ///
    /// Only for a dashboard already behind something that authenticates (a reverse proxy, a
    /// VPN-only listener, the app's own auth layer), or on a developer's machine: the pages
    /// show every route's traffic.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::{dashboard::Dashboard, history::MemoryHistory};
    ///
    /// // Behind the app's own authentication middleware.
    /// let router: axum::Router = Dashboard::new(MemoryHistory::new())
    ///     .insecure_without_auth()
    ///     .router();
    /// # let _ = router;
    /// ```
    #[must_use]
    pub fn insecure_without_auth(self) -> Dashboard<H, Auth> {
        self.with_auth(Auth::none())
    }

    fn with_auth(self, auth: Auth) -> Dashboard<H, Auth> {
        Dashboard {
            history: self.history,
            auth,
            clock: self.clock,
            refresh: self.refresh,
        }
    }
}

impl<H, A> Dashboard<H, A> {
    /// The live-refresh period by default: 10 seconds.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use webhook_monitor::{dashboard::Dashboard, history::MemoryHistory};
    ///
    /// // Refresh half as often as by default.
    /// let period = Dashboard::<MemoryHistory>::DEFAULT_REFRESH * 2;
    /// let dashboard = Dashboard::new(MemoryHistory::new()).refresh(period);
    /// # let _ = dashboard;
    /// ```
    pub const DEFAULT_REFRESH: Duration = Duration::from_secs(10);

    /// Where "now" comes from: the relative times ("3 min ago"), the charts' windows and the
    /// alerts' durations are computed against it. Defaults to [`SystemTime::now`]; tests pin
    /// it.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use webhook_monitor::{dashboard::Dashboard, history::MemoryHistory};
    ///
    /// let pinned = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    /// let dashboard = Dashboard::new(MemoryHistory::new()).clock(move || pinned);
    /// # let _ = dashboard;
    /// ```
    #[must_use]
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How often an open page refreshes itself (in the browser, when the "live" toggle is
    /// on). Defaults to [`DEFAULT_REFRESH`](Self::DEFAULT_REFRESH), 10 seconds; it is rounded
    /// to whole seconds, at least one. Without JavaScript the pages do not refresh.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use webhook_monitor::{dashboard::Dashboard, history::MemoryHistory};
    ///
    /// let dashboard = Dashboard::new(MemoryHistory::new()).refresh(Duration::from_secs(60));
    /// # let _ = dashboard;
    /// ```
    #[must_use]
    pub fn refresh(mut self, period: Duration) -> Self {
        self.refresh = period;
        self
    }
}

impl<H: History> Dashboard<H, Auth> {
    /// The router, to [`nest`](axum::Router::nest) in the app (or to serve as it is). Links in
    /// the pages follow the path it is nested at (axum's
    /// [`NestedPath`](axum::extract::NestedPath)), so nest it at a fixed path: under a path
    /// parameter (`/{tenant}/_webhooks`) its links would name the parameter, not its value.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::{dashboard::Dashboard, history::MemoryHistory};
    ///
    /// let history = MemoryHistory::new();
    /// let app = axum::Router::new()
    ///     .nest("/_webhooks", Dashboard::new(history).auth("a-long-random-token").router());
    /// # let _: axum::Router = app;
    /// ```
    pub fn router(self) -> Router {
        let shared = Arc::new(Shared {
            history: self.history,
            auth: self.auth,
            clock: self.clock,
            refresh_secs: self.refresh.as_secs().max(1),
        });
        Router::new()
            .route("/", get(pages::overview::<H>))
            .route("/routes/{route}", get(pages::route::<H>))
            .route("/routes/{route}/deliveries/{id}", get(pages::delivery::<H>))
            .route("/alerts", get(pages::alerts::<H>))
            .route("/health", get(pages::health::<H>))
            .route("/api/overview", get(api::overview::<H>))
            .route("/api/routes/{route}", get(api::route::<H>))
            .route("/api/routes/{route}/deliveries", get(api::deliveries::<H>))
            .route(
                "/api/routes/{route}/deliveries/{id}",
                get(api::delivery::<H>),
            )
            .route("/api/alerts", get(api::alerts::<H>))
            .route("/api/health", get(api::health::<H>))
            .route("/assets/style.css", get(pages::style))
            .route("/assets/app.js", get(pages::script))
            .route("/assets/icon.svg", get(pages::icon))
            .fallback(not_found::<H>)
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(&shared),
                auth::guard::<H>,
            ))
            .with_state(shared)
    }
}

impl<H, A: fmt::Debug> fmt::Debug for Dashboard<H, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dashboard")
            .field("auth", &self.auth)
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

/// What every handler reads.
pub(crate) struct Shared<H> {
    pub(crate) history: H,
    pub(crate) auth: Auth,
    pub(crate) clock: Clock,
    pub(crate) refresh_secs: u64,
}

impl<H> Shared<H> {
    pub(crate) fn now(&self) -> SystemTime {
        (self.clock)()
    }
}

/// The path the router is nested at (`""` when it is not): links and
/// the session cookie's path are built from it. Set by the guard.
#[derive(Debug, Clone)]
pub(crate) struct Prefix(pub(crate) Arc<str>);

/// Anything the routes do not match: a 404 page, or JSON under `/api/`.
async fn not_found<H>(
    axum::extract::State(shared): axum::extract::State<Arc<Shared<H>>>,
    uri: axum::http::Uri,
    axum::Extension(Prefix(prefix)): axum::Extension<Prefix>,
) -> axum::response::Response {
    let failure = view::Failure::NotFound("no such page");
    if uri.path().starts_with("/api/") {
        api::failure(&failure)
    } else {
        pages::failure(&prefix, shared.now(), &failure)
    }
}
