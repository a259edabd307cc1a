//! Who may ask what. Owns identities (accounts with a [`Role`], grants of collections, API
//! tokens, all in `<data_dir>/auth.json`: [`store`]), the server's view of them (the store
//! re-read when the file changes, browser sessions and login rate limits:
//! [`Authenticator`]), and what an identified request carries to the handlers ([`Caller`],
//! whose [`Scope`] becomes the index [`Filter`] so retrieval never sees a passage outside
//! it). HTTP wiring (middleware, cookies, CSRF) lives in `serve::auth`; the CLI in `cmd`.

mod limiter;
mod sessions;
pub mod store;

pub use limiter::LoginLimiter;
pub use sessions::{Session, Sessions};
pub use store::{AuthStore, TokenInfo, UserInfo};

use lore_index::Filter;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// What an account may do. Ordered: each role may do what the ones before it may.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Ask and search the granted collections.
    Reader,
    /// And upload, delete and re-index documents in them.
    Editor,
    /// Everything, in every collection: users, grants, tokens, settings.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Role, AuthError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "reader" => Ok(Role::Reader),
            "editor" => Ok(Role::Editor),
            "admin" => Ok(Role::Admin),
            other => Err(AuthError::Invalid(format!(
                "unknown role {other:?} (expected admin, editor or reader)"
            ))),
        }
    }
}

/// The collections a caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Collections(BTreeSet<String>),
}

impl Scope {
    pub fn allows(&self, collection: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Collections(names) => names.contains(collection),
        }
    }

    /// The index filter for a request that asked for `requested` collections (`None` or
    /// empty: every collection it may see): the request's list cut to this scope. An
    /// empty result stays a filter that keeps nothing, never "no filter".
    pub fn filter(&self, requested: Option<Vec<String>>) -> Filter {
        let requested = requested.filter(|c| !c.is_empty());
        match (self, requested) {
            (Scope::All, requested) => Filter {
                collections: requested,
            },
            (Scope::Collections(names), None) => Filter::collections(names.iter().cloned()),
            (Scope::Collections(names), Some(wanted)) => {
                Filter::collections(wanted.into_iter().filter(|c| names.contains(c)))
            }
        }
    }

    /// As listed to people: `["*"]` for every collection.
    pub fn names(&self) -> Vec<String> {
        match self {
            Scope::All => vec![ALL_COLLECTIONS.to_string()],
            Scope::Collections(names) => names.iter().cloned().collect(),
        }
    }
}

/// The grant that means every collection.
pub const ALL_COLLECTIONS: &str = "*";

/// How a request proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// No accounts exist and the server is on loopback (or told the network is trusted).
    Anonymous,
    /// `Authorization: Bearer <token>`; the token's id.
    Token(String),
    /// The portal's session cookie; the CSRF token bound to it.
    Session { csrf: String },
    /// A trusted reverse proxy's user header; the CSRF token derived for that user.
    Proxy { csrf: String },
}

/// The identified caller of a request, set by the auth middleware in the request's
/// extensions; handlers take it as an extractor. The audit log (issue 20B) records
/// `user` and the documents a handler cites from here.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `None`: anonymous, when no accounts exist (loopback or `insecure_no_auth`).
    pub user: Option<String>,
    pub role: Role,
    pub scope: Scope,
    pub credential: Credential,
}

