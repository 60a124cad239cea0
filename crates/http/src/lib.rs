//! The HTTP face of the prediction service: one axum [`Router`] that `mlops serve` runs on a
//! local listener and the predict Lambda hands to `lambda_http::run`, so both answer the same
//! way. The core's [`Service`] decides every answer; this crate adds what HTTP needs around it:
//! a time limit per request (reading its body included), a bound on requests in flight, and
//! prediction on blocking threads, never on the async workers.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response as HttpResponse};
use mlops_core::{Request, Response, Service};
use tower::limit::ConcurrencyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// Bounds of the HTTP layer.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A request that has not been answered in this time, its body read included, gets 408.
    pub request_timeout: Duration,
    /// Requests handled at once; more wait for a place (within their timeout).
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { request_timeout: Duration::from_secs(30), max_in_flight: 64 }
    }
}

/// The router of the prediction service: every path goes to [`Service::handle`].
pub fn router(service: Arc<Service>, limits: &Limits) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(service)
        .layer(ConcurrencyLimitLayer::new(limits.max_in_flight))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.request_timeout))
}

async fn handle(State(service): State<Arc<Service>>, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> HttpResponse {
    let request_id = headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let limit = service.options().max_body_bytes;
    // One byte over the limit is enough for the service to answer 413 with the sizes.
    let body = match to_bytes(body, limit + 1).await {
        Ok(bytes) => bytes.to_vec(),
        Err(_) => vec![0; limit + 1],
    };
    let request = Request {
        method: method.to_string(),
        path: uri.path_and_query().map_or_else(|| uri.path().to_string(), ToString::to_string),
        body,
        request_id,
    };
    let answered = tokio::task::spawn_blocking(move || service.handle(&request)).await;
    match answered {
        Ok(response) => into_http(response),
        Err(error) => {
            tracing::error!("the prediction service failed: {error}");
            (StatusCode::INTERNAL_SERVER_ERROR, [("content-type", "application/json")], r#"{"error":"internal error"}"#).into_response()
        }
    }
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
    if let Some(allow) = response.allow {
        headers.insert("allow", HeaderValue::from_static(allow));
    }
    http
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request as HttpRequest;
    use mlops_core::FsStore;
    use mlops_core::ServiceOptions;
    use tower::ServiceExt;

    fn no_model() -> Arc<Service> {
        let dir = tempfile::tempdir().unwrap();
        Arc::new(Service::new(Arc::new(FsStore::new(dir.path())), "toy", ServiceOptions::default()))
    }

    #[tokio::test]
    async fn a_body_that_never_ends_gets_408_in_time() {
        let limits = Limits { request_timeout: Duration::from_millis(200), max_in_flight: 4 };
        let (_sender, body) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(1);
        let stalled = Body::from_stream(tokio_stream(body));
        let request = HttpRequest::post("/predict").body(stalled).unwrap();
        let started = std::time::Instant::now();
        let response = router(no_model(), &limits).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn answers_are_the_services() {
        let response = router(no_model(), &Limits::default())
            .oneshot(HttpRequest::get("/health").header("x-request-id", "r1").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["x-request-id"], "r1");
        assert_eq!(response.headers()["content-type"], "application/json");
    }

    #[tokio::test]
    async fn a_method_a_path_does_not_allow_gets_405_with_allow() {
        for (method, path, allowed) in
            [(Method::PUT, "/predict", "POST"), (Method::DELETE, "/health", "GET"), (Method::POST, "/model", "GET")]
        {
            let request = HttpRequest::builder().method(method.clone()).uri(path).body(Body::empty()).unwrap();
            let response = router(no_model(), &Limits::default()).oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_eq!(response.headers()["allow"], allowed, "{method} {path}");
        }
    }

    /// A stream of body chunks from a channel (no chunk ever comes while the sender lives).
    fn tokio_stream(
        mut receiver: tokio::sync::mpsc::Receiver<Result<axum::body::Bytes, std::io::Error>>,
    ) -> impl futures_util::Stream<Item = Result<axum::body::Bytes, std::io::Error>> {
        futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
    }
}
