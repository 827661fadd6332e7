//! The buffered request body: [`WebhookBody`], and reading a body under a limit.

use std::{
    convert::Infallible,
    future::{poll_fn, Future},
    pin::{pin, Pin},
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Buf, BufMut, Bytes};
use http_body::{Body, Frame, SizeHint};
use http_body_util::LengthLimitError;
use tokio::time::{Instant, Sleep};

use crate::BoxError;

/// The buffered request body the inner service receives: the raw bytes as the provider sent them.
///
/// It is a single data frame, so axum's `Bytes`, `String` and `Json` extractors read it without
/// copying. Trailers of the original request are not kept (webhook senders don't send any).
///
/// # Example
///
/// ```
/// use http_body_util::BodyExt;
/// use webhook_monitor::WebhookBody;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let body = WebhookBody::from(bytes::Bytes::from_static(b"{\"id\":1}"));
/// let bytes = body.collect().await.unwrap().to_bytes();
/// assert_eq!(&bytes[..], b"{\"id\":1}");
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct WebhookBody {
    data: Option<Bytes>,
}

impl From<Bytes> for WebhookBody {
    fn from(data: Bytes) -> Self {
        Self {
            data: (!data.is_empty()).then_some(data),
        }
    }
}

impl Body for WebhookBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.data.take().map(|d| Ok(Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// More than the limit: `read` bytes had arrived when it was crossed (or when an outer
    /// layer's own limit stopped the body).
    TooLarge { read: u64 },
    /// The body's stream failed after `read` bytes.
    Read { read: u64, source: BoxError },
    /// The deadline passed with `read` bytes in.
    TimedOut { read: u64 },
}

/// The most a body of several frames is given before more of it arrives, whatever it declares.
const FIRST_CAPACITY: usize = 16 * 1024;

/// Reads a whole body, failing as soon as it exceeds `limit` bytes (inclusive limit), or when
/// `timeout` has passed since `from` (`Duration::MAX`: never).
///
/// A body that arrives as one data frame is returned as that frame's `Bytes`, without a copy;
/// only a body of several frames is gathered into one buffer. This is what
/// `Limited::new(body, limit).collect()` does, minus its boxed error and chunk list.
///
/// Every byte here is unauthenticated, so what is allocated follows what has arrived: the
/// buffer starts at [`FIRST_CAPACITY`] at most and doubles as bytes come, up to the size the
/// body declared (an honest body ends in one buffer of its exact size). A client that declares
/// 25 MiB and trickles bytes holds a few KiB until the deadline. The deadline's timer is armed
/// only once the body keeps us waiting: a body already in costs no timer.
pub(crate) async fn read_body<B>(
    body: B,
    limit: usize,
    from: Instant,
    timeout: Duration,
) -> Result<Bytes, BodyError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let mut body = pin!(body);
    // The most the body says it will be (its `Content-Length`; the limit when it does not say,
    // as a chunked body): a cap on the buffer's growth, never a reason to allocate.
    let declared = body
        .size_hint()
        .upper()
        .and_then(|n| usize::try_from(n).ok())
        .map_or(limit, |n| n.min(limit));
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    let mut first: Option<Bytes> = None;
    let mut gathered: Option<Vec<u8>> = None;
    let mut len = 0usize;
    loop {
        let next = poll_fn(|cx| {
            if let Poll::Ready(frame) = body.as_mut().poll_frame(cx) {
                return Poll::Ready(Some(frame));
            }
            // The deadline is worked out only now: a body already in never needs it.
            let Some(deadline) = from.checked_add(timeout) else {
                return Poll::Pending;
            };
            let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            timer.as_mut().poll(cx).map(|()| None)
        })
        .await;
        let Some(frame) = next else {
            return Err(BodyError::TimedOut { read: len as u64 });
        };
        let Some(frame) = frame else {
            break;
        };
        let frame = frame.map_err(|e| classify_error(e.into(), len as u64))?;
        let Ok(mut data) = frame.into_data() else {
            continue; // trailers
        };
        let n = data.remaining();
        len = len.saturating_add(n);
        if len > limit {
            return Err(BodyError::TooLarge { read: len as u64 });
        }
        if let Some(buf) = &mut gathered {
            reserve(buf, n, declared);
            buf.put(data);
        } else if let Some(head) = first.take() {
            let mut buf = Vec::new();
            reserve(&mut buf, len, declared);
            buf.put(head);
            buf.put(data);
            gathered = Some(buf);
        } else {
            first = Some(data.copy_to_bytes(n));
        }
        // A body that knows it is over (a `Content-Length` reached, a single-frame body) is not
        // polled once more just to say so.
        if body.is_end_stream() {
            break;
        }
    }
    Ok(match gathered {
        Some(buf) => Bytes::from(buf),
        None => first.unwrap_or_default(),
    })
}

