//! `/predict` behind a Lambda function URL: the very router `mlops serve` runs
//! (`mlops_http::router`), handed to `lambda_http::run`. The model is loaded at cold start;
//! before each invocation the production pointer is checked (at most once a second, by its
//! ETag) and a newly promoted version is swapped in without a redeploy.
//!
//! Inference log lines are buffered, never written on the request path: a background task
//! writes them every second while the environment runs, and the shutdown hook (SIGTERM, which
//! Lambda sends before it ends an environment that has an extension registered) writes what is
//! left, so no logged inference is lost with the environment.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use lambda_http::RequestExt;
use mlops_aws::{lambda, metrics};
use mlops_core::Store;
use mlops_core::{Service, ServiceOptions};
use tracing::Instrument;

/// How often buffered log lines are written while the environment runs.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let (store, dataset) = lambda::cold_start(async {
        let config = mlops_aws::config().await?;
        let store: Arc<dyn Store> = Arc::new(mlops_aws::s3::S3Store::new(&config, mlops_aws::env("MLOPS_BUCKET")?));
        Ok((store, Arc::<str>::from(mlops_aws::env("MLOPS_DATASET")?)))
    })
    .await;
    let options = ServiceOptions { flush_on_batch: false, ..ServiceOptions::default() };
    let named = dataset.clone();
    let service = Arc::new(tokio::task::spawn_blocking(move || Service::new(store, &named, options)).await?);
    let at_shutdown = service.clone();
    lambda_runtime::spawn_graceful_shutdown_handler(move || flush(at_shutdown)).await;
    let flusher = service.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(FLUSH_EVERY);
        loop {
            every.tick().await;
            flush(flusher.clone()).await;
        }
    });
    lambda_http::run(app(service, dataset)).await
}

/// Writes the buffered inference log lines (on a blocking thread); on failure they stay
/// buffered for the next flush.
async fn flush(service: Arc<Service>) {
    match tokio::task::spawn_blocking(move || service.flush_logs()).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::warn!("inference log kept for the next flush: {error}"),
        Err(error) => tracing::error!("flushing the inference log failed: {error}"),
    }
}

/// The service's router, with the Lambda's work around each invocation.
fn app(service: Arc<Service>, dataset: Arc<str>) -> axum::Router {
    mlops_http::router(service.clone(), &mlops_http::Limits::default())
        .layer(middleware::from_fn_with_state((service, dataset), invocation))
}

/// Refreshes the model before the request; the Lambda request id names the request unless the
/// caller sent one. Reports the request's latency and outcome as metrics.
async fn invocation(State((service, dataset)): State<(Arc<Service>, Arc<str>)>, mut request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let lambda_id = request.lambda_context_ref().map(|c| c.request_id.clone());
    if let Some(id) = lambda_id.and_then(|id| id.parse().ok())
        && !request.headers().contains_key("x-request-id")
    {
        request.headers_mut().insert("x-request-id", id);
    }
    let span = tracing::info_span!("request", dataset = &*dataset, model_version = tracing::field::Empty);
    let refreshing = span.clone();
    if let Err(error) = tokio::task::spawn_blocking(move || refreshing.in_scope(|| service.refresh_if_due())).await {
        tracing::warn!(parent: &span, "refreshing the model failed: {error}");
    }
    let response = next.run(request).instrument(span.clone()).await;
    let version = response.headers().get("x-model-version").and_then(|v| v.to_str().ok());
    span.record("model_version", version);
    if response.status().is_server_error() {
        tracing::error!(parent: &span, status = response.status().as_u16(), "answered with a server error");
    }
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    metrics::emit(&[metrics::request_line(&dataset, version, response.status().as_u16(), latency_ms, metrics::now())]);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlops_core::FsStore;
    use mlops_core::contracts::{RunRequest, Trigger};
    use tower::ServiceExt;

    /// A store holding a trained toy model.
    fn trained() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path());
        let spec = mlops_core::Spec::parse(include_str!("../../../specs/bikeshare.toml"), "bikeshare").unwrap();
        let csv = include_str!("../../../data/bikeshare/Bikeshare.csv");
        let head: String = csv.lines().take(1500).map(|l| format!("{l}\n")).collect();
        store.put("raw/bikeshare/head.csv", head.as_bytes()).unwrap();
        let request = RunRequest { dataset: "bikeshare".into(), keys: Vec::new(), trigger: Trigger::Manual, id: None };
        mlops_pipeline::stages::run(&store, &spec, &request, &mlops_pipeline::stages::quiet).unwrap();
        (dir, Arc::new(store))
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_sample_function_url_event_gets_predictions_and_is_logged() {
        let (dir, store) = trained();
        let service = Arc::new(
            tokio::task::spawn_blocking({
                let store = store.clone();
                move || Service::new(store, "bikeshare", ServiceOptions { flush_on_batch: false, ..ServiceOptions::default() })
            })
            .await
            .unwrap(),
        );
        let request = lambda_http::request::from_str(include_str!("../../../events/predict.json")).unwrap();
        let response = app(service.clone(), "bikeshare".into()).oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-model-version"], "v1");
        let body: serde_json::Value = serde_json::from_slice(&axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap()).unwrap();
        assert_eq!(body["predictions"].as_array().unwrap().len(), 2);
        assert!(!dir.path().join("inference").exists(), "nothing is written on the request path");
        flush(service.clone()).await;
        let logged = std::fs::read_dir(dir.path().join("inference/bikeshare")).unwrap().count();
        assert_eq!(logged, 1, "the buffered lines are written by the flush");

        let mut bad: serde_json::Value = serde_json::from_str(include_str!("../../../events/predict.json")).unwrap();
        bad["body"] = serde_json::json!("{\"rows\": [{\"hr\": 3}]}");
        let response = app(service, "bikeshare".into()).oneshot(lambda_http::request::from_str(&bad.to_string()).unwrap()).await.unwrap();
        assert_eq!(response.status(), 422);
    }
}
