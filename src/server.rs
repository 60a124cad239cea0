//! The local HTTP server: the service's router (`mlops_http`, the one the predict Lambda runs)
//! on a loopback listener, with a bound on open connections and on the time a client may take
//! to send its headers, and a maintenance thread that picks up newly promoted versions and
//! flushes the inference log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mlops_core::Service;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// How often the maintenance thread looks at the production pointer and the log buffer.
const MAINTENANCE_TICK: Duration = Duration::from_millis(200);
const LOG_FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Connections open at once; further clients wait in the listen backlog.
const MAX_CONNECTIONS: usize = 512;
/// A client that has not sent a request's headers in this time is disconnected.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stop waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A running server.
pub struct Server {
    address: SocketAddr,
    service: Arc<Service>,
    stop: Arc<AtomicBool>,
    shutdown: Option<watch::Sender<bool>>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    /// Binds `address` (port 0 picks a free one) and serves `service` on background threads.
    pub fn start(service: Arc<Service>, address: SocketAddr) -> Result<Server> {
        // Predictions are CPU work (refreshes and log flushes run on the maintenance thread), so
        // one blocking thread per core is all they can use; tokio's default of 512 lets a burst
        // start dozens, each with its own allocator heap (RSS under load 204 MB against 41 MB).
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .max_blocking_threads(cores)
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind(address)).with_context(|| format!("binding {address}"))?;
        let address = listener.local_addr()?;
        let (shutdown, stopped) = watch::channel(false);
        let app = mlops_http::router(service.clone(), &mlops_http::Limits::default());
        let http = std::thread::spawn(move || runtime.block_on(accept(listener, app, stopped)));
        let stop = Arc::new(AtomicBool::new(false));
        let maintenance = {
            let (service, stop) = (service.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut last_flush = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    service.refresh_if_due();
                    if last_flush.elapsed() >= LOG_FLUSH_EVERY {
                        if let Err(error) = service.flush_logs() {
                            tracing::warn!("inference log not written yet: {error}");
                        }
                        last_flush = Instant::now();
                    }
                    std::thread::sleep(MAINTENANCE_TICK);
                }
            })
        };
        Ok(Server { address, service, stop, shutdown: Some(shutdown), threads: vec![http, maintenance] })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops serving, waits for requests in flight, and flushes the inference log.
    pub fn stop(mut self) -> Result<()> {
        self.stop_threads();
        self.service.flush_logs().context("flushing the inference log")?;
        Ok(())
    }

    fn stop_threads(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(true);
        }
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

/// Serves connections until `stopped` turns true, then lets requests in flight finish (for
/// at most [`DRAIN_TIMEOUT`]).
async fn accept(listener: TcpListener, app: axum::Router, mut stopped: watch::Receiver<bool>) {
    let places = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let place = tokio::select! {
            _ = stopped.changed() => break,
            place = places.clone().acquire_owned() => place.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!("accepting a connection failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (service, mut stopping) = (hyper_util::service::TowerToHyperService::new(app.clone()), stopped.clone());
        connections.spawn(async move {
            let _place = place;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                _ = stopping.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = served {
                tracing::debug!("connection closed: {error}");
            }
        });
    }
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("stopping with requests still in flight after {DRAIN_TIMEOUT:?}");
    }
}

/// `mlops serve`: serves until Ctrl-C.
pub fn serve_until_interrupted(service: Arc<Service>, address: SocketAddr) -> Result<()> {
    let server = Server::start(service.clone(), address)?;
    eprintln!(
        "serving {} on http://{} (POST /predict, GET /health, GET /model, GET /openapi.json); Ctrl-C stops",
        service.version().map_or("no model yet".to_string(), |v| format!("model {v}")),
        server.address()
    );
    let (signal_sender, signal) = std::sync::mpsc::channel();
    let waiter = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::spawn(move || {
        waiter.block_on(async {
            let _ = tokio::signal::ctrl_c().await;
        });
        let _ = signal_sender.send(());
    });
    let _ = signal.recv();
    eprintln!("stopping: flushing the inference log");
    server.stop()
}
