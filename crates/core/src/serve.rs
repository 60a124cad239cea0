//! The prediction service as a plain function from request to response, so the local HTTP
//! server and the predict Lambda call the very same code.
//!
//! Routes: `POST /predict` (one row or `{"rows": [...]}`), `GET /health`, `GET /model`,
//! `GET /openapi.json`. The production model is re-read when the pointer's etag changes; if the
//! registry cannot be read, the last good model keeps serving. Every prediction is logged, in
//! batches, under `inference/DATASET/DATE/`.
//!
//! When the pointer names a challenger, a canary answers the requests whose routing key (the
//! first row's id, else the request id) hashes into its weight, and a shadow is scored and
//! logged beside the champion, which answers. A challenger past its error or latency bound is
//! withdrawn at once: it stops answering here, and the pointer records why.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::artifact::{ModelArtifact, ModelCard};
use crate::canary::{Challenger, Guard, Mode, Role, routes_to_canary};
use crate::error::CoreError;
use crate::registry::{Ending, Registry};
use crate::rows::{RawRow, RowSchema};
use crate::scoring::{self, LogContext, Scored};
use crate::spec::CanaryPolicy;
use crate::spec::Spec;
use crate::store::{Keys, Store};
use crate::store_json::CONDITIONAL_ATTEMPTS;

/// Limits and timings of the service.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
    /// More rows in one request get 413.
    pub max_rows: usize,
    /// More rows in one request with `explain=true` get 413: a deep forest's explanation costs
    /// milliseconds per row.
    pub max_explain_rows: usize,
    /// [`Service::refresh_if_due`] checks the production pointer at most this often.
    pub refresh_every: Duration,
    /// Log lines are flushed once this many are pending, by the request that fills the batch,
    /// when `flush_on_batch` is set; otherwise only by [`Service::flush_logs`] (called outside
    /// the request path: the predict Lambda's background flusher and its shutdown hook).
    pub log_batch: usize,
    pub flush_on_batch: bool,
    /// Bytes of pending log lines kept while the store cannot be written; past it the oldest
    /// lines go first.
    pub log_capacity_bytes: usize,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            max_body_bytes: 1 << 20,
            max_rows: 1000,
            max_explain_rows: 100,
            refresh_every: Duration::from_secs(1),
            log_batch: 512,
            flush_on_batch: true,
            log_capacity_bytes: 64 << 20,
        }
    }
}

/// An HTTP request, as far as the service cares.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
    /// The caller's request id, if it has one (else the service makes one).
    pub request_id: Option<String>,
}

/// An HTTP response: always JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// The model version that answered, if any.
    pub model_version: Option<String>,
    pub request_id: String,
    /// The methods a path allows, for a 405 answer's `Allow` header.
    pub allow: Option<&'static str>,
}

impl Response {
    fn json(status: u16, body: &Value, request_id: &str, model_version: Option<&str>) -> Response {
        Response {
            status,
            body: body.to_string().into_bytes(),
            model_version: model_version.map(str::to_string),
            request_id: request_id.to_string(),
            allow: None,
        }
    }

    fn error(status: u16, message: &str, request_id: &str) -> Response {
        Response::json(status, &json!({ "error": message, "request_id": request_id }), request_id, None)
    }
}

/// The model being served.
struct Loaded {
    version: String,
    artifact: ModelArtifact,
    schema: RowSchema,
    card: ModelCard,
    openapi: Value,
}

