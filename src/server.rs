//! The local HTTP server: axum in front of the core's request handler, with a maintenance
//! thread that picks up newly promoted versions and flushes the inference log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response as HttpResponse};
use mlops_core::serve::{Request, Response, Service};

/// How often the maintenance thread looks at the production pointer and the log buffer.
const MAINTENANCE_TICK: Duration = Duration::from_millis(200);
const LOG_FLUSH_EVERY: Duration = Duration::from_secs(1);

/// A running server.
pub struct Server {
    address: SocketAddr,
    service: Arc<Service>,
    stop: Arc<AtomicBool>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    /// Binds `address` (port 0 picks a free one) and serves `service` on background threads.
    pub fn start(service: Arc<Service>, address: SocketAddr) -> Result<Server> {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind(address)).with_context(|| format!("binding {address}"))?;
        let address = listener.local_addr()?;
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new().fallback(handle).with_state(service.clone());
        let http = std::thread::spawn(move || {
            let served = runtime.block_on(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await
            });
            if let Err(error) = served {
                tracing::error!("the server stopped: {error}");
            }
        });
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
            let _ = shutdown.send(());
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

async fn handle(State(service): State<Arc<Service>>, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> HttpResponse {
    let request_id = headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    // One byte over the limit is enough for the service to answer 413 with the sizes.
    let body = match to_bytes(body, service_limit(&service) + 1).await {
        Ok(bytes) => bytes.to_vec(),
        Err(_) => vec![0; service_limit(&service) + 1],
    };
    let response = service.handle(&Request { method: method.to_string(), path: uri.path().to_string(), body, request_id });
    into_http(response)
}

fn service_limit(service: &Service) -> usize {
    service.options().max_body_bytes
}

fn into_http(response: Response) -> HttpResponse {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut http = (status, response.body).into_response();
    let headers = http.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(id) = HeaderValue::from_str(&response.request_id) {
        headers.insert("x-request-id", id);
    }
    if let Some(version) = response.model_version.and_then(|v| HeaderValue::from_str(&v).ok()) {
        headers.insert("x-model-version", version);
    }
    http
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
