//! Connections for every listener (Unix socket, TCP, operations): a
//! listener becomes a bounded, backed-off stream of connections, each of
//! which is closed when it idles.
//!
//! - At most `maxConnections` per listener: one more is accepted and closed
//!   at once (so the kernel's queue does not fill with clients left hanging).
//! - An accept error that is not the client's (out of file descriptors,
//!   memory) sleeps and retries, doubling up to a second, logged once per
//!   burst: the accept loop never spins a core, and serves again as soon as
//!   descriptors are free.
//! - A connection must send its first request within `headerTimeout` and is
//!   closed after `idleTimeout` with no call open. Calls are counted by
//!   [`TrackCallsLayer`] from request to the end of the response body, so a
//!   long Wait or a followed Logs keeps its connection.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::config;

/// The first pause after a failed accept; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Connections accepted in one go before the accept loop lets others run.
const ACCEPT_BUDGET: usize = 64;

/// The bounds every connection of a listener gets.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl From<&config::Api> for Limits {
    fn from(api: &config::Api) -> Limits {
        Limits {
            header_timeout: api.header_timeout,
            idle_timeout: api.idle_timeout,
            max_connections: api.max_connections,
        }
    }
}

/// A listener whose connections [`Incoming`] hands out.
pub trait Accept: Unpin + Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Io>>;
}

impl Accept for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Io>> {
        tokio::net::UnixListener::poll_accept(self, cx).map_ok(|(io, _)| io)
    }
}

impl Accept for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Io>> {
        tokio::net::TcpListener::poll_accept(self, cx).map_ok(|(io, _)| io)
    }
}

/// A listener's connections, bounded and backed off (see the module doc).
/// It never yields an error: accept errors are waited out here.
pub struct Incoming<L> {
    listener: L,
    limits: Limits,
    name: String,
    slots: Arc<Semaphore>,
    backoff: Option<Pin<Box<Sleep>>>,
    delay: Duration,
    /// Accepts failed in the current burst.
    failed: u64,
    /// Connections closed at the cap in the current burst.
    refused: u64,
}

impl<L: Accept> Incoming<L> {
    /// `name` says which listener in the log.
    pub fn new(listener: L, limits: Limits, name: impl Into<String>) -> Incoming<L> {
        Incoming {
            listener,
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            limits,
            name: name.into(),
            backoff: None,
            delay: Duration::ZERO,
            failed: 0,
            refused: 0,
        }
    }
}

impl<L: Accept> Stream for Incoming<L> {
    type Item = Result<Conn<L::Io>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        for _ in 0..ACCEPT_BUDGET {
            if let Some(backoff) = this.backoff.as_mut() {
                ready!(backoff.as_mut().poll(cx));
                this.backoff = None;
            }
            let io = match ready!(this.listener.poll_accept(cx)) {
                Ok(io) => io,
                // The client gave up before we took it: nothing wrong here.
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    if this.failed == 0 {
                        tracing::warn!(listener = %this.name, error = %e, "cannot accept connections (out of file descriptors?); retrying with back-off up to {} s", MAX_BACKOFF.as_secs());
                    }
                    this.failed += 1;
                    this.delay = (this.delay * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
                    this.backoff = Some(Box::pin(tokio::time::sleep(this.delay)));
                    continue;
                }
            };
            if this.failed > 0 {
                tracing::info!(listener = %this.name, failed = this.failed, "accepting connections again");
                this.failed = 0;
                this.delay = Duration::ZERO;
            }
            let Ok(slot) = Arc::clone(&this.slots).try_acquire_owned() else {
                if this.refused == 0 {
                    tracing::warn!(listener = %this.name, max = this.limits.max_connections, "too many connections (cclaunch.api.maxConnections); closing new ones until some end");
                }
                this.refused += 1;
                drop(io);
                continue;
            };
            if this.refused > 0 {
                tracing::info!(listener = %this.name, refused = this.refused, "below the connection cap again");
                this.refused = 0;
            }
            return Poll::Ready(Some(Ok(Conn::new(io, slot, this.limits))));
        }
        // A flood of connections to close: let other tasks run meanwhile.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Accept errors about one connection, not the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// What the calls of one connection are doing, shared with
/// [`TrackCallsLayer`] through the requests' connection info.
#[derive(Clone)]
pub struct Activity(Arc<Tracker>);

struct Tracker {
    accepted: Instant,
    calls: AtomicUsize,
    requested: AtomicBool,
    /// When the last call ended.
    idle_since: Mutex<Instant>,
    /// The connection's task, woken when its last call ends (to arm the
    /// idle timer then).
    waker: AtomicWaker,
}

impl Activity {
    fn new() -> Activity {
        let now = Instant::now();
        Activity(Arc::new(Tracker {
            accepted: now,
            calls: AtomicUsize::new(0),
            requested: AtomicBool::new(false),
            idle_since: Mutex::new(now),
            waker: AtomicWaker::new(),
        }))
    }