impl Loaded {
    /// This model's answer to checked-and-parsed rows, and the log lines of its predictions
    /// (not yet recorded); the error is the response that refuses them.
    fn answer(&self, rows: &[RawRow], request_id: &str, role: Role, explain: bool) -> Result<(Response, Vec<String>), Response> {
        let checked: Result<Vec<_>, _> = rows.iter().enumerate().map(|(i, row)| self.schema.check(row, i)).collect();
        let checked = checked.map_err(|error| Response::error(422, &error.to_string(), request_id))?;
        let scored =
            scoring::score(&self.artifact, &self.schema, &checked).map_err(|error| Response::error(422, &error.to_string(), request_id))?;
        let scored: Vec<Scored> = scored.into_iter().enumerate().map(|(row, s)| s.ok_or(row)).collect::<Result<_, _>>().map_err(|row| {
            tracing::error!(version = %self.version, row, "the model produced a non-finite prediction");
            Response::error(500, &format!("row {row}: model {} produced no finite prediction", self.version), request_id)
        })?;
        let labels = self.artifact.target.labels();
        let ids: Vec<String> =
            rows.iter().enumerate().map(|(i, row)| self.schema.id_of(row).unwrap_or_else(|| format!("{request_id}-{i}"))).collect();
        let at = jiff::Timestamp::now().to_string();
        let context = LogContext { request_id, time: &at, model_version: &self.version, role, labels };
        let lines: Vec<String> =
            rows.iter().zip(&ids).zip(&scored).map(|((row, id), s)| context.line(id, &self.schema.logged(row), s)).collect();
        let mut body = json!({ "model_version": self.version, "request_id": request_id, "prediction_ids": ids });
        if labels.is_empty() {
            body["predictions"] = scored.iter().map(|s| json!(s.predicted(labels).number())).collect();
        } else {
            body["predictions"] = scored.iter().map(|s| json!(s.predicted(labels).label())).collect();
            body["probabilities"] = scored
                .iter()
                .map(|s| {
                    let p = s.probabilities().unwrap_or_default();
                    Value::Object(labels.iter().zip(p).map(|(l, v)| (l.clone(), json!(v))).collect())
                })
                .collect();
        }
        if explain {
            let explanations = scoring::explain(&self.artifact, &self.schema, &checked)
                .map_err(|error| Response::error(422, &error.to_string(), request_id))?;
            body["explanations"] = json!(explanations);
        }
        Ok((Response::json(200, &body, request_id, Some(&self.version)), lines))
    }
}

/// What is served: the champion, and the challenger on trial beside it.
struct Serving {
    champion: Arc<Loaded>,
    trial: Option<Trial>,
}

/// A challenger and its model.
struct Trial {
    challenger: Challenger,
    model: Arc<Loaded>,
    /// Its spec's bounds on errors and latency.
    policy: CanaryPolicy,
}

impl Trial {
    fn key(&self) -> (String, String) {
        (self.challenger.version.clone(), self.challenger.started_at.clone())
    }
}

/// The health of the trial going on, and whether its challenger was withdrawn here.
#[derive(Default)]
struct TrialHealth {
    /// The trial's challenger version and start: a version tried again starts afresh.
    trial: (String, String),
    guard: Guard,
    withdrawn: bool,
}

/// Serves the production model of one dataset.
pub struct Service {
    store: Arc<dyn Store>,
    dataset: String,
    options: ServiceOptions,
    model: ArcSwapOption<Serving>,
    health: Mutex<TrialHealth>,
    /// Etag of the pointer the loaded model came from.
    pointer_etag: Mutex<Option<String>>,
    last_refresh: Mutex<Option<Instant>>,
    /// Why the last check of the registry failed, while it keeps failing (`/health` says so).
    registry_error: Mutex<Option<String>>,
    log: Mutex<PendingLog>,
}

/// Inference log lines not yet written, and their size in bytes.
#[derive(Default)]
struct PendingLog {
    lines: std::collections::VecDeque<String>,
    bytes: usize,
}

impl PendingLog {
    fn push(&mut self, line: String) {
        self.bytes += line.len() + 1;
        self.lines.push_back(line);
    }

    /// Drops the oldest lines until at most `capacity` bytes are pending; returns how many.
    fn trim(&mut self, capacity: usize) -> usize {
        let mut dropped = 0;
        while self.bytes > capacity {
            let Some(line) = self.lines.pop_front() else { break };
            self.bytes -= line.len() + 1;
            dropped += 1;
        }
        dropped
    }
}

