//! `lore serve`: the HTTP API and the web portal on axum. Owns the shared state (models,
//! the index behind a lock, upload jobs), the router ([`app`], so tests drive it in-process)
//! and the server's life (bind, graceful shutdown). Embedding, search, parsing and inference
//! never run on tokio workers: handlers hand them to blocking threads, and the model has
//! its own thread behind a bounded queue.

mod admin;
mod ask;
mod audited;
pub mod auth;
mod common;
mod conn;
mod documents;
mod edge;
mod error;
mod health;
mod jobs;
mod metrics;
mod names;
mod openai;
mod openapi;
mod portal;
mod search;

use crate::config::Config;
use crate::engine::Engine;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::{delete, get, patch, post, put};
use axum::Router;
use lore_embed::Embedder;
use lore_index::Index;
use lore_llm::Generator;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

pub use audited::AuditUser;
pub use error::ApiError;
pub use openapi::ApiDoc;

/// Largest JSON request body (questions, search queries, history).
pub const MAX_JSON_BYTES: usize = 256 * 1024;
/// Longest question accepted, in characters.
pub const MAX_QUESTION_CHARS: usize = 4_000;

/// Everything the handlers share.
pub struct AppState {
    pub config: Config,
    pub embedder: Arc<Embedder>,
    /// Searches take it shared; commits (uploads, deletions) take it exclusively, briefly.
    pub index: Arc<RwLock<Index>>,
    pub generator: Generator,
    /// Answers admitted at once (running + waiting); more get 429.
    pub answer_slots: Arc<Semaphore>,
    pub answer_capacity: usize,
    pub jobs: jobs::Jobs,
    pub metrics: metrics::Metrics,
    /// The drop-folder watcher's status and stop switch, when folders are watched.
    pub watch: Option<crate::watch::WatchHandle>,
    /// Set on SIGINT/SIGTERM: in-flight requests finish, `/readyz` says 503.
    pub draining: Arc<AtomicBool>,
    /// Who asked what, what changed in the library (see [`crate::audit`]).
    pub audit: crate::audit::AuditLog,
    /// Accounts, sessions and sign-in limits.
    pub auth: crate::auth::Authenticator,
    /// The larger model answers may be escalated to, when an admin configured one.
    pub escalator: Option<Arc<crate::escalate::Escalator>>,
}

pub type SharedState = Arc<AppState>;

