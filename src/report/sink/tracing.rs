use tracing::{info, warn};

use super::{Sink, SinkError};
use crate::report::{DeliveryReport, Report};

/// The embedded default sink: one structured `tracing` event per report.
///
/// Events use the target `webhook_monitor::delivery`. Successes are logged at `INFO`; every other
/// outcome, and any flagged delivery, at `WARN`. Fields: `route`, `provider`, `delivery_id`,
/// `event_type`, `attempt`, `status`, `outcome`, `detail`, `reason`, `payload_check` and
/// `payload_message` (the failed payload check's name and message), `body_read_us`,
/// `handler_us`, `total_us`, `body_bytes`, `fingerprint`, `times_seen`, `flags` (comma-separated)
/// and `fields` (the handler's custom fields as JSON).
///
/// Alerts use the target `webhook_monitor::alert`, at `WARN`, with the fields `kind`, `route`,
/// `severity`, `state`, and the alert's one-line summary as the message. Health reports use the
/// target `webhook_monitor::health`, at `INFO`, or `WARN` while a backend is down.
///
/// # Example
///
/// ```
/// use webhook_monitor::report::{Reporter, TracingSink};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (reporter, _guard) = Reporter::spawn(TracingSink::new());
/// # drop(reporter);
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct TracingSink;

impl TracingSink {
    /// A tracing sink.
    pub fn new() -> Self {
        Self
    }
}

impl Sink for TracingSink {
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        for report in batch {
            match report {
                Report::Delivery(d) => log(d),
                Report::Alert(a) => warn!(
                    target: "webhook_monitor::alert",
                    kind = a.kind.as_str(),
                    route = &*a.route,
                    severity = a.severity.as_str(),
                    state = a.state.as_str(),
                    "{a}"
                ),
                Report::Health(h) if h.sinks.iter().any(|s| s.down) => {
                    warn!(target: "webhook_monitor::health", "{h}");
                }
                Report::Health(h) => info!(target: "webhook_monitor::health", "{h}"),
            }
        }
        Ok(())
    }
}

fn log(r: &DeliveryReport) {
    let d = &r.delivery;
    let fields = (!r.fields.is_empty())
        .then(|| serde_json::to_string(&crate::report::FieldMap(&r.fields)).ok())
        .flatten();
    macro_rules! event {
        ($level:ident) => {
            $level!(
                target: "webhook_monitor::delivery",
                route = d.route(),
                provider = d.provider(),
                delivery_id = d.id(),
                event_type = d.event_type(),
                attempt = d.attempt(),
                status = r.status.map(|s| s.as_u16()),
                outcome = r.outcome.as_str(),
                detail = r.outcome.detail(),
                reason = r.reason.as_deref(),
                payload_check = r.payload.as_ref().map(|v| v.check()),
                payload_message = r.payload.as_ref().map(tracing::field::display),
                body_read_us = crate::report::micros(r.body_read),
                handler_us = crate::report::micros(r.handler),
                total_us = crate::report::micros(r.total),
                body_bytes = d.body_len(),
                fingerprint = d.fingerprint().map(tracing::field::display),
                times_seen = d.times_seen(),
                flags = %r.flags,
                fields = fields.as_deref(),
                "webhook delivery"
            )
        };
    }
    if r.outcome.is_success() && r.flags == Default::default() {
        event!(info);
    } else {
        event!(warn);
    }
}