impl Service {
    /// A service for `dataset`; it loads the production model if there is one.
    pub fn new(store: Arc<dyn Store>, dataset: &str, options: ServiceOptions) -> Service {
        let service = Service {
            store,
            dataset: dataset.to_string(),
            options,
            model: ArcSwapOption::empty(),
            health: Mutex::new(TrialHealth::default()),
            pointer_etag: Mutex::new(None),
            last_refresh: Mutex::new(None),
            registry_error: Mutex::new(None),
            log: Mutex::new(PendingLog::default()),
        };
        if let Err(error) = service.refresh() {
            tracing::warn!(dataset, "no model loaded yet: {error}");
        }
        service
    }

    pub fn options(&self) -> &ServiceOptions {
        &self.options
    }

    /// The production version being served.
    pub fn version(&self) -> Option<String> {
        self.model.load().as_ref().map(|m| m.champion.version.clone())
    }

    /// The challenger being tried, unless it was withdrawn here.
    pub fn challenger(&self) -> Option<Challenger> {
        let serving = self.model.load_full()?;
        serving.trial.as_ref().filter(|trial| !self.withdrawn(trial)).map(|trial| trial.challenger.clone())
    }

    /// Loads the production version if the pointer changed; `Ok(true)` when it swapped. On an
    /// error the current model stays.
    pub fn refresh(&self) -> Result<bool, CoreError> {
        let keys = Keys { dataset: &self.dataset };
        let etag = self.store.etag(&keys.production())?;
        if etag.is_none() || *self.pointer_etag.lock().expect("not poisoned") == etag {
            return Ok(false);
        }
        let registry = Registry::new(self.store.as_ref(), &self.dataset);
        let Some((production, etag)) = registry.production()? else { return Ok(false) };
        let current = self.model.load_full();
        let loaded = |version: &str| -> Result<Arc<Loaded>, CoreError> {
            let held = current.as_ref().and_then(|s| {
                std::iter::once(&s.champion).chain(s.trial.as_ref().map(|t| &t.model)).find(|m| m.version == version).cloned()
            });
            match held {
                Some(model) => Ok(model),
                None => {
                    tracing::info!(dataset = %self.dataset, %version, "loading a model version");
                    self.load(&registry, version).map(Arc::new)
                }
            }
        };
        let champion = loaded(&production.version)?;
        // A challenger that cannot be loaded is left out: the champion answers alone.
        let trial = production.challenger.and_then(|challenger| {
            let loaded = loaded(&challenger.version).and_then(|model| Ok((model.artifact.spec()?.promotion.canary, model)));
            match loaded {
                Ok((policy, model)) => Some(Trial { challenger, model, policy }),
                Err(error) => {
                    tracing::warn!(dataset = %self.dataset, challenger = %challenger.version, "the challenger is not tried: {error}");
                    None
                }
            }
        });
        self.model.store(Some(Arc::new(Serving { champion, trial })));
        *self.pointer_etag.lock().expect("not poisoned") = Some(etag);
        Ok(true)
    }

    fn load(&self, registry: &Registry, version: &str) -> Result<Loaded, CoreError> {
        let artifact = registry.artifact(version)?;
        let card = registry.card(version)?;
        let spec = artifact.spec()?;
        let schema = RowSchema::new(&spec);
        let openapi = openapi(&spec, &schema, version, &self.options);
        Ok(Loaded { version: version.to_string(), artifact, schema, card, openapi })
    }