/// Makes room in `buf` for `additional` more bytes: double its capacity (at least
/// [`FIRST_CAPACITY`]) but not past what the body `declared`; past that (a body that sends
/// more than it said), double all the same. Growth by doubling keeps the copying linear in what
/// arrives, however small the frames.
fn reserve(buf: &mut Vec<u8>, additional: usize, declared: usize) {
    let needed = buf.len().saturating_add(additional);
    if needed <= buf.capacity() {
        return;
    }
    let doubled = buf.capacity().saturating_mul(2);
    let target = if needed <= declared {
        doubled.max(FIRST_CAPACITY).min(declared).max(needed)
    } else {
        doubled.max(needed)
    };
    buf.reserve_exact(target - buf.len());
}

fn classify_error(source: BoxError, read: u64) -> BodyError {
    if is_length_limit(&*source) {
        BodyError::TooLarge { read }
    } else {
        BodyError::Read { read, source }
    }
}

/// `true` if a length limit error is anywhere in the chain: an outer layer may have limited the
/// body, and wrappers such as `axum::body::Body` hide that error behind their own.
fn is_length_limit(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<LengthLimitError>() {
            return true;
        }
        cur = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use std::{collections::VecDeque, fmt};

    use http_body_util::{BodyExt, Full, Limited, StreamBody};

    use super::*;

    /// A body of fixed-size frames with no size hint, like a chunked upload.
    struct Chunks(VecDeque<Bytes>);

    impl Chunks {
        fn new(total: usize, chunk: usize) -> Self {
            let data = vec![b'x'; total];
            Self(data.chunks(chunk).map(Bytes::copy_from_slice).collect())
        }
    }

    impl Body for Chunks {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    #[tokio::test]
    async fn single_frame_is_not_copied() {
        let data = Bytes::from(vec![7u8; 2048]);
        let out = read_body(Full::new(data.clone()), 4096, Instant::now(), Duration::MAX)
            .await
            .unwrap();
        assert_eq!(out.as_ptr(), data.as_ptr(), "same buffer, no copy");
    }

    #[tokio::test]
    async fn frames_are_gathered_and_limit_is_inclusive() {
        let out = read_body(Chunks::new(100, 3), 100, Instant::now(), Duration::MAX)
            .await
            .unwrap();
        assert_eq!(out.len(), 100);
        let err = read_body(Chunks::new(101, 3), 100, Instant::now(), Duration::MAX)
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { read: 101 }), "{err:?}");
        assert!(
            read_body(Chunks::new(0, 3), 0, Instant::now(), Duration::MAX)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn outer_limit_wrapped_in_another_error_is_too_large() {
        #[derive(Debug)]
        struct Wrapper(BoxError);
        impl fmt::Display for Wrapper {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("wrapped")
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&*self.0)
            }
        }
        let outer = Limited::new(Chunks::new(50, 10), 20);
        let wrapped = outer.map_err(Wrapper);
        let err = read_body(wrapped, 1000, Instant::now(), Duration::MAX)
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn stream_error_is_a_read_error() {
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
            Ok(Frame::data(Bytes::from_static(b"abc"))),
            Err(std::io::Error::other("connection reset")),
        ];
        let body = StreamBody::new(futures_util::stream::iter(frames));
        let err = read_body(body, 1000, Instant::now(), Duration::MAX)
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::Read { read: 3, .. }), "{err:?}");
    }

    /// The growth of a gathered body's buffer, frame by frame.
    fn capacities(declared: usize, frames: impl IntoIterator<Item = usize>) -> Vec<usize> {
        let mut buf = Vec::new();
        frames
            .into_iter()
            .map(|n| {
                reserve(&mut buf, n, declared);
                buf.resize(buf.len() + n, 0);
                buf.capacity()
            })
            .collect()
    }

    #[test]
    fn the_buffer_follows_what_arrives_not_what_is_declared() {
        // Declared 25 MiB, sent a byte at a time: one first buffer, however much is declared.
        let trickle = capacities(25 << 20, std::iter::repeat_n(1, 1000));
        assert!(trickle.iter().all(|&c| c == FIRST_CAPACITY), "{trickle:?}");
        // Declared 25 MiB, sent 4 KiB at a time: the buffer stays within twice what arrived.
        let arrived = (1..=1000).map(|i| i * 4096);
        for (cap, arrived) in capacities(25 << 20, std::iter::repeat_n(4096, 1000))
            .iter()
            .zip(arrived)
        {
            assert!(
                *cap <= (2 * arrived).max(FIRST_CAPACITY),
                "{cap} for {arrived}"
            );
        }
        // An honest body ends in one buffer of its exact size.
        let honest = capacities(100_000, std::iter::repeat_n(1000, 100));
        assert_eq!(honest.last(), Some(&100_000));
        // A body sending more than it declared still fits, and still grows by doubling.
        let liar = capacities(10, std::iter::repeat_n(1000, 3));
        assert_eq!(liar, [1000, 2000, 4000]);
        // A chunked body (no declared size: the limit is the cap) of 100,000 frames of 10 bytes
        // grows through a handful of buffers, not one per frame: copying stays linear.
        let mut chunked = capacities(1 << 20, std::iter::repeat_n(10, 100_000));
        chunked.dedup();
        assert_eq!(chunked.len(), 7, "{chunked:?}"); // 16 KiB, 32 KiB, … 1 MiB
    }

    /// A body that sends `first` and then nothing, ever.
    fn stalled(first: &'static [u8]) -> impl Body<Data = Bytes, Error = Infallible> {
        use futures_util::StreamExt as _;
        let frames = futures_util::stream::iter([Ok(Frame::data(Bytes::from_static(first)))])
            .chain(futures_util::stream::pending());
        StreamBody::new(frames)
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out_at_its_deadline() {
        let start = Instant::now();
        let timeout = Duration::from_secs(10);
        let err = read_body(stalled(b"abc"), 1000, start, timeout)
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::TimedOut { read: 3 }), "{err:?}");
        let now = Instant::now();
        assert_eq!(now, start + timeout, "answered at the deadline, not later");
        // A body already in needs no timer, even with a deadline in the past.
        let out = read_body(
            Full::new(Bytes::from_static(b"x")),
            10,
            start,
            Duration::ZERO,
        )
        .await;
        assert_eq!(out.unwrap(), "x");
    }

    #[tokio::test]
    async fn webhook_body_is_one_exact_frame() {
        let mut body = WebhookBody::from(Bytes::from_static(b"hello"));
        assert_eq!(body.size_hint().exact(), Some(5));
        assert!(!body.is_end_stream());
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "hello");
        assert!(body.is_end_stream());
        assert!(body.frame().await.is_none());
        assert!(WebhookBody::from(Bytes::new()).is_end_stream());
    }
}
