//! Closed-loop load generator for the harness (`scripts/load.sh`): `concurrency` keep-alive
//! connections to 127.0.0.1, each sending the next request as soon as the last is answered.
//!
//! Run with `cargo run --release --example load_gen -- <port> <concurrency> <body bytes>
//! <seconds>`. Every request is a Stripe-signed delivery of `body bytes` (a pretty-printed
//! Stripe-like event, as Stripe sends them, `benches/support/event.rs`) with a distinct
//! `x-delivery-id`; each connection signs the body when it starts and again every minute, so
//! runs longer than the 5-minute tolerance stay fresh. Prints one JSON line: requests per
//! second, p50 and p99 latency in microseconds, requests, errors (non-2xx or failed).

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

#[path = "../benches/support/event.rs"]
#[allow(unreachable_pub)]
mod event;

const SECRET: &str = "whsec_load_test_secret";

/// One connection's loop until `deadline`: latencies in microseconds, and errors.
async fn connection(
    port: u16,
    body: Bytes,
    ids: Arc<AtomicU64>,
    warmup_until: Instant,
    deadline: Instant,
) -> Result<(Vec<u32>, u64), webhook_monitor::BoxError> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut errors = 0;
    let mut id = itoa_buffer();
    let (mut signature, mut signed_at) = (sign(&body)?, Instant::now());
    while Instant::now() < deadline {
        if signed_at.elapsed() > Duration::from_secs(60) {
            (signature, signed_at) = (sign(&body)?, Instant::now());
        }
        let n = ids.fetch_add(1, Ordering::Relaxed);
        let req = Request::post("/hook")
            .header("content-type", "application/json")
            .header("stripe-signature", signature.clone())
            .header("x-delivery-id", id.format(n))
            .body(Full::new(body.clone()))?;
        sender.ready().await?;
        let start = Instant::now();
        let res = sender.send_request(req).await?;
        let ok = res.status().is_success();
        res.into_body().collect().await?;
        let took = start.elapsed();
        if start >= warmup_until {
            latencies.push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
            errors += u64::from(!ok);
        }
    }
    Ok((latencies, errors))
}

/// The `Stripe-Signature` for `body`, now.
fn sign(body: &[u8]) -> Result<HeaderValue, webhook_monitor::BoxError> {
    let t = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut headers = webhook_monitor::testing::stripe(SECRET, body, t);
    headers
        .remove("stripe-signature")
        .ok_or_else(|| "no signature".into())
}

/// Formats ids without allocating a new `String` each time.
struct IdBuffer(String);
fn itoa_buffer() -> IdBuffer {
    IdBuffer(String::with_capacity(32))
}
impl IdBuffer {
    fn format(&mut self, n: u64) -> HeaderValue {
        use std::fmt::Write;
        self.0.clear();
        let _ = write!(self.0, "evt_{}_{n}", std::process::id());
        HeaderValue::from_str(&self.0).expect("ASCII")
    }
}

fn main() -> Result<(), webhook_monitor::BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let port = u16::try_from(arg(0, 3000))?;
    let concurrency = arg(1, 32);
    let body_len = usize::try_from(arg(2, 2048))?;
    let seconds = arg(3, 5);
    let warmup = Duration::from_secs(1);

    let body = Bytes::from(event::stripe_event(body_len));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let (latencies, errors, measured) = runtime.block_on(async {
        let ids = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let warmup_until = start + warmup;
        let deadline = warmup_until + Duration::from_secs(seconds);
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (body, ids) = (body.clone(), ids.clone());
                tokio::spawn(connection(port, body, ids, warmup_until, deadline))
            })
            .collect();
        let mut all = Vec::new();
        let mut errors = 0;
        for task in tasks {
            let (latencies, e) = task.await??;
            all.extend(latencies);
            errors += e;
        }
        Ok::<_, webhook_monitor::BoxError>((all, errors, deadline - warmup_until))
    })?;
    let mut sorted = latencies;
    sorted.sort_unstable();
    let pick = |q: f64| {
        let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted.get(i).copied().unwrap_or(0)
    };
    println!(
        "{{\"rps\":{:.0},\"p50_us\":{},\"p99_us\":{},\"requests\":{},\"errors\":{}}}",
        sorted.len() as f64 / measured.as_secs_f64(),
        pick(0.50),
        pick(0.99),
        sorted.len(),
        errors
    );
    Ok(())
}