    /// [`Self::refresh`] when the last check is older than `refresh_every`; errors are logged.
    pub fn refresh_if_due(&self) {
        let Ok(mut last) = self.last_refresh.try_lock() else { return };
        if last.is_some_and(|at| at.elapsed() < self.options.refresh_every) {
            return;
        }
        *last = Some(Instant::now());
        let error = self.refresh().err().map(|error| {
            tracing::warn!(dataset = %self.dataset, "registry not readable, keeping {:?}: {error}", self.version());
            error.to_string()
        });
        *self.registry_error.lock().expect("not poisoned") = error;
    }

    /// Handles one request.
    pub fn handle(&self, request: &Request) -> Response {
        let request_id = request.request_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let serving = self.model.load_full();
        let model = serving.as_ref().map(|s| &s.champion);
        let path = request.path.split('?').next().unwrap_or_default();
        match (request.method.as_str(), path) {
            ("GET", "/health") => match &model {
                Some(m) => {
                    let mut health = json!({ "status": "ok", "dataset": self.dataset, "model_version": m.version });
                    if let Some(error) = self.registry_error.lock().expect("not poisoned").as_ref() {
                        health["registry_error"] = json!(error);
                    }
                    if let Some(challenger) = self.challenger() {
                        health["challenger"] = json!(challenger);
                    }
                    Response::json(200, &health, &request_id, Some(&m.version))
                }
                None => Response::json(503, &json!({ "status": "no model", "dataset": self.dataset }), &request_id, None),
            },
            ("GET", "/model") => match &model {
                Some(m) => Response::json(200, &model_description(m), &request_id, Some(&m.version)),
                None => Response::error(503, &format!("no production model for '{}' yet", self.dataset), &request_id),
            },
            ("GET", "/openapi.json") => match &model {
                Some(m) => Response::json(200, &m.openapi, &request_id, Some(&m.version)),
                None => Response::error(503, &format!("no production model for '{}' yet", self.dataset), &request_id),
            },
            ("POST", "/predict") => match &serving {
                Some(serving) => match explain_asked(&request.path) {
                    Ok(explain) => self.predict(serving, &request.body, &request_id, explain),
                    Err(message) => Response::error(422, &message, &request_id),
                },
                None => Response::error(503, &format!("no production model for '{}' yet", self.dataset), &request_id),
            },
            (_, "/health" | "/model" | "/openapi.json" | "/predict") => {
                let allow = if path == "/predict" { "POST" } else { "GET" };
                let message = format!("{} is not allowed on {path}; it allows {allow}", request.method);
                Response { allow: Some(allow), ..Response::error(405, &message, &request_id) }
            }
            _ => Response::error(
                404,
                &format!("no route {path}; try POST /predict, GET /health, GET /model, GET /openapi.json"),
                &request_id,
            ),
        }
    }

    fn predict(&self, serving: &Serving, body: &[u8], request_id: &str, explain: bool) -> Response {
        let limit = self.options.max_body_bytes;
        if body.len() > limit {
            return Response::error(413, &format!("the body has {} bytes; the limit is {limit}", body.len()), request_id);
        }
        let rows = match split_rows(body) {
            Ok(rows) => rows,
            Err((status, message)) => return Response::error(status, &message, request_id),
        };
        if rows.is_empty() {
            return Response::error(422, "'rows' is empty", request_id);
        }
        if rows.len() > self.options.max_rows {
            return Response::error(413, &format!("{} rows; the limit is {} per request", rows.len(), self.options.max_rows), request_id);
        }
        if explain && rows.len() > self.options.max_explain_rows {
            let limit = self.options.max_explain_rows;
            return Response::error(
                413,
                &format!("{} rows to explain; the limit is {limit} per request with explain=true", rows.len()),
                request_id,
            );
        }
        let rows: Vec<RawRow> = rows.into_iter().map(RawRow::parse).collect();
        let champion = &serving.champion;
        let Some(trial) = serving.trial.as_ref().filter(|trial| !self.withdrawn(trial)) else {
            return self.respond(champion.answer(&rows, request_id, Role::Champion, explain));
        };
        match trial.challenger.mode {
            Mode::Canary { weight } => {
                let key = champion.schema.id_of(&rows[0]).unwrap_or_else(|| request_id.to_string());
                if routes_to_canary(&key, weight) {
                    let started = Instant::now();
                    let answer = trial.model.answer(&rows, request_id, Role::Canary, explain);
                    let failed = answer.as_ref().is_err_and(|error| error.status >= 500);
                    self.observe(trial, failed, started);
                    if !failed {
                        return self.respond(answer);
                    }
                    // The canary failed: the champion answers instead.
                }
                self.respond(champion.answer(&rows, request_id, Role::Champion, explain))
            }
            Mode::Shadow => {
                let answer = champion.answer(&rows, request_id, Role::Champion, explain);
                if answer.is_ok() {
                    let started = Instant::now();
                    let shadow = trial.model.answer(&rows, request_id, Role::Shadow, false);
                    self.observe(trial, shadow.as_ref().is_err_and(|error| error.status >= 500), started);
                    if let Ok((_, lines)) = shadow {
                        self.record(lines);
                    }
                }
                self.respond(answer)
            }
        }
    }