impl Caller {
    /// Everything, as before accounts existed.
    pub fn anonymous() -> Caller {
        Caller {
            user: None,
            role: Role::Admin,
            scope: Scope::All,
            credential: Credential::Anonymous,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The CSRF token state-changing requests must carry (browser credentials only).
    pub fn csrf(&self) -> Option<&str> {
        match &self.credential {
            Credential::Session { csrf } | Credential::Proxy { csrf } => Some(csrf),
            Credential::Anonymous | Credential::Token(_) => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid account store: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    #[error("a user named {0:?} exists already")]
    UserExists(String),
    #[error("no token with id {0:?}")]
    NoSuchToken(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("no secure random numbers: {0}")]
    Random(String),
}

pub type Result<T, E = AuthError> = std::result::Result<T, E>;

/// `n` random bytes from the operating system, hex-encoded.
pub(crate) fn random_hex(n: usize) -> Result<String> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// Equal strings, in time that does not depend on where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The store's path under a data directory.
pub fn store_path(data_dir: &Path) -> PathBuf {
    data_dir.join("auth.json")
}

/// What tells one version of auth.json from the next without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<std::time::SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: u64,
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> FileStamp {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            #[cfg(unix)]
            inode: meta.ino(),
        }
    }
}

/// The server's side of authentication: the account store (re-read when `lore user`,
/// `lore grant` or `lore token` change the file, so they work while the server runs),
/// the portal's sessions and the login rate limits.
pub struct Authenticator {
    path: PathBuf,
    cached: RwLock<(Option<FileStamp>, Arc<AuthStore>)>,
    pub sessions: Sessions,
    pub limiter: LoginLimiter,
    pub session_ttl: Duration,
    /// Derives the CSRF tokens of proxy-authenticated users; new at each start.
    proxy_secret: String,
}

impl Authenticator {
    pub fn new(data_dir: &Path, session_hours: u64) -> Result<Authenticator> {
        let authenticator = Authenticator {
            path: store_path(data_dir),
            cached: RwLock::new((None, Arc::new(AuthStore::default()))),
            sessions: Sessions::new(sessions::MAX_SESSIONS),
            limiter: LoginLimiter::new(limiter::LoginLimits::default()),
            session_ttl: Duration::from_secs(session_hours.max(1).saturating_mul(3600)),
            proxy_secret: random_hex(32)?,
        };
        authenticator.current()?;
        Ok(authenticator)
    }

    /// The store as the file now says (one `stat` per call; read again when it changed).
    /// A store that cannot be read is an error: requests fail closed.
    pub fn current(&self) -> Result<Arc<AuthStore>> {
        let stamp = match std::fs::metadata(&self.path) {
            Ok(meta) => Some(FileStamp::of(&meta)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(AuthError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        if let Ok(cached) = self.cached.read() {
            if cached.0 == stamp {
                return Ok(cached.1.clone());
            }
        }
        let store = Arc::new(AuthStore::load(&self.path)?);
        if let Ok(mut cached) = self.cached.write() {
            *cached = (stamp, store.clone());
        }
        Ok(store)
    }

    /// The CSRF token of a user signed in by the trusted proxy: stable for the process,
    /// unguessable without its secret.
    pub fn proxy_csrf(&self, user: &str) -> String {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        hasher.update(self.proxy_secret.as_bytes());
        hasher.update(b"\0csrf\0");
        hasher.update(user.as_bytes());
        hex::encode(hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_cuts_the_requested_collections_and_never_widens() {
        let hr = Scope::Collections(["hr".to_string()].into());
        assert_eq!(hr.filter(None), Filter::collections(["hr"]));
        assert_eq!(hr.filter(Some(vec![])), Filter::collections(["hr"]));
        assert_eq!(
            hr.filter(Some(vec!["hr".into(), "legal".into()])),
            Filter::collections(["hr"])
        );
        // Asking only for what is not granted keeps nothing, not everything.
        assert_eq!(
            hr.filter(Some(vec!["legal".into()])),
            Filter::collections(Vec::<String>::new())
        );
        let none = Scope::Collections(BTreeSet::new());
        assert_eq!(none.filter(None), Filter::collections(Vec::<String>::new()));
        assert_eq!(Scope::All.filter(None), Filter::default());
        assert_eq!(
            Scope::All.filter(Some(vec!["legal".into()])),
            Filter::collections(["legal"])
        );
        assert!(hr.allows("hr") && !hr.allows("legal") && Scope::All.allows("legal"));
    }

    #[test]
    fn roles_parse_and_order() {
        assert_eq!("Admin".parse::<Role>().expect("role"), Role::Admin);
        assert!("root".parse::<Role>().is_err());
        assert!(Role::Reader < Role::Editor && Role::Editor < Role::Admin);
    }

    #[test]
    fn the_server_sees_changes_made_by_the_cli() {
        let dir = tempfile::tempdir().expect("tempdir");
        let auth = Authenticator::new(dir.path(), 12).expect("authenticator");
        assert!(!auth.current().expect("store").has_users());
        AuthStore::update(dir.path(), |s| {
            s.add_user("ann", Role::Reader, "pw-123456789")
        })
        .expect("add");
        assert!(auth.current().expect("store").user("ann").is_some());
        AuthStore::update(dir.path(), |s| s.remove_user("ann")).expect("remove");
        assert!(auth.current().expect("store").user("ann").is_none());
        // A broken file fails closed rather than being read as "no accounts".
        std::fs::write(store_path(dir.path()), b"{not json").expect("write");
        assert!(matches!(auth.current(), Err(AuthError::Corrupt { .. })));
    }
}