/// What stops the server from starting or serving (a failed request is an [`ApiError`]).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {bind}: {source}")]
    Listen {
        bind: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {what}: {source}")]
    Start {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Engine(Box<crate::engine::EngineError>),
    #[error(transparent)]
    Library(#[from] crate::files::WriteError),
    #[error(transparent)]
    Jobs(#[from] jobs::JournalError),
    #[error(transparent)]
    Watch(#[from] crate::watch::WatchError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error(transparent)]
    Escalate(#[from] crate::escalate::EscalateError),
    #[error("start-up panicked: {0}")]
    Panicked(#[from] tokio::task::JoinError),
    #[error("the server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// A non-loopback bind without accounts (the message says how to add an admin).
    #[error("{0}")]
    NoAccounts(String),
}

impl From<crate::engine::EngineError> for ServeError {
    fn from(e: crate::engine::EngineError) -> Self {
        ServeError::Engine(Box::new(e))
    }
}

type Result<T, E = ServeError> = std::result::Result<T, E>;

impl AppState {
    /// Opens the index and loads both models (the slow part of start-up).
    pub fn load(config: Config, answer_queue: usize) -> Result<AppState> {
        let Engine { embedder, index } =
            Engine::open_waiting(&config, crate::watch::OPEN_PATIENCE)?;
        // The model's queue holds every answer admitted (`answer_queue`, from the config),
        // so an admitted answer is never refused as busy.
        let generator = crate::engine::load_generator(&config, answer_queue.max(1))?;
        // Interrupted jobs and unindexed uploads are queued again before anything new.
        let jobs = jobs::Jobs::open(&config.data_dir, &index, config.ingest_queue)?;
        // An audit log that cannot be written stops start-up: serving unaudited is not an
        // option the operator chose.
        let audit = crate::audit::AuditLog::open(&config.audit_dir(), config.audit_options())?;
        let auth = crate::auth::Authenticator::new(&config.data_dir, config.session_hours)?;
        let escalator = crate::escalate::Escalator::from_config(&config)?.map(Arc::new);
        Ok(AppState {
            auth,
            config,
            embedder: Arc::new(embedder),
            index: Arc::new(RwLock::new(index)),
            generator,
            answer_slots: Arc::new(Semaphore::new(answer_queue.max(1))),
            answer_capacity: answer_queue.max(1),
            jobs,
            metrics: metrics::Metrics::default(),
            watch: None,
            draining: Arc::default(),
            audit,
            escalator,
        })
    }
}

/// The whole HTTP surface: API, portal, health. Starts the ingestion worker (once).
pub fn app(state: SharedState) -> Router {
    if let Err(e) = jobs::Jobs::start_worker(&state) {
        tracing::error!("cannot start the ingestion worker: uploads will wait: {e}");
    }
    // A backstop: the upload streams to disk and is held to `max_upload_files` files of
    // `max_file_mb` each as it arrives; this bounds the body as a whole.
    let upload_limit = usize::try_from(
        state
            .config
            .max_file_mb
            .saturating_mul(1 << 20)
            .saturating_mul(state.config.max_upload_files as u64),
    )
    .unwrap_or(usize::MAX)
    .saturating_add(1 << 20);
    let api = Router::new()
        .route("/api/ask", post(ask::ask))
        .route("/api/search", post(search::search))
        .route("/api/documents", get(documents::list_documents))
        .route(
            "/api/documents",
            post(documents::upload_documents)
                .layer::<_, std::convert::Infallible>(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/api/documents/{id}", delete(documents::delete_document))
        .route("/api/documents/{id}/raw", get(documents::raw_document))
        .route("/api/jobs/{id}", get(documents::job_status))
        .route("/api/watch", get(health::watch_status))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/models", get(openai::models))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::exposition))
        .route("/api/openapi.json", get(openapi::openapi_json))
        .route("/api/login", post(auth::login))
        .route("/api/logout", post(auth::logout))
        .route("/api/me", get(auth::me))
        .route(
            "/api/admin/users",
            get(admin::list_users).post(admin::add_user),
        )
        .route(
            "/api/admin/users/{name}",
            patch(admin::change_user).delete(admin::remove_user),
        )
        .route("/api/admin/users/{name}/grants", put(admin::set_grants))
        .route(
            "/api/admin/tokens",
            get(admin::list_tokens).post(admin::create_token),
        )
        .route("/api/admin/tokens/{id}", delete(admin::revoke_token))
        .layer(DefaultBodyLimit::max(MAX_JSON_BYTES))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            response_deadline,
        ));
    // Every route is behind authentication (inner layer: it sees the matched route),
    // and metrics count what it refuses too.
    // A handler that panics answers a JSON 500 and the server goes on: the inner layer lets
    // metrics and the audit see that 500, the outer one catches the middleware too.
    let routes = api
        .merge(portal::routes())
        .route_layer(CatchPanicLayer::custom(panic_response))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .fallback(health::not_found)
        .method_not_allowed_fallback(health::method_not_allowed)
        // A body that pauses longer than this fails its request (408).
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            Duration::from_secs(state.config.body_timeout_secs),
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http())
        .with_state(state.clone());
    edge::protect(routes, &state.config)
}

/// A response must start within `request_timeout_secs` (else 503 `timeout`). Uploads are
/// exempt: reading their bodies takes as long as the client's link, and they are bounded
/// by `body_timeout_secs` and the size limits instead. Streams are bounded once started
/// by `stream_idle_secs` (see [`conn`]).
async fn response_deadline(
    axum::extract::State(state): axum::extract::State<SharedState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let is_upload =
        request.method() == axum::http::Method::POST && request.uri().path() == "/api/documents";
    if is_upload {
        return next.run(request).await;
    }
    let limit = Duration::from_secs(state.config.request_timeout_secs);
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

/// The per-connection service: the app with the client's address as `ConnectInfo`
/// (what `into_make_service_with_connect_info` does for a plain `TcpListener`).
#[derive(Clone)]
struct WithClientAddress(Router);

type AddressedRouter =
    axum::middleware::AddExtension<Router, axum::extract::ConnectInfo<std::net::SocketAddr>>;

impl<'a> tower::Service<axum::serve::IncomingStream<'a, conn::GuardedListener>>
    for WithClientAddress
{
    type Response = AddressedRouter;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<AddressedRouter, std::convert::Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(
        &mut self,
        incoming: axum::serve::IncomingStream<'a, conn::GuardedListener>,
    ) -> Self::Future {
        let address = axum::extract::ConnectInfo(*incoming.remote_addr());
        std::future::ready(Ok(tower::Layer::layer(
            &axum::Extension(address),
            self.0.clone(),
        )))
    }
}

/// What a request whose handler panicked gets: our JSON 500; the panic is logged.
fn panic_response(payload: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    ApiError::internal(format!(
        "a request handler panicked: {}",
        crate::fault::panic_message(&*payload)
    ))
    .into_response()
}

/// `lore serve`: binds, serves until SIGINT/SIGTERM, then drains in-flight requests.
pub fn run_serve(config: &Config) -> Result<i32> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("lore-http")
        .build()
        .map_err(|source| ServeError::Start {
            what: "the async runtime",
            source,
        })?;
    runtime.block_on(serve(config.clone()))
}

async fn serve(config: Config) -> Result<i32> {
    let accounts = crate::auth::AuthStore::load(&crate::auth::store_path(&config.data_dir))?;
    auth::check_bind(&config, accounts.has_users()).map_err(ServeError::NoAccounts)?;
    if !accounts.has_users() {
        tracing::warn!(
            "no accounts: anyone who can reach {} has full access (add one with `lore user add admin --role admin`)",
            config.bind
        );
    }
    let bind = config.bind.clone();
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .map_err(|source| ServeError::Listen {
            bind: bind.clone(),
            source,
        })?;
    let address = listener.local_addr().map_err(|source| ServeError::Listen {
        bind: bind.clone(),
        source,
    })?;
    let queue = config.answer_queue;
    let listener =
        conn::GuardedListener::new(listener, Duration::from_secs(config.stream_idle_secs));
    // A folder that cannot be watched stops start-up, before the models load.
    crate::watch::check_roots(&config.watch)?;
    // Listening from the start: while the models load, /healthz answers and everything
    // else (with /readyz) says 503 "starting", so an orchestrator or load balancer can tell
    // a slow start from a dead one. On SIGINT/SIGTERM /readyz turns 503 while in-flight
    // requests drain.
    let ready = Arc::new(std::sync::OnceLock::<Router>::new());
    let draining = Arc::new(AtomicBool::new(false));
    let mut server = tokio::spawn({
        // The edge (host allowlist, headers) stands before the front too, so the 503s of
        // start-up carry the same headers and refuse the same hosts.
        let front = edge::protect(front(ready.clone()), &config);
        let draining = draining.clone();
        async move {
            // The client's address reaches the handlers as ConnectInfo: the audit log, the
            // per-address sign-in limits and the trusted SSO proxy use it.
            axum::serve(listener, WithClientAddress(front))
                .with_graceful_shutdown(async move {
                    shutdown_signal().await;
                    draining.store(true, Ordering::Relaxed);
                })
                .await
        }
    });
    tracing::info!(%address, "listening; loading the models");
    let loading = tokio::task::spawn_blocking(move || AppState::load(config, queue));
    let mut state = tokio::select! {
        loaded = loading => match loaded? {
            Ok(state) => state,
            Err(e) => {
                server.abort();
                return Err(e);
            }
        },
        stopped = &mut server => {
            // Signalled (or failed) before the models were loaded: nothing to drain.
            stopped?.map_err(ServeError::Serve)?;
            return Ok(0);
        }
    };
    state.draining = draining;
    if !state.config.watch.is_empty() {
        state.watch = Some(crate::watch::WatchHandle::starting(
            &crate::watch::WatchOptions::from_config(&state.config),
        ));
    }
    let state = Arc::new(state);
    let watcher = start_watcher(&state)?;
    let _ = ready.set(app(state.clone()));
    tracing::info!(%address, "serving");
    println!("Lore is serving on http://{address}/ (Ctrl-C to stop)");
    server.await?.map_err(ServeError::Serve)?;
    if let (Some(handle), Some(thread)) = (&state.watch, watcher) {
        // The watcher finishes its batch (commits are atomic, so waiting is only tidier).
        handle.stop.store(true, Ordering::Relaxed);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !thread.is_finished() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Let detached blocking work (a commit in progress) finish before the index drops.
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Every request has finished: its audit entry is queued. Write them before exiting.
    let flushing = state.clone();
    tokio::task::spawn_blocking(move || flushing.audit.flush()).await?;
    Ok(0)
}

/// What listens from the first moment: the full [`app`] once it is set, before that
/// `/healthz` (alive) and a 503 "starting" for every other route.
fn front(ready: Arc<std::sync::OnceLock<Router>>) -> Router {
    Router::new().fallback(move |request: axum::extract::Request| {
        let ready = ready.clone();
        async move {
            match ready.get() {
                Some(app) => match app.clone().oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                },
                None if request.uri().path() == "/healthz" => "ok".into_response(),
                None => ApiError::Unavailable(
                    "starting: loading the models and opening the index".into(),
                )
                .into_response(),
            }
        }
    })
}

/// Runs the drop-folder watcher on its own thread against the shared index (commits take
/// the index lock briefly, like uploads), when folders are watched.
fn start_watcher(state: &SharedState) -> Result<Option<std::thread::JoinHandle<()>>> {
    let Some(handle) = state.watch.clone() else {
        return Ok(None);
    };
    let state = state.clone();
    let thread = std::thread::Builder::new()
        .name("lore-watch".into())
        .spawn(move || {
            let options = crate::watch::WatchOptions::from_config(&state.config);
            let result = crate::watch::run_supervised(
                &state.config,
                &state.embedder,
                &options,
                &handle,
                &mut crate::pipeline::SharedIndex(&state.index),
            );
            if let Err(e) = result {
                tracing::error!("the folder watcher stopped: {e:#}");
                if let Ok(mut status) = handle.status.lock() {
                    status.state = crate::watch::journal::WatchState::Stopped;
                    status.last_error = Some(format!("{e:#}"));
                }
            }
        })
        .map_err(|source| ServeError::Start {
            what: "the folder watcher",
            source,
        })?;
    Ok(Some(thread))
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

#[cfg(test)]
mod auth_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigLayer;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    /// A state on an empty index with a stand-in embedding model and a remote generator
    /// that is never reached (an empty index abstains before asking it): routes, errors
    /// and metrics need neither real model, so this runs in the fast tier.
    pub(super) fn state(data: &std::path::Path, queue: usize) -> SharedState {
        state_with(data, queue, ConfigLayer::default())
    }

    /// [`state`] with some settings given.
    fn state_with(data: &std::path::Path, queue: usize, settings: ConfigLayer) -> SharedState {
        let model = data.join("stand-in-embedder");
        lore_embed::write_stand_in_model(&model).expect("stand-in model");
        let config = Config::load(
            None,
            ConfigLayer {
                data_dir: Some(data.to_path_buf()),
                embed_model: Some(model.display().to_string()),
                generator: Some("openai".into()),
                openai_url: Some("http://127.0.0.1:9/v1".into()),
                ..settings
            },
        )
        .expect("config");
        Arc::new(AppState::load(config, queue).expect("state"))
    }

    /// A multipart body with one file part per `(name, bytes)`: (content type, body).
    fn multipart(files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
        let boundary = "jobs-test-boundary";
        let mut body = Vec::new();
        for (name, bytes) in files {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
                     filename=\"{name}\"\r\nContent-Type: text/markdown\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        (format!("multipart/form-data; boundary={boundary}"), body)
    }

    /// Polls a job until it is finished; its status.
    async fn finished_job(app: &Router, id: &str) -> serde_json::Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (status, _, job) = call(app.clone(), "GET", &format!("/api/jobs/{id}"), "").await;
            assert_eq!(status, StatusCode::OK, "{id}: {job}");
            if job["state"] == "done" || job["state"] == "failed" {
                return job;
            }
            assert!(std::time::Instant::now() < deadline, "job stuck: {job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An accepted upload survives a stop before its job ran: the job is journaled
    /// (private files), resumed at the next start under the same id and done; a file left
    /// in the library without a job is queued too; ids go on from where they were.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn accepted_uploads_are_ingested_after_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = ["alpha.md", "beta.md", "gamma.md"];
        {
            // The first server accepts an upload and stops before its worker ever ran
            // (no `app()`: the worker is not started), as a crash would leave it.
            let before = state(dir.path(), 1);
            let slot = before.jobs.reserve().expect("a queue slot");
            let staging = before.jobs.staging().expect("staging");
            let staged: Vec<(String, std::path::PathBuf)> = files
                .iter()
                .map(|name| {
                    let path = staging.path().join(name);
                    let text = format!("# {name}\n\nThe {name} runbook rotates keys weekly.\n");
                    std::fs::write(&path, text).expect("staged file");
                    (name.to_string(), path)
                })
                .collect();
            let id = before
                .jobs
                .enqueue(slot, "default", &staged, None)
                .expect("queued");
            assert_eq!(id, "job-1");
            assert_eq!(
                before.jobs.get(&id).expect("job").state,
                jobs::JobState::Queued
            );
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = |p: &std::path::Path| {
                    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
                };
                assert_eq!(mode(&dir.path().join("jobs")), 0o700);
                assert_eq!(mode(&dir.path().join("jobs/job-1.json")), 0o600);
                assert_eq!(mode(&dir.path().join("jobs/next-id")), 0o600);
            }
        }
        // A file dropped into the library with no job (an upload from before the journal).
        std::fs::write(
            dir.path().join("library/default/delta.md"),
            "# Delta\n\nDelta backups run at 02:00.\n",
        )
        .expect("orphan");

        let after = state(dir.path(), 1);
        let app = app(after.clone());
        let job = finished_job(&app, "job-1").await;
        assert_eq!(job["state"], "done", "{job}");
        assert_eq!(job["resumed"], true, "{job}");
        assert_eq!(
            job["summary"]["ingested"].as_array().map(Vec::len),
            Some(3),
            "{job}"
        );
        let recovery = finished_job(&app, "job-2").await;
        assert_eq!(
            recovery["files"],
            serde_json::json!(["delta.md"]),
            "{recovery}"
        );
        assert_eq!(recovery["state"], "done", "{recovery}");
        let (_, _, listed) = call(app.clone(), "GET", "/api/documents", "").await;
        let mut paths: Vec<&str> = listed["documents"]
            .as_array()
            .expect("documents")
            .iter()
            .filter(|d| d["status"] == "indexed")
            .filter_map(|d| d["path"].as_str())
            .collect();
        paths.sort_unstable();
        assert_eq!(paths, ["alpha.md", "beta.md", "delta.md", "gamma.md"]);

        // The next upload gets a new id, and a third start finds nothing left to do.
        let (content_type, body) = multipart(&[("epsilon.md", b"# Epsilon\n\nEpsilon is new.\n")]);
        let (status, _, bytes) = send_with(
            app.clone(),
            "POST",
            "/api/documents",
            &[("content-type", content_type.as_str())],
            body,
        )
        .await;
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        let accepted: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(accepted["job_id"], "job-3", "{accepted}");
        assert_eq!(finished_job(&app, "job-3").await["state"], "done");
        drop(app);
        drop(after);
        let again = state(dir.path(), 1);
        let app = super::app(again);
        let old = finished_job(&app, "job-1").await;
        assert_eq!(
            old["resumed"], true,
            "finished jobs answer after a restart: {old}"
        );
        let (status, _, _) = call(app, "GET", "/api/jobs/job-4", "").await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "no recovery job when all is indexed"
        );
    }

    /// What one client may take: files per upload (413), the size of a file (413), a
    /// place in the ingestion queue (503 with Retry-After) and a body that pauses (408).
    /// Nothing of a refused upload stays on disk.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn uploads_are_bounded_per_client() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = state_with(
            dir.path(),
            1,
            ConfigLayer {
                max_upload_files: Some(2),
                ingest_queue: Some(1),
                max_file_mb: Some(1),
                body_timeout_secs: Some(1),
                ..ConfigLayer::default()
            },
        );
        let app = app(state.clone());
        let upload = |files: &[(&str, &[u8])]| {
            let (content_type, body) = multipart(files);
            let app = app.clone();
            async move {
                send_with(
                    app,
                    "POST",
                    "/api/documents",
                    &[("content-type", content_type.as_str())],
                    body,
                )
                .await
            }
        };
        let small: &[u8] = b"# Note\n\nA short note.\n";
        let (status, _, bytes) = upload(&[("a.md", small), ("b.md", small), ("c.md", small)]).await;
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON error");
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("max_upload_files")),
            "{body}"
        );
        let big = vec![b'a'; (1 << 20) + 1];
        let (status, _, bytes) = upload(&[("big.txt", &big)]).await;
        assert_eq!(
            status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{}",
            String::from_utf8_lossy(&bytes)
        );

        // The one place in the queue is taken: refused before the body is read.
        let held = state.jobs.reserve().expect("the one slot");
        let (status, headers, bytes) = upload(&[("a.md", small)]).await;
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON error");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "busy", "{body}");
        assert_eq!(headers["retry-after"], "30");
        let (_, _, bytes) = send(app.clone(), "GET", "/metrics", "").await;
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("lore_ingest_queue_jobs 1"), "{text}");
        drop(held);

        // A body that stops half-way fails after body_timeout_secs, not never.
        let (content_type, body) = multipart(&[("slow.md", small)]);
        let half = body[..body.len() / 2].to_vec();
        let stalled = tokio_stream::StreamExt::chain(
            tokio_stream::iter([Ok::<_, std::io::Error>(axum::body::Bytes::from(half))]),
            tokio_stream::pending(),
        );
        let started = std::time::Instant::now();
        let response = app
            .clone()
            .oneshot(
                Request::builder()
                    .method("POST")
                    .uri("/api/documents")
                    .header("content-type", content_type)
                    .body(Body::from_stream(stalled))
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );

        // None of that left a file; a fitting upload still goes through.
        assert_eq!(
            files_under(&dir.path().join("library")),
            Vec::<std::path::PathBuf>::new()
        );
        let (status, _, bytes) = upload(&[("a.md", small), ("b.md", small)]).await;
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        let accepted: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        let id = accepted["job_id"].as_str().expect("job id").to_string();
        assert_eq!(finished_job(&app, &id).await["state"], "done");
    }

    async fn call(
        app: Router,
        method: &str,
        uri: &str,
        body: &str,
    ) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let (status, headers, bytes) = send(app, method, uri, body).await;
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, headers, json)
    }

    async fn send(
        app: Router,
        method: &str,
        uri: &str,
        body: &str,
    ) -> (StatusCode, axum::http::HeaderMap, axum::body::Bytes) {
        let json = [("content-type", "application/json")];
        send_with(app, method, uri, &json, body.as_bytes().to_vec()).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn escalation_is_refused_when_off_and_offered_only_when_possible() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = app(state(dir.path(), 1));
        let ask = "{\"question\": \"who runs the VPN helpdesk?\", \"stream\": false";
        let (status, _, body) = call(
            app.clone(),
            "POST",
            "/api/ask",
            &format!("{ask}, \"escalate\": true}}"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("escalate_url")),
            "{body}"
        );
        // Off: a local answer says nothing about escalation.
        let (status, _, body) = call(app, "POST", "/api/ask", &format!("{ask}}}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("escalation").is_none(), "{body}");

        // Configured: an answer with no passages is not offered for escalation, and an
        // escalation of it abstains without contacting the larger model (port 9: nothing).
        let mut config = state(dir.path(), 1).config.clone();
        config.escalate_url = Some("http://127.0.0.1:9/v1".into());
        config.escalate_collections = vec!["*".into()];
        let app = app_for(config);
        let (status, _, body) = call(app.clone(), "POST", "/api/ask", &format!("{ask}}}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["escalation"]["available"], false, "{body}");
        assert!(body["escalation"]["reason"].is_string(), "{body}");
        let (status, _, body) = call(
            app,
            "POST",
            "/api/ask",
            &format!("{ask}, \"escalate\": true}}"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["abstained"], true, "{body}");
        assert!(body["escalated"]["masked"].is_object(), "{body}");
    }

    fn app_for(config: Config) -> Router {
        app(Arc::new(AppState::load(config, 1).expect("state")))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn errors_are_json_with_a_fitting_status() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = state(dir.path(), 1);
        let app = app(state.clone());

        let (status, _, body) = call(app.clone(), "POST", "/api/ask", "{\"question\": ").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "bad_request");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("EOF")),
            "{body}"
        );

        let (status, _, body) = call(app.clone(), "GET", "/nowhere", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "not_found");

        let (status, _, body) = call(
            app.clone(),
            "POST",
            "/api/search",
            "{\"query\": \"backups\", \"k\": 500}",
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

        // An empty index answers searches with nothing, not an error.
        let (status, _, body) = call(
            app.clone(),
            "POST",
            "/api/search",
            "{\"query\": \"backups\"}",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["results"], serde_json::json!([]));

        // Every answer slot taken: 429 with Retry-After, before any work.
        let held = state
            .answer_slots
            .clone()
            .try_acquire_owned()
            .expect("slot");
        let (status, headers, body) = call(
            app.clone(),
            "POST",
            "/api/ask",
            "{\"question\": \"When do backups run?\"}",
        )
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert!(headers.contains_key("retry-after"));
        drop(held);

        // With the slot back and nothing indexed, the answer is "not found", not an error.
        let (status, _, body) = call(
            app,
            "POST",
            "/api/ask",
            "{\"question\": \"When do backups run?\", \"stream\": false}",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["abstained"], true, "{body}");
        assert_eq!(body["answer"], crate::rag::NOT_FOUND);

        // Everything above shows in the Prometheus exposition, under route patterns.
        let (status, _, bytes) = send(super::app(state.clone()), "GET", "/metrics", "").await;
        assert_eq!(status, StatusCode::OK);
        let text = String::from_utf8_lossy(&bytes);
        for line in [
            "lore_http_requests_total{route=\"/api/search\",method=\"POST\",status=\"200\"} 1",
            "lore_http_requests_total{route=\"/api/ask\",method=\"POST\",status=\"429\"} 1",
            "lore_http_requests_total{route=\"/api/ask\",method=\"POST\",status=\"200\"} 1",
            "lore_answers_total 1",
            "lore_answer_queue_depth 0",
            "lore_documents 0",
            "lore_ingest_queue_jobs 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        assert!(text.contains("lore_http_request_duration_seconds_bucket{"));
        assert!(text.contains("lore_time_to_first_token_seconds_count 1"));

        // Draining after SIGTERM: not ready any more, while requests in flight finish.
        let (status, _, _) = call(super::app(state.clone()), "GET", "/readyz", "").await;
        assert_eq!(status, StatusCode::OK);
        state
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let (status, _, body) = call(super::app(state), "GET", "/readyz", "").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "unavailable");
    }

    /// Questions asked and searches made through the API land in the audit log with the
    /// signed-in user (the extension the authentication middleware sets), the client's
    /// address, the route, the question and the outcome, in one verified chain.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn asks_and_searches_are_audited() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = state(dir.path(), 1);
        let client: std::net::SocketAddr = "192.0.2.7:50000".parse().expect("address");
        // alice signs every request with her API token.
        let (_, token) = crate::auth::AuthStore::update(&state.config.data_dir, |store| {
            store.add_user("alice", crate::auth::Role::Admin, "correct horse battery")?;
            store.create_token("alice", None, None)
        })
        .expect("an account");
        let bearer = axum::http::HeaderValue::from_str(&format!("Bearer {token}")).expect("ascii");
        let app = app(state.clone())
            .layer(axum::middleware::map_request(
                move |mut request: axum::extract::Request| {
                    let bearer = bearer.clone();
                    async move {
                        request
                            .headers_mut()
                            .insert(axum::http::header::AUTHORIZATION, bearer);
                        request
                    }
                },
            ))
            .layer(axum::extract::connect_info::MockConnectInfo(client));
        let (status, _, _) = call(
            app.clone(),
            "POST",
            "/api/search",
            "{\"query\": \"backup retention\"}",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, body) = call(
            app.clone(),
            "POST",
            "/api/ask",
            "{\"question\": \"When do backups run?\", \"stream\": false}",
        )
        .await;
        assert_eq!(
            (status, &body["abstained"]),
            (StatusCode::OK, &serde_json::json!(true))
        );
        let held = state
            .answer_slots
            .clone()
            .try_acquire_owned()
            .expect("slot");
        let (status, _, _) = call(
            app.clone(),
            "POST",
            "/v1/chat/completions",
            "{\"messages\": [{\"role\": \"user\", \"content\": \"Who signs off?\"}]}",
        )
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        drop(held);
        let (status, _, _) = call(app.clone(), "DELETE", "/api/documents/abc123", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        state.audit.flush();
        let audit_dir = state.config.audit_dir();
        let records: Vec<crate::audit::Record> = crate::audit::read_tail(&audit_dir, 10)
            .expect("tail")
            .iter()
            .map(|l| serde_json::from_str(l).expect("a record"))
            .collect();
        let seen: Vec<(&str, Option<&str>, &str)> = records
            .iter()
            .map(|r| (r.route.as_str(), r.question.as_deref(), r.outcome.as_str()))
            .collect();
        assert_eq!(
            seen[..3],
            [
                ("/api/search", Some("backup retention"), "ok"),
                ("/api/ask", Some("When do backups run?"), "abstained"),
                (
                    "/v1/chat/completions",
                    Some("Who signs off?"),
                    "error 429 busy: the answer queue is full; retry in 10 s"
                ),
            ],
            "{records:#?}"
        );
        assert_eq!(records[3].route, "/api/documents/{id}");
        assert_eq!(records[3].documents, vec!["abc123".to_string()]);
        assert!(
            records[3].outcome.starts_with("error 404 not_found"),
            "{:?}",
            records[3]
        );
        for r in &records {
            assert_eq!(r.user.as_deref(), Some("alice"));
            assert_eq!(r.address.as_deref(), Some("192.0.2.7"));
        }
        assert_eq!(
            crate::audit::verify(&audit_dir).expect("verifies").entries,
            4
        );
        let (_, _, bytes) = send(app, "GET", "/metrics", "").await;
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("lore_audit_entries_total 4"), "{text}");
        assert!(text.contains("lore_audit_failures_total 0"), "{text}");
    }

    async fn send_with(
        app: Router,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (StatusCode, axum::http::HeaderMap, axum::body::Bytes) {
        let mut request = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = app
            .oneshot(request.body(Body::from(body)).expect("request"))
            .await
            .expect("response");
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, headers, bytes)
    }

    fn assert_security_headers(headers: &axum::http::HeaderMap, what: &str) {
        assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{what}");
        assert!(headers.contains_key("content-security-policy"), "{what}");
        assert!(
            !headers.contains_key("access-control-allow-origin"),
            "{what}: no CORS unless configured"
        );
    }

    fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(files_under(&path));
            } else {
                found.push(path);
            }
        }
        found
    }

    /// The network edge in front of every route: other hosts get 421 (DNS rebinding),
    /// a cross-site upload gets 403 and writes nothing, the portal's own upload goes
    /// through, and every response (JSON, error, portal, original) carries the security
    /// headers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_edge_refuses_other_hosts_and_cross_site_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = state(dir.path(), 1);
        let app = app(state.clone());
        let own = [("host", "127.0.0.1:8080")];

        for host in [
            "evil.example",
            "evil.example:8080",
            "127.0.0.1.evil.example",
        ] {
            let (status, headers, bytes) = send_with(
                app.clone(),
                "GET",
                "/api/documents",
                &[("host", host)],
                vec![],
            )
            .await;
            assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{host}");
            let body: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON error");
            assert_eq!(body["error"]["code"], "misdirected_request", "{body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("allowed_hosts")),
                "{body}"
            );
            assert_security_headers(&headers, "421");
        }
        for host in [
            "127.0.0.1:8080",
            "localhost:8080",
            "[::1]:8080",
            "localhost",
        ] {
            let (status, headers, _) =
                send_with(app.clone(), "GET", "/readyz", &[("host", host)], vec![]).await;
            assert_eq!(status, StatusCode::OK, "{host}");
            assert_security_headers(&headers, host);
        }

        // A cross-site page's multipart upload: refused before the body is read.
        let boundary = "edge-test-boundary";
        let upload = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"zephyr.md\"\r\nContent-Type: text/markdown\r\n\r\n\
             # Zephyr\n\nThe Zephyr gateway rotates its keys every 17 days.\n\r\n--{boundary}--\r\n"
        )
        .into_bytes();
        let multipart = format!("multipart/form-data; boundary={boundary}");
        for attack in [
            &[("origin", "http://evil.example")][..],
            &[("origin", "null")][..],
            &[("sec-fetch-site", "cross-site")][..],
        ] {
            let mut headers = vec![own[0], ("content-type", multipart.as_str())];
            headers.extend_from_slice(attack);
            let (status, response_headers, bytes) = send_with(
                app.clone(),
                "POST",
                "/api/documents",
                &headers,
                upload.clone(),
            )
            .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{attack:?}");
            let body: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON error");
            assert_eq!(body["error"]["code"], "forbidden", "{body}");
            assert_security_headers(&response_headers, "403");
        }
        assert_eq!(
            files_under(&dir.path().join("library")),
            Vec::<std::path::PathBuf>::new()
        );
        let (_, _, bytes) = send_with(app.clone(), "GET", "/api/documents", &own, vec![]).await;
        let listed: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(listed["documents"], serde_json::json!([]), "{listed}");
        // Deleting from another site is refused the same way (before the id is looked up).
        let (status, _, _) = send_with(
            app.clone(),
            "DELETE",
            "/api/documents/0123456789abcdef",
            &[own[0], ("origin", "http://evil.example")],
            vec![],
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        // The portal's own upload (same origin, as a browser sends it) goes through.
        let (status, _, bytes) = send_with(
            app.clone(),
            "POST",
            "/api/documents",
            &[
                own[0],
                ("content-type", multipart.as_str()),
                ("origin", "http://127.0.0.1:8080"),
                ("sec-fetch-site", "same-origin"),
            ],
            upload,
        )
        .await;
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        let accepted: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        let job_url = accepted["status_url"]
            .as_str()
            .expect("status_url")
            .to_string();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (_, _, bytes) = send_with(app.clone(), "GET", &job_url, &own, vec![]).await;
            let job: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
            if job["state"] != "running" && job["state"] != "queued" {
                assert_eq!(job["state"], "done", "{job}");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "job stuck: {job}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (_, headers, bytes) =
            send_with(app.clone(), "GET", "/api/documents", &own, vec![]).await;
        assert_eq!(headers["content-security-policy"], edge::API_CSP);
        assert_security_headers(&headers, "JSON");
        let listed: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        let id = listed["documents"][0]["id"]
            .as_str()
            .expect("the upload is listed");

        // The original keeps its sandbox; the portal forbids framing.
        let (status, headers, bytes) = send_with(
            app.clone(),
            "GET",
            &format!("/api/documents/{id}/raw"),
            &own,
            vec![],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(String::from_utf8_lossy(&bytes).contains("17 days"));
        assert_eq!(headers["content-security-policy"], "sandbox");
        assert_security_headers(&headers, "raw");
        for asset in ["/", "/app.js", "/style.css"] {
            let (status, headers, _) = send_with(app.clone(), "GET", asset, &own, vec![]).await;
            assert_eq!(status, StatusCode::OK, "{asset}");
            let csp = headers["content-security-policy"].to_str().expect("CSP");
            assert!(csp.contains("frame-ancestors 'none'"), "{asset}: {csp}");
            assert!(csp.contains("default-src 'self'"), "{asset}: {csp}");
            assert_security_headers(&headers, asset);
        }
    }

    /// While the models load, the listener answers: alive, not ready, every other route
    /// 503; once the app is set, everything goes to it.
    #[tokio::test]
    async fn the_front_says_starting_until_the_app_is_set() {
        let ready = Arc::new(std::sync::OnceLock::<Router>::new());
        let front = front(ready.clone());
        let (status, _, bytes) = send(front.clone(), "GET", "/healthz", "").await;
        assert_eq!((status, &bytes[..]), (StatusCode::OK, &b"ok"[..]));
        for (method, uri) in [("GET", "/readyz"), ("POST", "/api/search"), ("GET", "/")] {
            let (status, headers, body) = call(front.clone(), method, uri, "{}").await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{uri}: {body}");
            assert_eq!(body["error"]["code"], "unavailable", "{uri}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("starting")),
                "{body}"
            );
            assert!(headers.contains_key("content-type"));
        }
        let app = Router::new().route("/readyz", get(|| async { "the app" }));
        assert!(ready.set(app).is_ok());
        let (status, _, bytes) = send(front, "GET", "/readyz", "").await;
        assert_eq!((status, &bytes[..]), (StatusCode::OK, &b"the app"[..]));
    }

    /// A multipart upload of `files` (name, text) into `collection`; status and JSON.
    async fn upload(
        app: Router,
        files: &[(&str, &str)],
        collection: Option<&str>,
    ) -> (StatusCode, serde_json::Value) {
        let boundary = "safety-test-boundary";
        let mut body = String::new();
        if let Some(c) = collection {
            body.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"collection\"\r\n\r\n{c}\r\n"
            ));
        }
        for (name, text) in files {
            body.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
                 filename=\"{name}\"\r\nContent-Type: text/markdown\r\n\r\n{text}\r\n"
            ));
        }
        body.push_str(&format!("--{boundary}--\r\n"));
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let (status, _, bytes) = send_with(
            app,
            "POST",
            "/api/documents",
            &[("content-type", content_type.as_str())],
            body.into_bytes(),
        )
        .await;
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    fn paths(list: &serde_json::Value) -> Vec<String> {
        let mut paths: Vec<String> = list
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| v.as_str().or(v["path"].as_str()).unwrap_or("").to_string())
            .collect();
        paths.sort();
        paths
    }

    /// Injected panics at each stage cost one file or one request: the batch goes on, the
    /// job ends, the lock a commit panicked under is recovered, and every route answers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_fails_one_file_or_one_request_never_the_server() {
        use crate::fault::{arm, Stage};
        let dir = tempfile::tempdir().expect("tempdir");
        let state = state(dir.path(), 1);
        let app = app(state.clone());
        arm(Stage::Parse, "panic-parse.md", None);
        arm(Stage::Chunk, "panic-chunk.md", None);
        arm(Stage::Embed, "panic-embed.md", None);
        arm(Stage::Commit, "panic-commit.md", None);
        arm(Stage::Job, "panic-job.md", None);
        arm(Stage::Raw, "panic-raw.md", None);
        let text = "# Notes\n\nThe Zephyr gateway rotates its keys every 17 days.\n";
        let files = [
            ("kept-1.md", text),
            ("panic-parse.md", text),
            ("panic-chunk.md", text),
            ("panic-embed.md", text),
            ("panic-commit.md", text),
            ("kept-2.md", text),
            ("panic-raw.md", text),
        ];
        let (status, accepted) = upload(app.clone(), &files, None).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        let job = finished_job(&app, accepted["job_id"].as_str().expect("job_id")).await;
        assert_eq!(job["state"], "done", "{job}");
        let summary = &job["summary"];
        assert_eq!(
            paths(&summary["ingested"]),
            ["kept-1.md", "kept-2.md", "panic-raw.md"],
            "{job}"
        );
        assert_eq!(
            paths(&summary["failed"]),
            [
                "panic-chunk.md",
                "panic-commit.md",
                "panic-embed.md",
                "panic-parse.md"
            ],
            "{job}"
        );
        for failure in summary["failed"].as_array().expect("failed") {
            let reason = failure["reason"].as_str().expect("reason");
            assert!(reason.contains("crashed"), "{reason}");
        }
        // The commit panicked with the write lock held: recovered on the next use.
        let (status, _, listed) = call(app.clone(), "GET", "/api/documents", "").await;
        assert_eq!(status, StatusCode::OK, "{listed}");
        assert!(!state.index.is_poisoned());
        let statuses: Vec<(String, String)> = listed["documents"]
            .as_array()
            .expect("documents")
            .iter()
            .map(|d| {
                let path = d["path"].as_str().unwrap_or("").to_string();
                (path, d["status"].as_str().unwrap_or("").to_string())
            })
            .collect();
        assert_eq!(statuses.len(), 7, "{listed}");
        assert!(statuses.contains(&("panic-commit.md".into(), "failed".into())));
        assert!(statuses.contains(&("kept-2.md".into(), "indexed".into())));
        let (status, _, found) = call(
            app.clone(),
            "POST",
            "/api/search",
            "{\"query\": \"Zephyr gateway keys\"}",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{found}");
        assert!(!found["results"].as_array().expect("results").is_empty());

        // A panic in the job's runner fails that job; the next one runs.
        let (_, accepted) = upload(app.clone(), &[("panic-job.md", text)], None).await;
        let job = finished_job(&app, accepted["job_id"].as_str().expect("job_id")).await;
        assert_eq!(job["state"], "failed", "{job}");
        assert!(
            job["error"].as_str().is_some_and(|e| e.contains("crashed")),
            "{job}"
        );
        let (_, accepted) = upload(app.clone(), &[("kept-3.md", text)], None).await;
        assert_eq!(
            finished_job(&app, accepted["job_id"].as_str().expect("job_id")).await["state"],
            "done"
        );

        // A handler that panics answers our JSON 500; the server goes on answering.
        let id = listed["documents"]
            .as_array()
            .expect("documents")
            .iter()
            .find(|d| d["path"] == "panic-raw.md")
            .and_then(|d| d["id"].as_str())
            .expect("panic-raw.md listed")
            .to_string();
        let (status, _, body) =
            call(app.clone(), "GET", &format!("/api/documents/{id}/raw"), "").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert_eq!(body["error"]["code"], "internal", "{body}");
        let (status, _, _) = call(app.clone(), "GET", "/api/documents", "").await;
        assert_eq!(status, StatusCode::OK);
        let (_, _, bytes) = send(app, "GET", "/metrics", "").await;
        let metrics = String::from_utf8_lossy(&bytes);
        let line = "lore_http_requests_total{route=\"/api/documents/{id}/raw\",method=\"GET\",status=\"500\"} 1";
        assert!(metrics.contains(line), "{metrics}");
        assert!(metrics.contains("lore_documents 4"), "{metrics}");
    }

    /// Stored names: format characters dropped, long names cut in bytes keeping their
    /// extension, over-long collection names refused with a 400 naming the limit; an
    /// original replaced by a link out of the upload area is not served.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hostile_names_and_links_are_contained() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = app(state(dir.path(), 1));
        let text = "# Rota\n\nThe night shift hands over at 22:00 on the second floor.\n";
        let long = format!("{}.md", "é".repeat(150));
        let files = [
            ("report\u{202E}dm.exe\u{200B}.md", text),
            (long.as_str(), text),
        ];
        let (status, accepted) = upload(app.clone(), &files, None).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        let stored = paths(&accepted["files"]);
        assert_eq!(stored[0], "reportdm.exe.md");
        assert_eq!(stored[1], format!("{}.md", "é".repeat(98)));
        assert_eq!(
            finished_job(&app, accepted["job_id"].as_str().expect("job_id")).await["state"],
            "done"
        );

        let collection = "é".repeat(150);
        let (status, body) = upload(app.clone(), &[("a.md", text)], Some(&collection)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("at most 100 bytes")),
            "{body}"
        );

        // The stored original becomes a link to a file outside: not served.
        let outside = tempfile::tempdir().expect("tempdir");
        let secret = outside.path().join("os-release");
        std::fs::write(&secret, "NAME=secret").expect("write");
        let original = dir.path().join("library/default/reportdm.exe.md");
        std::fs::remove_file(&original).expect("remove");
        #[cfg(unix)]
        std::os::unix::fs::symlink(&secret, &original).expect("symlink");
        let (_, _, listed) = call(app.clone(), "GET", "/api/documents", "").await;
        let id = listed["documents"]
            .as_array()
            .expect("documents")
            .iter()
            .find(|d| d["path"] == "reportdm.exe.md")
            .and_then(|d| d["id"].as_str())
            .expect("listed")
            .to_string();
        let (status, _, bytes) = send(app, "GET", &format!("/api/documents/{id}/raw"), "").await;
        let body = String::from_utf8_lossy(&bytes);
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert!(body.contains("not served"), "{body}");
        assert!(!body.contains("NAME=secret"), "{body}");
    }

    /// A watcher that panics is restarted, says so in /api/watch and /metrics, and then
    /// indexes the file; a link out of the watched folder is never taken.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_watcher_restarts_after_a_panic_and_reports_it() {
        crate::fault::arm(crate::fault::Stage::Watch, "watch-crash.md", Some(1));
        let dir = tempfile::tempdir().expect("tempdir");
        let watched = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("os-release"), "NAME=secret distro").expect("write");
        #[cfg(unix)]
        std::os::unix::fs::symlink(
            outside.path().join("os-release"),
            watched.path().join("os-release.md"),
        )
        .expect("symlink");
        let mut config = state(dir.path(), 1).config.clone();
        config.watch = vec![watched.path().to_path_buf()];
        config.watch_settle_ms = 100;
        let mut loaded = AppState::load(config, 1).expect("state");
        let options = crate::watch::WatchOptions::from_config(&loaded.config);
        loaded.watch = Some(crate::watch::WatchHandle::starting(&options));
        let state = Arc::new(loaded);
        let watcher = start_watcher(&state).expect("start").expect("a watcher");
        std::fs::write(
            watched.path().join("watch-crash.md"),
            "# Boiler\n\nThe boiler is serviced every March by Hendricks.\n",
        )
        .expect("write");
        let app = app(state.clone());
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let listed = loop {
            let (_, _, listed) = call(app.clone(), "GET", "/api/documents", "").await;
            if !listed["documents"].as_array().is_none_or(Vec::is_empty) {
                break listed;
            }
            assert!(std::time::Instant::now() < deadline, "never indexed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let listed_paths: Vec<&str> = listed["documents"]
            .as_array()
            .expect("documents")
            .iter()
            .filter_map(|d| d["path"].as_str())
            .collect();
        assert_eq!(listed_paths, ["watch-crash.md"], "{listed}");
        let (_, _, report) = call(app.clone(), "GET", "/api/watch", "").await;
        let status = &report["status"];
        assert_eq!(status["restarts"], 1, "{report}");
        assert!(
            status["last_panic"]
                .as_str()
                .is_some_and(|m| m.contains("watch-crash.md")),
            "{report}"
        );
        let (_, _, bytes) = send(app, "GET", "/metrics", "").await;
        assert!(String::from_utf8_lossy(&bytes).contains("lore_watch_restarts 1"));
        if let Some(handle) = &state.watch {
            handle.stop.store(true, Ordering::Relaxed);
        }
        tokio::task::spawn_blocking(move || watcher.join())
            .await
            .expect("join")
            .expect("the watcher thread ends cleanly");
    }
}