    /// The response of an answer, whose log lines are recorded.
    fn respond(&self, answer: Result<(Response, Vec<String>), Response>) -> Response {
        match answer {
            Ok((response, lines)) => {
                self.record(lines);
                response
            }
            Err(response) => response,
        }
    }

    fn withdrawn(&self, trial: &Trial) -> bool {
        let health = self.health.lock().expect("not poisoned");
        health.withdrawn && health.trial == trial.key()
    }

    /// Counts one request the challenger scored; past a bound of its policy it is withdrawn.
    fn observe(&self, trial: &Trial, failed: bool, started: Instant) {
        let breach = {
            let mut health = self.health.lock().expect("not poisoned");
            if health.trial != trial.key() {
                *health = TrialHealth { trial: trial.key(), ..TrialHealth::default() };
            }
            health.guard.record(failed, started.elapsed().as_secs_f64() * 1000.0);
            let breach = if health.withdrawn { None } else { health.guard.breach(&trial.policy) };
            health.withdrawn |= breach.is_some();
            breach
        };
        if let Some(reason) = breach {
            tracing::warn!(dataset = %self.dataset, challenger = %trial.challenger.version, "{reason}");
            self.withdraw(&trial.challenger, &reason);
        }
    }

    /// Records the withdrawal in the pointer, unless its trial already ended.
    fn withdraw(&self, challenger: &Challenger, reason: &str) {
        let registry = Registry::new(self.store.as_ref(), &self.dataset);
        for _ in 0..CONDITIONAL_ATTEMPTS {
            let written = match registry.production() {
                Ok(Some((production, etag))) if production.challenger.as_ref() == Some(challenger) => {
                    registry.end_challenger(Ending::Withdraw, reason, &etag)
                }
                Ok(_) => return,
                Err(error) => Err(error),
            };
            match written {
                Ok(_) => return,
                Err(CoreError::Conflict { .. }) => continue,
                Err(error) => {
                    tracing::warn!(dataset = %self.dataset, "the withdrawal of {} is not in the pointer yet: {error}", challenger.version);
                    return;
                }
            }
        }
    }

    fn record(&self, lines: Vec<String>) {
        let due = {
            let mut log = self.log.lock().expect("not poisoned");
            for line in lines {
                log.push(line);
            }
            let dropped = log.trim(self.options.log_capacity_bytes);
            if dropped > 0 {
                tracing::warn!(dropped, "inference log buffer full: dropping the oldest lines");
            }
            self.options.flush_on_batch && log.lines.len() >= self.options.log_batch
        };
        if due && let Err(error) = self.flush_logs() {
            tracing::warn!("inference log not written yet: {error}");
        }
    }

