//! The account store, `<data_dir>/auth.json`: users (role, argon2id password hash, grants
//! of collections), API tokens (only a SHA-256 of each secret is kept: a token is 256
//! random bits, so a fast hash is enough; passwords get argon2id). Changes go through
//! [`AuthStore::update`]: an exclusive lock on `auth.lock` (the CLI and the server's admin
//! API may write at once), read, change, and an atomic replace with mode 0600.

use super::{
    constant_time_eq, random_hex, store_path, AuthError, Caller, Credential, Result, Role, Scope,
    ALL_COLLECTIONS,
};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::LazyLock;

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted (bounds the work of hashing one).
pub const MAX_PASSWORD_CHARS: usize = 1024;
/// Tokens start with this, so secret scanners and people recognise them.
pub const TOKEN_PREFIX: &str = "lore_";
/// Longest token lifetime, in days.
pub const MAX_TOKEN_DAYS: u64 = 3650;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthStore {
    #[serde(default)]
    users: BTreeMap<String, User>,
    #[serde(default)]
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub role: Role,
    password_hash: String,
    #[serde(default)]
    pub grants: BTreeSet<String>,
    pub created_at: i64,
    /// New at each password change (and for each new account of a reused name): sessions
    /// opened before it no longer count.
    pub epoch: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Token {
    id: String,
    user: String,
    label: Option<String>,
    /// SHA-256 of the secret part, hex.
    hash: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

/// A user as listed (no hash).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserInfo {
    pub name: String,
    pub role: Role,
    /// Granted collections (`*` = all); admins see every collection whatever is granted.
    pub grants: Vec<String>,
    pub created_at: i64,
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub user: String,
    pub label: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// `active`, `expired` or `revoked`.
    #[schema(value_type = String)]
    pub state: &'static str,
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A hash to verify against when the user does not exist, so a wrong name takes as long
/// as a wrong password (no user-name oracle by timing).
static DUMMY_HASH: LazyLock<Option<String>> =
    LazyLock::new(|| hash_password("not a password of anyone").ok());

fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| AuthError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    // argon2id, version 19, the crate's defaults (19 MiB, 2 passes, 1 lane: OWASP's minimum).
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

fn password_matches(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

fn token_hash(secret: &str) -> String {
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// A user name: 1 to 64 letters, digits, `.`, `_`, `-` or `@`, not starting with `-`.
pub fn check_user_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(AuthError::Invalid(format!(
            "invalid user name {name:?}: 1 to 64 letters, digits, '.', '_', '-' or '@'"
        )))
    }
}

pub fn check_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(AuthError::Invalid(format!(
            "the password is too short: at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(AuthError::Invalid(format!(
            "the password is longer than {MAX_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

fn check_collection(name: &str) -> Result<()> {
    let ok = !name.trim().is_empty() && name.len() <= 200 && !name.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(AuthError::Invalid(format!(
            "invalid collection name {name:?}"
        )))
    }
}

/// A password to hand out: 128 random bits as 32 hex digits.
pub fn generate_password() -> Result<String> {
    random_hex(16)
}

impl AuthStore {
    /// Reads the store; a missing file is an empty store (no accounts).
    pub fn load(path: &Path) -> Result<AuthStore> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(AuthStore::default()),
            Err(source) => {
                return Err(AuthError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        serde_json::from_slice(&bytes).map_err(|source| AuthError::Corrupt {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads the store of `data_dir`, applies `change` and writes it back atomically,
    /// holding `auth.lock` throughout so concurrent writers (CLI, admin API) lose nothing.
    /// Nothing is written when `change` fails.
    pub fn update<T>(
        data_dir: &Path,
        change: impl FnOnce(&mut AuthStore) -> Result<T>,
    ) -> Result<T> {
        let write_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| AuthError::Write { path, source }
        };
        std::fs::create_dir_all(data_dir).map_err(write_error(data_dir))?;
        let lock_path = data_dir.join("auth.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(write_error(&lock_path))?;
        lock.lock().map_err(write_error(&lock_path))?;
        let path = store_path(data_dir);
        let mut store = AuthStore::load(&path)?;
        let result = change(&mut store)?;
        let json = serde_json::to_vec_pretty(&store).map_err(|source| AuthError::Corrupt {
            path: path.clone(),
            source,
        })?;
        crate::files::write_private_atomically(&path, &json).map_err(|e| AuthError::Write {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        Ok(result)
        // `lock` drops here, releasing the lock.
    }

    pub fn has_users(&self) -> bool {
        !self.users.is_empty()
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    pub fn users(&self) -> Vec<UserInfo> {
        self.users
            .iter()
            .map(|(name, u)| UserInfo {
                name: name.clone(),
                role: u.role,
                grants: u.grants.iter().cloned().collect(),
                created_at: u.created_at,
            })
            .collect()
    }

    fn user_mut(&mut self, name: &str) -> Result<&mut User> {
        self.users
            .get_mut(name)
            .ok_or_else(|| AuthError::NoSuchUser(name.to_string()))
    }

    pub fn add_user(&mut self, name: &str, role: Role, password: &str) -> Result<()> {
        check_user_name(name)?;
        check_password(password)?;
        if self.users.contains_key(name) {
            return Err(AuthError::UserExists(name.to_string()));
        }
        let user = User {
            role,
            password_hash: hash_password(password)?,
            grants: BTreeSet::new(),
            created_at: now(),
            epoch: random_hex(8)?,
        };
        self.users.insert(name.to_string(), user);
        Ok(())
    }

    /// Removes the user and their tokens (their sessions end with the next request).
    pub fn remove_user(&mut self, name: &str) -> Result<()> {
        self.keep_an_admin(name, None)?;
        self.users
            .remove(name)
            .ok_or_else(|| AuthError::NoSuchUser(name.to_string()))?;
        self.tokens.retain(|t| t.user != name);
        Ok(())
    }

    /// A new password; the user's open sessions end.
    pub fn set_password(&mut self, name: &str, password: &str) -> Result<()> {
        check_password(password)?;
        let hash = hash_password(password)?;
        let epoch = random_hex(8)?;
        let user = self.user_mut(name)?;
        user.password_hash = hash;
        user.epoch = epoch;
        Ok(())
    }

    pub fn set_role(&mut self, name: &str, role: Role) -> Result<()> {
        self.keep_an_admin(name, Some(role))?;
        self.user_mut(name)?.role = role;
        Ok(())
    }

    pub fn grant(&mut self, name: &str, collections: &[String]) -> Result<()> {
        collections.iter().try_for_each(|c| check_collection(c))?;
        let user = self.user_mut(name)?;
        user.grants
            .extend(collections.iter().map(|c| c.trim().to_string()));
        Ok(())
    }

    pub fn revoke(&mut self, name: &str, collections: &[String]) -> Result<()> {
        let user = self.user_mut(name)?;
        for c in collections {
            user.grants.remove(c.trim());
        }
        Ok(())
    }

    /// Replaces the user's grants.
    pub fn set_grants(&mut self, name: &str, collections: &[String]) -> Result<()> {
        collections.iter().try_for_each(|c| check_collection(c))?;
        self.user_mut(name)?.grants = collections.iter().map(|c| c.trim().to_string()).collect();
        Ok(())
    }

    /// Refuses to leave accounts without an admin (nobody could manage them over HTTP):
    /// `name` becoming `role` (`None`: removed). Removing the very last account is fine.
    fn keep_an_admin(&self, name: &str, role: Option<Role>) -> Result<()> {
        let is_last_admin = self.users.get(name).is_some_and(|u| u.role == Role::Admin)
            && self
                .users
                .iter()
                .all(|(n, u)| n == name || u.role != Role::Admin);
        let others = self.users.len() > 1;
        let demoted = role.is_none_or(|r| r != Role::Admin);
        if is_last_admin && demoted && (others || role.is_some()) {
            return Err(AuthError::Invalid(format!(
                "{name} is the last admin: make another user admin first \
                 (lore user add NAME --role admin)"
            )));
        }
        Ok(())
    }

    /// The collections `name` may see: all for admins and for a `*` grant.
    pub fn scope(&self, name: &str) -> Scope {
        match self.users.get(name) {
            Some(u) if u.role == Role::Admin || u.grants.contains(ALL_COLLECTIONS) => Scope::All,
            Some(u) => Scope::Collections(u.grants.clone()),
            None => Scope::Collections(BTreeSet::new()),
        }
    }

    /// The caller `name` is, if the account exists.
    pub fn caller(&self, name: &str, credential: Credential) -> Option<Caller> {
        let user = self.users.get(name)?;
        Some(Caller {
            user: Some(name.to_string()),
            role: user.role,
            scope: self.scope(name),
            credential,
        })
    }

    /// The account whose password this is. Takes an argon2 verification's time whether or
    /// not the user exists; run it off async workers.
    pub fn verify_password(&self, name: &str, password: &str) -> Option<&User> {
        match self.users.get(name) {
            Some(user) if password_matches(&user.password_hash, password) => Some(user),
            Some(_) => None,
            None => {
                if let Some(dummy) = DUMMY_HASH.as_deref() {
                    let _ = password_matches(dummy, password);
                }
                None
            }
        }
    }

    /// A new API token for `user`; returns it listed and the secret (shown once, never
    /// stored).
    pub fn create_token(
        &mut self,
        user: &str,
        label: Option<&str>,
        expires_days: Option<u64>,
    ) -> Result<(TokenInfo, String)> {
        if !self.users.contains_key(user) {
            return Err(AuthError::NoSuchUser(user.to_string()));
        }
        let label = label.map(str::trim).filter(|l| !l.is_empty());
        if label.is_some_and(|l| l.chars().count() > 200 || l.chars().any(char::is_control)) {
            return Err(AuthError::Invalid(
                "a token label is at most 200 characters, without control characters".into(),
            ));
        }
        let expires_at = match expires_days {
            None => None,
            Some(d @ 1..=MAX_TOKEN_DAYS) => Some(now().saturating_add(d as i64 * 86_400)),
            Some(d) => {
                return Err(AuthError::Invalid(format!(
                    "a token expires after 1 to {MAX_TOKEN_DAYS} days, not {d}"
                )))
            }
        };
        let id = random_hex(6)?;
        let secret = random_hex(32)?;
        let token = Token {
            id: id.clone(),
            user: user.to_string(),
            label: label.map(str::to_string),
            hash: token_hash(&secret),
            created_at: now(),
            expires_at,
            revoked_at: None,
        };
        let info = token_info(&token, now());
        self.tokens.push(token);
        Ok((info, format!("{TOKEN_PREFIX}{id}_{secret}")))
    }

    pub fn tokens(&self) -> Vec<TokenInfo> {
        let now = now();
        self.tokens.iter().map(|t| token_info(t, now)).collect()
    }

    /// Revokes a token for good (it stays listed as revoked).
    pub fn revoke_token(&mut self, id: &str) -> Result<TokenInfo> {
        let token = self
            .tokens
            .iter_mut()
            .find(|t| t.id == id)
            .ok_or_else(|| AuthError::NoSuchToken(id.to_string()))?;
        token.revoked_at.get_or_insert_with(now);
        Ok(token_info(token, now()))
    }

    /// The caller a presented token stands for: `None` when it is malformed, unknown,
    /// wrong, revoked, expired or its user is gone.
    pub fn verify_token(&self, presented: &str, now: i64) -> Option<Caller> {
        let (id, secret) = presented.strip_prefix(TOKEN_PREFIX)?.split_once('_')?;
        let token = self.tokens.iter().find(|t| t.id == id)?;
        let right = constant_time_eq(&token_hash(secret), &token.hash);
        let live = token.revoked_at.is_none() && token.expires_at.is_none_or(|at| now < at);
        if !(right && live) {
            return None;
        }
        self.caller(&token.user, Credential::Token(token.id.clone()))
    }
}

fn token_info(t: &Token, now: i64) -> TokenInfo {
    let state = if t.revoked_at.is_some() {
        "revoked"
    } else if t.expires_at.is_some_and(|at| now >= at) {
        "expired"
    } else {
        "active"
    };
    TokenInfo {
        id: t.id.clone(),
        user: t.user.clone(),
        label: t.label.clone(),
        created_at: t.created_at,
        expires_at: t.expires_at,
        revoked_at: t.revoked_at,
        state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_argon2id_and_checked() {
        let mut store = AuthStore::default();
        store
            .add_user("ann", Role::Editor, "correct horse battery")
            .expect("add");
        let hash = &store.user("ann").expect("ann").password_hash;
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(store
            .verify_password("ann", "correct horse battery")
            .is_some());
        assert!(store
            .verify_password("ann", "correct horse batterY")
            .is_none());
        assert!(store
            .verify_password("bob", "correct horse battery")
            .is_none());
        // Too short, bad names, duplicates.
        assert!(store.add_user("bob", Role::Reader, "short").is_err());
        assert!(store
            .add_user("-x", Role::Reader, "long enough pw")
            .is_err());
        assert!(store
            .add_user("a b", Role::Reader, "long enough pw")
            .is_err());
        assert!(matches!(
            store.add_user("ann", Role::Reader, "long enough pw"),
            Err(AuthError::UserExists(_))
        ));
        // A new password changes the epoch (ending sessions) and the hash.
        let epoch = store.user("ann").expect("ann").epoch.clone();
        store
            .set_password("ann", "another long one")
            .expect("passwd");
        assert_ne!(store.user("ann").expect("ann").epoch, epoch);
        assert!(store
            .verify_password("ann", "correct horse battery")
            .is_none());
        assert!(store.verify_password("ann", "another long one").is_some());
    }

    #[test]
    fn tokens_are_stored_hashed_expire_and_revoke() {
        let mut store = AuthStore::default();
        store
            .add_user("ci", Role::Reader, "long enough pw")
            .expect("add");
        store.grant("ci", &["hr".into()]).expect("grant");
        let (info, secret) = store
            .create_token("ci", Some("nightly"), Some(30))
            .expect("token");
        assert!(secret.starts_with("lore_") && secret.len() > 70, "{secret}");
        let json = serde_json::to_string(&store).expect("json");
        let secret_part = secret.rsplit('_').next().expect("secret");
        assert!(!json.contains(secret_part), "the secret must not be stored");
        let now = now();
        let caller = store.verify_token(&secret, now).expect("valid");
        assert_eq!(caller.user.as_deref(), Some("ci"));
        assert_eq!(caller.scope, Scope::Collections(["hr".to_string()].into()));
        // A wrong secret with the right id, a malformed token, an unknown id.
        let mut wrong = secret.clone();
        wrong.pop();
        wrong.push('x');
        assert!(store.verify_token(&wrong, now).is_none());
        assert!(store.verify_token("lore_nothing", now).is_none());
        assert!(store.verify_token("Bearer", now).is_none());
        // Expired (30 days later) and revoked.
        assert!(store.verify_token(&secret, now + 31 * 86_400).is_none());
        assert_eq!(store.tokens()[0].state, "active");
        store.revoke_token(&info.id).expect("revoke");
        assert!(store.verify_token(&secret, now).is_none());
        assert_eq!(store.tokens()[0].state, "revoked");
        assert!(store.create_token("ci", None, Some(0)).is_err());
        assert!(store.create_token("nobody", None, None).is_err());
        // Removing the user removes their tokens.
        let (_, second) = store.create_token("ci", None, None).expect("token");
        store.remove_user("ci").expect("remove");
        assert!(store.verify_token(&second, now).is_none());
        assert!(store.tokens().is_empty());
    }

    #[test]
    fn the_file_is_private_replaced_atomically_and_fails_closed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        AuthStore::update(&data, |s| s.add_user("root", Role::Admin, "long enough pw"))
            .expect("add");
        let path = store_path(&data);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        // A failing change writes nothing.
        let before = std::fs::read(&path).expect("read");
        let err = AuthStore::update(&data, |s| {
            s.grant("root", &["hr".into()])?;
            s.grant("nobody", &["hr".into()])
        });
        assert!(matches!(err, Err(AuthError::NoSuchUser(_))));
        assert_eq!(std::fs::read(&path).expect("read"), before);
        // No temporary left behind; the lock file is the only other entry.
        let mut names: Vec<String> = std::fs::read_dir(&data)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["auth.json", "auth.lock"]);
        // Concurrent writers lose nothing.
        std::thread::scope(|scope| {
            for i in 0..4 {
                let data = &data;
                scope.spawn(move || {
                    AuthStore::update(data, |s| {
                        s.create_token("root", Some(&format!("t{i}")), None)
                            .map(|_| ())
                    })
                    .expect("token");
                });
            }
        });
        assert_eq!(AuthStore::load(&path).expect("load").tokens().len(), 4);
        std::fs::write(&path, br#"{"users": 3}"#).expect("write");
        assert!(matches!(
            AuthStore::load(&path),
            Err(AuthError::Corrupt { .. })
        ));
    }

    #[test]
    fn the_last_admin_stays() {
        let mut store = AuthStore::default();
        store
            .add_user("root", Role::Admin, "long enough pw")
            .expect("add");
        store
            .add_user("r", Role::Reader, "long enough pw")
            .expect("add");
        assert!(store.remove_user("root").is_err());
        assert!(store.set_role("root", Role::Editor).is_err());
        store.set_role("r", Role::Admin).expect("promote");
        store.set_role("root", Role::Reader).expect("now fine");
        store.remove_user("root").expect("remove");
        // The only account may go: back to no accounts (loopback only).
        store.remove_user("r").expect("remove the last");
        assert!(!store.has_users());
    }

    #[test]
    fn grants_make_the_scope() {
        let mut store = AuthStore::default();
        for (name, role) in [("r", Role::Reader), ("a", Role::Admin)] {
            store.add_user(name, role, "long enough pw").expect("add");
        }
        assert_eq!(store.scope("r"), Scope::Collections(BTreeSet::new()));
        assert_eq!(store.scope("a"), Scope::All);
        store
            .grant("r", &["hr".into(), "legal".into()])
            .expect("grant");
        store.revoke("r", &["legal".into()]).expect("revoke");
        assert_eq!(
            store.scope("r"),
            Scope::Collections(["hr".to_string()].into())
        );
        store.grant("r", &["*".into()]).expect("grant");
        assert_eq!(store.scope("r"), Scope::All);
        assert!(store.grant("r", &[" ".into()]).is_err());
        assert_eq!(store.scope("gone"), Scope::Collections(BTreeSet::new()));
    }
}
