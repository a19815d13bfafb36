//! The HTTP/1.1 server loop: accepting connections and holding each to limits a slow or hostile
//! client cannot stretch — a request's header must arrive within `header_read` of the first
//! wait for it (a client trickling header lines is dropped), a keep-alive connection idle for
//! `idle` is closed, and at shutdown idle connections close at once, requests in flight get
//! `grace` to finish, and whatever is left is dropped, so the process exits in time. (The body
//! has its own limit: `RequestBodyTimeoutLayer` on the router.) Upgraded connections (the OneBot
//! WebSocket) leave this loop once upgraded; the hub closes them at shutdown.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, info, warn};

/// How long clients may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From the first wait for a request's header to its end.
    pub header_read: Duration,
    /// A keep-alive connection with no request in flight and no bytes moving this long closes.
    pub idle: Duration,
    /// At shutdown, how long requests in flight may still take.
    pub grace: Duration,
}

/// Serves `router` on `listener` until `stop` is cancelled, then shuts down within
/// `limits.grace` (see the module documentation).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
) -> io::Result<()> {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
            // Reap finished connections as we go: the set holds only live ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: wait a moment instead of spinning.
                warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Small frames (a OneBot action, a passive reply) go out at once instead of waiting for
        // the peer's delayed ACK (Nagle: up to 40 ms on Linux).
        if let Err(e) = stream.set_nodelay(true) {
            debug!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
        connections.spawn(connection(
            stream,
            router.clone(),
            limits,
            stop.clone(),
            peer,
        ));
    }
    drop(listener);
    info!(
        connections = connections.len(),
        "no longer accepting connections; finishing requests in flight"
    );
    let finished = tokio::time::timeout(limits.grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        warn!(
            connections = connections.len(),
            grace_secs = limits.grace.as_secs(),
            "connections still open after the grace period are closed"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
    Ok(())
}

/// Serves one connection until it ends, idles out or is told to stop.
async fn connection(
    stream: TcpStream,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
    peer: std::net::SocketAddr,
) {
    let started = Instant::now();
    let activity = Arc::new(Activity {
        started,
        last_ms: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
    });
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: Arc::clone(&activity),
    });
    let counted = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let router = router.clone();
        let guard = InFlight::enter(&counted);
        async move {
            let response = router.oneshot(request.map(Body::new)).await;
            drop(guard);
            Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service).with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let mut tick = tokio::time::interval(
        limits
            .idle
            .min(Duration::from_secs(5))
            .max(Duration::from_millis(100)),
    );
    let mut stopping = stop.is_cancelled();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = stop.cancelled(), if !stopping => {
                stopping = true;
                // Idle keep-alive connections close now; a request in flight finishes first.
                conn.as_mut().graceful_shutdown();
            }
            _ = tick.tick() => {
                if activity.idle_for() >= limits.idle {
                    debug!(%peer, idle_secs = limits.idle.as_secs(), "idle connection closed");
                    return;
                }
            }
        }
    }
}

/// When a connection last moved bytes, and how many of its requests are being handled.
struct Activity {
    started: Instant,
    /// Milliseconds after `started` of the last read or write.
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn touch(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long nothing has happened; zero while a request is being handled.
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

/// Counts a request as in flight until dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn enter(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A stream that notes when bytes move.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