    /// Writes the pending inference log lines as one object; on failure they stay pending.
    pub fn flush_logs(&self) -> Result<usize, CoreError> {
        let pending = std::mem::take(&mut *self.log.lock().expect("not poisoned"));
        if pending.lines.is_empty() {
            return Ok(0);
        }
        let now = jiff::Timestamp::now();
        let date = now.strftime("%Y-%m-%d").to_string();
        let batch = format!("{}-{}", now.strftime("%H%M%S%.3f"), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let mut bytes = Vec::with_capacity(pending.bytes);
        for line in &pending.lines {
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
        }
        match self.store.put(&Keys { dataset: &self.dataset }.inference(&date, &batch), &bytes) {
            Ok(()) => Ok(pending.lines.len()),
            Err(error) => {
                let mut log = self.log.lock().expect("not poisoned");
                let newer = std::mem::replace(&mut *log, pending);
                for line in newer.lines {
                    log.push(line);
                }
                log.trim(self.options.log_capacity_bytes);
                Err(error.into())
            }
        }
    }
}

/// Whether the query string of `path` asks for explanations (`explain=true`); any other value of
/// `explain` is refused.
fn explain_asked(path: &str) -> Result<bool, String> {
    let query = path.split_once('?').map_or("", |(_, query)| query);
    let asked = query.split('&').map(|pair| pair.split_once('=').unwrap_or((pair, ""))).rfind(|(key, _)| *key == "explain");
    match asked.map(|(_, value)| value) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(format!("explain={other}: expected explain=true or explain=false")),
    }
}

/// The rows of a request body: one object, or `{"rows": [...]}` and nothing else; the error is
/// a status and a message.
fn split_rows(body: &[u8]) -> Result<Vec<&RawValue>, (u16, String)> {
    /// The top level of an object body: its `rows` value, if any, and how many fields it has.
    struct Top<'a> {
        rows: Option<&'a RawValue>,
        fields: usize,
    }
    impl<'de> Deserialize<'de> for Top<'de> {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct TopVisitor;
            impl<'de> serde::de::Visitor<'de> for TopVisitor {
                type Value = Top<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<Top<'de>, M::Error> {
                    let mut top = Top { rows: None, fields: 0 };
                    while let Some(key) = map.next_key::<std::borrow::Cow<str>>()? {
                        if key == "rows" {
                            top.rows = Some(map.next_value()?);
                        } else {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                        top.fields += 1;
                    }
                    Ok(top)
                }
            }
            deserializer.deserialize_map(TopVisitor)
        }
    }
    let not_json = |e: &dyn std::fmt::Display| (400, format!("the body is not JSON: {e}"));
    let text = std::str::from_utf8(body).map_err(|e| not_json(&e))?;
    if !text.trim_start().starts_with('{') {
        serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| not_json(&e))?;
        return Err((422, "expected one row as an object, or {\"rows\": [...]}".into()));
    }
    // One pass over the body: the rows are only delimited here, and checked one by one later.
    let top: Top = serde_json::from_str(text).map_err(|e| not_json(&e))?;
    match top.rows {
        None => Ok(vec![serde_json::from_str(text).map_err(|e| not_json(&e))?]),
        Some(_) if top.fields > 1 => Err((422, "a batch is {\"rows\": [...]} with no other field".into())),
        Some(rows) => serde_json::from_str(rows.get()).map_err(|_| (422, "'rows' must be an array of objects".into())),
    }
}

fn model_description(model: &Loaded) -> Value {
    let card = &model.card;
    let schema: Vec<Value> = model
        .schema
        .columns()
        .map(|(c, required)| json!({ "name": c.name, "type": c.kind.name(), "required": required, "min": c.min, "max": c.max, "categories": c.categories, "format": c.format }))
        .collect();
    json!({
        "dataset": card.dataset,
        "version": model.version,
        "candidate": card.candidate,
        "kind": card.kind,
        "task": card.task,
        "metric": card.metric.name(),
        "metrics": card.metrics,
        "classes": card.classes,
        "trained_at": card.created_at,
        "run_id": card.run_id,
        "data_hash": card.data_hash,
        "importance": card.importance.iter().map(|(name, value)| json!({ "feature": name, "mean_abs_contribution": value })).collect::<Vec<_>>(),
        "schema": schema,
    })
}

