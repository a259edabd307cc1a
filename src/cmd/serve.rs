//! `lore serve`: the portal and the HTTP API until SIGINT/SIGTERM.

use crate::config::{Config, ConfigLayer};
use anyhow::Result;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address and port to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "LORE_BIND", value_name = "ADDR:PORT")]
    pub bind: Option<String>,
    /// Answers admitted at once (one runs, the rest wait); more get 429 Retry-After
    /// [default: 4]
    #[arg(long, env = "LORE_ANSWER_QUEUE", value_name = "N")]
    pub answer_queue: Option<usize>,
    /// Files one upload may carry; more get 413 [default: 100]
    #[arg(long, env = "LORE_MAX_UPLOAD_FILES", value_name = "N")]
    pub max_upload_files: Option<usize>,
    /// Upload jobs waiting for the ingestion worker; more get 503 Retry-After [default: 32]
    #[arg(long, env = "LORE_INGEST_QUEUE", value_name = "N")]
    pub ingest_queue: Option<usize>,
    /// Seconds until a response must start (uploads excepted); then 503 [default: 300]
    #[arg(long, env = "LORE_REQUEST_TIMEOUT_SECS", value_name = "S")]
    pub request_timeout_secs: Option<u64>,
    /// Seconds a request body may pause; then 408 [default: 30]
    #[arg(long, env = "LORE_BODY_TIMEOUT_SECS", value_name = "S")]
    pub body_timeout_secs: Option<u64>,
    /// Seconds a response may wait on a client that does not read it before the answer
    /// stops, its slot is freed and the connection closed [default: 30]
    #[arg(long, env = "LORE_STREAM_IDLE_SECS", value_name = "S")]
    pub stream_idle_secs: Option<u64>,
    /// Folder to keep the index in step with (repeatable; see `lore watch --help`)
    #[arg(
        long = "watch",
        env = "LORE_WATCH",
        value_name = "DIR",
        value_delimiter = ':'
    )]
    pub watch: Vec<PathBuf>,
    /// Host name the server also answers to (repeatable): the name users reach it by when
    /// it is not the bind address; `*.example.com` for a domain. Others get 421
    #[arg(
        long = "allowed-host",
        env = "LORE_ALLOWED_HOSTS",
        value_name = "HOST",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<crate::hosts::AllowedHost>,
    /// Origin of a web application allowed to call the API from the browser (CORS;
    /// repeatable), e.g. https://wiki.example.com. None by default
    #[arg(
        long = "cors-origin",
        env = "LORE_CORS_ORIGINS",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<crate::hosts::CorsOrigin>,
    #[command(flatten)]
    pub watch_flags: super::watch::WatchFlags,
    /// Serve without accounts on a non-loopback address: only on a network you trust
    /// completely (anyone reaching the port may read, upload and delete everything).
    #[arg(long, env = "LORE_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// Hours a portal sign-in lasts [default: 12]
    #[arg(long, env = "LORE_SESSION_HOURS", value_name = "N")]
    pub session_hours: Option<u64>,
    /// Header a trusted reverse proxy names the signed-in user in (single sign-on),
    /// e.g. X-Remote-User; honoured only from --auth-proxy-address
    #[arg(long, env = "LORE_AUTH_PROXY_HEADER", value_name = "HEADER")]
    pub auth_proxy_header: Option<String>,
    /// Address of a trusted reverse proxy (repeatable)
    #[arg(
        long = "auth-proxy-address",
        env = "LORE_AUTH_PROXY_ADDRESSES",
        value_name = "IP",
        value_delimiter = ','
    )]
    pub auth_proxy_addresses: Vec<std::net::IpAddr>,
}

impl Args {
    pub(super) fn layer(&self, layer: &mut ConfigLayer) {
        layer.bind = self.bind.clone();
        layer.answer_queue = self.answer_queue;
        layer.max_upload_files = self.max_upload_files;
        layer.ingest_queue = self.ingest_queue;
        layer.request_timeout_secs = self.request_timeout_secs;
        layer.body_timeout_secs = self.body_timeout_secs;
        layer.stream_idle_secs = self.stream_idle_secs;
        layer.watch = (!self.watch.is_empty()).then(|| self.watch.clone());
        layer.allowed_hosts = (!self.allowed_hosts.is_empty()).then(|| self.allowed_hosts.clone());
        layer.cors_origins = (!self.cors_origins.is_empty()).then(|| self.cors_origins.clone());
        self.watch_flags.layer(layer);
        layer.insecure_no_auth = self.insecure_no_auth.then_some(true);
        layer.session_hours = self.session_hours;
        layer.auth_proxy_header = self.auth_proxy_header.clone();
        layer.auth_proxy_addresses =
            (!self.auth_proxy_addresses.is_empty()).then(|| self.auth_proxy_addresses.clone());
    }
}

/// `lore serve`.
pub fn run(config: &Config) -> Result<i32> {
    Ok(crate::serve::run_serve(config)?)
}
