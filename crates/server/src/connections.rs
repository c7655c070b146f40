//! How creditd holds its TCP connections: the accept loop, with the limits that keep slow
//! and idle clients from stopping the service.
//!
//! Each connection costs an open file. Without limits, a thousand clients that connect
//! and send nothing use up the process's open files, and `accept` fails for everyone
//! else, `/healthz` included. So:
//! - a request's head must arrive within [`ConnectionLimits::idle_timeout`], and a
//!   keep-alive connection that sends nothing for as long is closed (hyper's header read
//!   timeout covers both: its timer starts whenever the connection waits for a head);
//! - a body that stops arriving for as long ends its request with 408 (each body is
//!   wrapped here), and a JSON body must arrive whole within
//!   [`crate::http::BODY_DEADLINE`];
//! - at most [`ConnectionLimits::max_connections`] connections are open, a number kept
//!   under the open-files limit ([`ConnectionLimits::within_open_files`]). A new
//!   connection over the cap closes the oldest connection that has no request in
//!   progress (as nginx reuses idle keep-alive connections when it runs out): a crowd
//!   of idle clients delays nobody. If every connection is busy, the new one is closed.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

/// Open files kept for everything that is not a client connection: the database
/// (SQLite's file, journal and WAL, or PostgreSQL's pool), webhook deliveries, logs.
pub const RESERVED_OPEN_FILES: u64 = 256;
/// Fewest connections the service runs with, whatever the open-files limit says.
pub const MIN_CONNECTIONS: usize = 16;
/// How long a request's head may take to arrive, and how long a keep-alive connection
/// may wait for its next request: long enough for any real client and pooled
/// connection, short enough that idle sockets do not pile up.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long shutdown waits for connections to finish their requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How often a failing `accept` is logged (it fails in a loop while files run out).
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(10);
/// How long the loop pauses after `accept` failed, so a lack of files does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// The limits of the accept loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Longest wait for a request's head, on a new or a keep-alive connection.
    pub idle_timeout: Duration,
}

impl ConnectionLimits {
    /// At most `wanted` connections, and fewer if the process may open only
    /// `open_files` files: [`RESERVED_OPEN_FILES`] stay free for the rest.
    pub fn within_open_files(wanted: usize, open_files: u64, idle_timeout: Duration) -> Self {
        let room =
            usize::try_from(open_files.saturating_sub(RESERVED_OPEN_FILES)).unwrap_or(usize::MAX);
        ConnectionLimits {
            max_connections: wanted.min(room).max(MIN_CONNECTIONS),
            idle_timeout,
        }
    }
}

/// One open connection, as the accept loop sees it.
#[derive(Default)]
struct Slot {
    /// Requests the connection is serving now.
    busy: AtomicUsize,
    /// Wakes the connection's task to close it.
    close: Notify,
}

/// Counts a request on its connection while it is served.
struct Busy(Arc<Slot>);

impl Busy {
    fn new(slot: &Arc<Slot>) -> Busy {
        slot.busy.fetch_add(1, Ordering::Relaxed);
        Busy(Arc::clone(slot))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The open connections, oldest first.
#[derive(Default)]
struct Open {
    next: u64,
    slots: BTreeMap<u64, Arc<Slot>>,
}

impl Open {
    /// Makes room for one more connection: at the cap, closes the oldest idle one.
    /// `None` if every connection is busy.
    fn admit(&mut self, max: usize) -> Option<(u64, Arc<Slot>)> {
        if self.slots.len() >= max {
            let idle = self
                .slots
                .iter()
                .find(|(_, slot)| slot.busy.load(Ordering::Relaxed) == 0)
                .map(|(id, _)| *id)?;
            if let Some(slot) = self.slots.remove(&idle) {
                slot.close.notify_one();
            }
        }
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        let slot = Arc::new(Slot::default());
        self.slots.insert(id, Arc::clone(&slot));
        Some((id, slot))
    }
}

fn lock(open: &Mutex<Open>) -> std::sync::MutexGuard<'_, Open> {
    open.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves, then lets
/// requests in flight finish (up to [`SHUTDOWN_GRACE`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let open = Arc::new(Mutex::new(Open::default()));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout);
    let mut last_error_logged: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    if last_error_logged.is_none_or(|at| at.elapsed() >= ACCEPT_ERROR_LOG_EVERY) {
                        tracing::warn!(%error, "cannot accept connections (logged at most every 10 s)");
                        last_error_logged = Some(Instant::now());
                    }
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let Some((id, slot)) = lock(&open).admit(limits.max_connections) else {
            // Every connection is serving a request: this one waits for nothing.
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = {
            let slot = Arc::clone(&slot);
            let router = router.clone();
            let idle = limits.idle_timeout;
            hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let busy = Busy::new(&slot);
                let request = request.map(|body| Body::new(TimeoutBody::new(idle, body)));
                let served = router.clone().oneshot(request);
                async move {
                    let response = served.await;
                    drop(busy);
                    response
                }
            })
        };
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let open = Arc::clone(&open);
        tokio::spawn(async move {
            tokio::select! {
                served = connection => {
                    if let Err(error) = served {
                        tracing::debug!(%error, "connection ended");
                    }
                }
                () = slot.close.notified() => {}
            }
            lock(&open).slots.remove(&id);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period: closing them");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_stays_under_the_open_files_limit() {
        let idle = DEFAULT_IDLE_TIMEOUT;
        assert_eq!(
            ConnectionLimits::within_open_files(10_000, 1_024, idle).max_connections,
            768
        );
        assert_eq!(
            ConnectionLimits::within_open_files(10_000, 1 << 20, idle).max_connections,
            10_000
        );
        assert_eq!(
            ConnectionLimits::within_open_files(10_000, 100, idle).max_connections,
            MIN_CONNECTIONS
        );
    }

    #[test]
    fn a_connection_over_the_cap_closes_the_oldest_idle_one() {
        let mut open = Open::default();
        let (_, first) = open.admit(2).expect("room");
        let _busy = Busy::new(&first);
        let (second_id, _) = open.admit(2).expect("room");
        let (third_id, _) = open.admit(2).expect("the idle second gives way");
        assert_eq!(
            open.slots.keys().copied().collect::<Vec<_>>(),
            [0, third_id]
        );
        assert_ne!(second_id, third_id);
    }

    #[test]
    fn when_every_connection_is_busy_the_new_one_is_refused() {
        let mut open = Open::default();
        let (_, only) = open.admit(1).expect("room");
        let _busy = Busy::new(&only);
        assert!(open.admit(1).is_none());
        assert_eq!(open.slots.len(), 1);
    }
}
