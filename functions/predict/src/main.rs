//! `/predict` behind a Lambda function URL. The model is loaded at cold start; each invocation
//! checks the production pointer (at most once a second, by its ETag) and swaps in a newly
//! promoted version without a redeploy, then calls the very handler `mlops serve` uses and
//! flushes the inference log (a frozen environment must not hold it).

use std::sync::Arc;

use lambda_http::{Body, Request, RequestExt, Response, service_fn};
use mlops_aws::lambda::{self, Failure};
use mlops_core::Store;
use mlops_core::serve::{self, Service, ServiceOptions};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    let config = mlops_aws::config().await;
    let store: Arc<dyn Store> = Arc::new(mlops_aws::s3::S3Store::new(&config, mlops_aws::env("MLOPS_BUCKET")?));
    let dataset = mlops_aws::env("MLOPS_DATASET")?;
    let service = Arc::new(tokio::task::spawn_blocking(move || Service::new(store, &dataset, ServiceOptions::default())).await?);
    lambda_http::run(service_fn(|request: Request| handle(service.clone(), request))).await
}

async fn handle(service: Arc<Service>, request: Request) -> Result<Response<Body>, Failure> {
    let request_id = request.lambda_context_ref().map(|c| c.request_id.clone());
    let call = serve::Request {
        method: request.method().to_string(),
        path: request.uri().path().to_string(),
        body: request.body().to_vec(),
        request_id,
    };
    let answer = lambda::blocking(move || {
        service.refresh_if_due();
        let answer = service.handle(&call);
        if let Err(error) = service.flush_logs() {
            tracing::warn!("inference log kept for the next invocation: {error}");
        }
        Ok(answer)
    })
    .await?;
    let mut response =
        Response::builder().status(answer.status).header("content-type", "application/json").header("x-request-id", &answer.request_id);
    if let Some(version) = &answer.model_version {
        response = response.header("x-model-version", version);
    }
    response.body(Body::Binary(answer.body)).map_err(|e| Failure::new("Internal", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlops_core::FsStore;
    use mlops_core::contracts::{RunRequest, Trigger};

    /// A store holding a trained toy model.
    fn trained() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path());
        let spec = mlops_core::Spec::parse(include_str!("../../../specs/bikeshare.toml"), "bikeshare").unwrap();
        let csv = include_str!("../../../data/bikeshare/Bikeshare.csv");
        let head: String = csv.lines().take(1500).map(|l| format!("{l}\n")).collect();
        store.put("raw/bikeshare/head.csv", head.as_bytes()).unwrap();
        let request = RunRequest { dataset: "bikeshare".into(), keys: Vec::new(), trigger: Trigger::Manual };
        mlops_pipeline::stages::run(&store, &spec, &request, &mlops_pipeline::stages::quiet).unwrap();
        (dir, Arc::new(store))
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_sample_function_url_event_gets_predictions_and_is_logged() {
        let (dir, store) = trained();
        let service = Arc::new(
            tokio::task::spawn_blocking({
                let store = store.clone();
                move || Service::new(store, "bikeshare", ServiceOptions::default())
            })
            .await
            .unwrap(),
        );
        let request = lambda_http::request::from_str(include_str!("../../../events/predict.json")).unwrap();
        let response = handle(service.clone(), request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-model-version"], "v1");
        let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        assert_eq!(body["predictions"].as_array().unwrap().len(), 2);
        let logged = std::fs::read_dir(dir.path().join("inference/bikeshare")).unwrap().count();
        assert_eq!(logged, 1, "the log is flushed at the end of the invocation");

        let mut bad: serde_json::Value = serde_json::from_str(include_str!("../../../events/predict.json")).unwrap();
        bad["body"] = serde_json::json!("{\"rows\": [{\"hr\": 3}]}");
        let response = handle(service, lambda_http::request::from_str(&bad.to_string()).unwrap()).await.unwrap();
        assert_eq!(response.status(), 422);
    }
}
