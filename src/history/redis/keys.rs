//! The key layout of [`RedisHistory`](super::RedisHistory): one place that names every key.
//!
//! A route's keys share the hash tag `{<route>}`, so each route's keys sit in one slot of a
//! Redis Cluster and every pipeline or script on them touches one shard; the fleet's own keys
//! (routes, instances, alerts, the lease) share the tag `{fleet}`.

use std::fmt::Write as _;

use crate::watch::Alert;

/// Builds key names under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: Box<str>,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    fn route_key(&self, route: &str, suffix: std::fmt::Arguments<'_>) -> String {
        let mut key = String::with_capacity(self.prefix.len() + route.len() + 24);
        let _ = write!(key, "{}{{{route}}}:{suffix}", self.prefix);
        key
    }

    fn fleet_key(&self, suffix: &str) -> String {
        format!("{}{{fleet}}:{suffix}", self.prefix)
    }

    /// HASH: the route's rollup of one minute (minutes since the epoch).
    pub(crate) fn minute(&self, route: &str, minute: u64) -> String {
        self.route_key(route, format_args!("m:{minute}"))
    }

    /// HASH: the route's deliveries per instance in one minute: `n:`, `h:` and `x:` + instance.
    pub(crate) fn instance_minute(&self, route: &str, minute: u64) -> String {
        self.route_key(route, format_args!("i:{minute}"))
    }

    /// HASH: the route's latency histogram of one day (days since the epoch).
    pub(crate) fn day(&self, route: &str, day: u64) -> String {
        self.route_key(route, format_args!("d:{day}"))
    }

    /// STREAM: the route's recent deliveries, capped.
    pub(crate) fn log(&self, route: &str) -> String {
        self.route_key(route, format_args!("log"))
    }

    /// HASH: what is known of the route: `provider`, `budget_ms`, `first` (its first minute).
    pub(crate) fn info(&self, route: &str) -> String {
        self.route_key(route, format_args!("info"))
    }

    /// HASH: instance → its last delivery on the route, in ms since the epoch.
    pub(crate) fn seen(&self, route: &str) -> String {
        self.route_key(route, format_args!("seen"))
    }

    /// HASH: instance → its current run of failed deliveries on the route.
    pub(crate) fn run(&self, route: &str) -> String {
        self.route_key(route, format_args!("run"))
    }

    /// HASH: the fleet watchers' alert states on the route: slot → `opened_ms:resolved_ms`.
    pub(crate) fn slots(&self, route: &str) -> String {
        self.route_key(route, format_args!("slots"))
    }

    /// SET: every route name.
    pub(crate) fn routes(&self) -> String {
        self.fleet_key("routes")
    }

    /// HASH: instance → its last heartbeat, in ms since the epoch.
    pub(crate) fn instances(&self) -> String {
        self.fleet_key("instances")
    }

    /// HASH: instance → its first heartbeat, in ms since the epoch.
    pub(crate) fn started(&self) -> String {
        self.fleet_key("started")
    }

    /// STRING: an instance's latest health report (JSON).
    pub(crate) fn health(&self, instance: &str) -> String {
        self.fleet_key(&format!("health:{instance}"))
    }

    /// HASH: open alerts, [`alert_field`] → the alert (JSON).
    pub(crate) fn open_alerts(&self) -> String {
        self.fleet_key("alerts:open")
    }

    /// LIST: resolved alerts (JSON), newest first, capped.
    pub(crate) fn resolved_alerts(&self) -> String {
        self.fleet_key("alerts:resolved")
    }

    /// STRING: the fleet watchers' lease: the holder's instance id, with a TTL.
    pub(crate) fn lease(&self) -> String {
        self.fleet_key("lease")
    }
}

/// An open alert's field in [`Keys::open_alerts`]: route, kind and instance, separated by
/// `\u{1f}` (unit separator), which no route name or instance id needs.
fn alert_field(route: &str, kind: &str, instance: Option<&str>) -> String {
    let mut field = format!("{route}\u{1f}{kind}");
    if let Some(instance) = instance {
        field.push('\u{1f}');
        field.push_str(instance);
    }
    field
}

/// [`alert_field`] of `alert`.
pub(crate) fn alert_field_of(alert: &Alert) -> String {
    alert_field(&alert.route, alert.kind.as_str(), alert.instance.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_routes_keys_share_its_hash_tag() {
        let keys = Keys::new("app:");
        assert_eq!(keys.minute("orders", 7), "app:{orders}:m:7");
        assert_eq!(keys.log("orders"), "app:{orders}:log");
        assert_eq!(keys.lease(), "app:{fleet}:lease");
        assert_eq!(keys.health("a"), "app:{fleet}:health:a");
    }
}