/// The OpenAPI document of the service, generated from the model's schema: the contract the
/// server keeps (Schemathesis checks it both ways in `tests/contract.rs`). Undeclared methods
/// get 405 with `Allow`.
fn openapi(spec: &Spec, schema: &RowSchema, version: &str, options: &ServiceOptions) -> Value {
    let prediction = if spec.target.task.is_classification() { json!({ "type": "string" }) } else { json!({ "type": "number" }) };
    let json_body = |schema: Value| json!({ "application/json": { "schema": schema } });
    let error =
        |description: &str| json!({ "description": description, "content": json_body(json!({ "$ref": "#/components/schemas/Error" })) });
    let timeout = json!({ "description": "The request, its body included, took longer than the server's time limit" });
    let unavailable = || error("No model is in production yet");
    let internal = || error("An internal error (a bug): the message says what failed");
    let get = |summary: &str, ok: Value| json!({ "get": { "summary": summary, "responses": { "200": ok, "408": timeout, "500": internal(), "503": unavailable() } } });
    json!({
        "openapi": "3.0.3",
        "info": { "title": format!("{} predictions", spec.name), "version": version, "description": spec.description },
        "paths": {
            "/predict": { "post": {
                "summary": "Predict one row or a batch of rows",
                "parameters": [{ "name": "explain", "in": "query", "required": false, "schema": { "type": "boolean" }, "description": format!("true adds each row's explanations: per-feature contributions that sum, with the base, to the model's output (at most {} rows)", options.max_explain_rows) }],
                "requestBody": { "required": true, "content": json_body(json!({ "oneOf": [
                    { "$ref": "#/components/schemas/Row" },
                    { "type": "object", "required": ["rows"], "additionalProperties": false, "properties": { "rows": { "type": "array", "minItems": 1, "maxItems": options.max_rows, "items": { "$ref": "#/components/schemas/Row" } } } }
                ] })) },
                "responses": {
                    "200": { "description": "Predictions, in the order of the rows", "content": json_body(json!({ "$ref": "#/components/schemas/Predictions" })) },
                    "400": error("The body is not JSON"),
                    "408": timeout,
                    "413": error(&format!("More than {} bytes or {} rows, or more than {} rows with explain=true", options.max_body_bytes, options.max_rows, options.max_explain_rows)),
                    "422": error("A row breaks the schema (the message names the row and the field), or the body is not one row nor {\"rows\": [...]} alone"),
                    "500": internal(),
                    "503": unavailable()
                }
            } },
            "/health": { "get": { "summary": "Liveness and the version served (with registry_error while the registry cannot be read)", "responses": {
                "200": { "description": "Serving", "content": json_body(json!({ "type": "object", "required": ["status", "dataset", "model_version"], "properties": {
                    "status": { "type": "string", "enum": ["ok"] }, "dataset": { "type": "string" }, "model_version": { "type": "string" },
                    "registry_error": { "type": "string" }, "challenger": { "type": "object" }
                } })) },
                "408": timeout,
                "500": internal(),
                "503": { "description": "No model yet", "content": json_body(json!({ "type": "object", "required": ["status", "dataset"], "properties": { "status": { "type": "string", "enum": ["no model"] }, "dataset": { "type": "string" } } })) }
            } } },
            "/model": get("Version, schema, metrics and feature importance of the model served", json!({ "description": "The model", "content": json_body(json!({ "type": "object", "required": ["dataset", "version", "schema"], "properties": {
                "dataset": { "type": "string" }, "version": { "type": "string" }, "schema": { "type": "array", "items": { "type": "object" } }, "importance": { "type": "array", "items": { "type": "object" } }
            } })) })),
            "/openapi.json": get("This document", json!({ "description": "The OpenAPI document of the model served", "content": json_body(json!({ "type": "object", "required": ["openapi", "paths"] })) }))
        },
        "components": { "schemas": {
            "Row": schema.json_schema(),
            "Predictions": { "type": "object", "required": ["model_version", "predictions", "prediction_ids"], "properties": {
                "model_version": { "type": "string" },
                "request_id": { "type": "string" },
                "prediction_ids": { "type": "array", "items": { "type": "string" }, "description": "Keys for delayed labels (mlops feedback)" },
                "predictions": { "type": "array", "items": prediction },
                "probabilities": { "type": "array", "items": { "type": "object", "additionalProperties": { "type": "number" } }, "description": "Per class, for classifiers" },
                "explanations": { "type": "array", "description": "With explain=true: for each row, one explanation per model output", "items": { "type": "array", "items": { "$ref": "#/components/schemas/Explanation" } } }
            } },
            "Explanation": { "type": "object", "required": ["space", "base", "contributions"], "properties": {
                "space": { "type": "string", "enum": ["value", "log", "log-odds", "score", "probability"], "description": "Where the contributions add up: the prediction, its log (Poisson), a class's log-odds, score or probability" },
                "class": { "type": "string", "description": "The class explained, for classifiers" },
                "base": { "type": "number", "nullable": true, "description": "The expected output over the training rows (trees) or the intercept (linear models)" },
                "contributions": { "type": "object", "additionalProperties": { "type": "number" }, "description": "Each input's contribution: exact TreeSHAP for trees, coefficient times value for linear models" }
            } },
            "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "string" }, "request_id": { "type": "string" } } }
        } }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explanations_are_asked_by_the_explain_parameter_alone() {
        assert_eq!(explain_asked("/predict"), Ok(false));
        assert_eq!(explain_asked("/predict?explain=true"), Ok(true));
        assert_eq!(explain_asked("/predict?a=b&explain=false"), Ok(false));
        assert_eq!(explain_asked("/predict?explain=true&explain=false"), Ok(false), "the last one counts");
        assert!(
            explain_asked("/predict?explain=1").is_err() && explain_asked("/predict?explain").is_err(),
            "as the document says: true or false"
        );
        assert_eq!(explain_asked("/predict?explainer=1"), Ok(false));
        assert_eq!(explain_asked("/predict?explain=yes"), Err("explain=yes: expected explain=true or explain=false".into()));
    }

    #[test]
    fn bodies_split_into_rows_or_say_what_is_wrong() {
        let rows = |body: &str| split_rows(body.as_bytes()).map(|rows| rows.iter().map(|r| r.get().to_string()).collect::<Vec<_>>());
        assert_eq!(rows(r#"{"a": 1}"#).unwrap(), [r#"{"a": 1}"#]);
        assert_eq!(rows(r#"{"rows": [{"a": 1}, {"a": 2}]}"#).unwrap(), [r#"{"a": 1}"#, r#"{"a": 2}"#]);
        assert_eq!(rows(r#"{"rows": []}"#).unwrap(), Vec::<String>::new());
        assert_eq!(rows("{\"a\": ").unwrap_err().0, 400);
        assert_eq!(split_rows(b"\xff").unwrap_err().0, 400);
        assert_eq!(rows("[1, 2]").unwrap_err(), (422, "expected one row as an object, or {\"rows\": [...]}".to_string()));
        assert_eq!(rows(r#"{"rows": null}"#).unwrap_err(), (422, "'rows' must be an array of objects".to_string()));
        let extra = rows(r#"{"rows": [{"a": 1}], "explain": true}"#).unwrap_err();
        assert_eq!(extra, (422, "a batch is {\"rows\": [...]} with no other field".to_string()));
    }
}