    /// A call begins; it ends when the guard is dropped.
    fn begin(&self) -> Call {
        self.0.requested.store(true, Ordering::SeqCst);
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        Call(Arc::clone(&self.0))
    }

    /// When the connection is due to close if nothing happens; `None`
    /// while a call is open.
    fn expiry(&self, limits: &Limits) -> Option<Instant> {
        if self.0.calls.load(Ordering::SeqCst) > 0 {
            return None;
        }
        if !self.0.requested.load(Ordering::SeqCst) {
            return Some(self.0.accepted + limits.header_timeout);
        }
        let since = *self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner());
        Some(since + limits.idle_timeout)
    }
}

/// One call open on a connection.
struct Call(Arc<Tracker>);

impl Drop for Call {
    fn drop(&mut self) {
        *self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        if self.0.calls.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.waker.wake();
        }
    }
}

/// An accepted connection: its slot under the cap, and the timer that
/// closes it when it has no call for too long (checked as it reads: the
/// server always has a read pending on a connection).
pub struct Conn<Io> {
    io: Io,
    activity: Activity,
    limits: Limits,
    deadline: Pin<Box<Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl<Io> Conn<Io> {
    fn new(io: Io, slot: OwnedSemaphorePermit, limits: Limits) -> Conn<Io> {
        let activity = Activity::new();
        let first = activity
            .expiry(&limits)
            .unwrap_or_else(|| Instant::now() + limits.idle_timeout);
        Conn {
            io,
            activity,
            limits,
            deadline: Box::pin(tokio::time::sleep_until(first)),
            _slot: slot,
        }
    }

    /// Ready with an error once the connection is due to close.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        self.activity.0.waker.register(cx.waker());
        loop {
            let now = Instant::now();
            match self.activity.expiry(&self.limits) {
                Some(at) if at <= now => {
                    let requested = self.activity.0.requested.load(Ordering::SeqCst);
                    let (why, after) = if requested {
                        ("no call", self.limits.idle_timeout)
                    } else {
                        ("no request", self.limits.header_timeout)
                    };
                    tracing::debug!(?after, why, "closing an idle connection");
                    return Poll::Ready(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("{why} for {after:?}"),
                    ));
                }
                Some(at) => {
                    if self.deadline.deadline() != at {
                        self.deadline.as_mut().reset(at);
                    }
                }
                // A call is open: look again later (or when it ends).
                None => {
                    if self.deadline.deadline() <= now {
                        self.deadline.as_mut().reset(now + self.limits.idle_timeout);
                    }
                }
            }
            if self.deadline.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for Conn<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Poll::Ready(e) = self.poll_expired(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Conn<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<Io> tonic::transport::server::Connected for Conn<Io> {
    type ConnectInfo = Activity;

    fn connect_info(&self) -> Activity {
        self.activity.clone()
    }
}

/// The operations endpoint serves with axum.
impl axum::serve::Listener for Incoming<tokio::net::TcpListener> {
    type Io = Conn<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Some(Ok(conn)) = futures_util::StreamExt::next(self).await {
                // The peer's address is not used; a connection gone before
                // it could be read is closed by the server soon enough.
                let addr = conn.io.peer_addr().unwrap_or_else(|_| {
                    std::net::SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
                });
                return (conn, addr);
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

impl
    axum::extract::connect_info::Connected<
        axum::serve::IncomingStream<'_, Incoming<tokio::net::TcpListener>>,
    > for Activity
{
    fn connect_info(
        stream: axum::serve::IncomingStream<'_, Incoming<tokio::net::TcpListener>>,
    ) -> Activity {
        stream.io().activity.clone()
    }
}

/// Counts a connection's open calls, from the request to the end of the
/// response body (see [`Conn`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct TrackCallsLayer;

impl<S> tower::Layer<S> for TrackCallsLayer {
    type Service = TrackCalls<S>;

    fn layer(&self, inner: S) -> TrackCalls<S> {
        TrackCalls { inner }
    }
}

#[derive(Debug, Clone)]
pub struct TrackCalls<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for TrackCalls<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Tracked<ResBody>>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        // tonic puts the connection's info there as is; axum wraps it.
        let extensions = request.extensions();
        let call = extensions
            .get::<Activity>()
            .or_else(|| {
                extensions
                    .get::<axum::extract::ConnectInfo<Activity>>()
                    .map(|info| &info.0)
            })
            .map(Activity::begin);
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| Tracked { body, _call: call }))
        })
    }
}

/// A response body that holds its call open until it is done.
pub struct Tracked<B> {
    body: B,
    _call: Option<Call>,
}

impl<B: http_body::Body + Unpin> http_body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
