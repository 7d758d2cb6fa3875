//! Passwords: Argon2id (the crate's defaults: 19 MiB, 2 passes), hashed and
//! checked off the async threads.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};

/// The shortest password accepted.
pub const MIN_LENGTH: usize = 8;

/// The longest password accepted (hashing cost is linear in length).
pub const MAX_LENGTH: usize = 1024;

/// The PHC string of `password`.
pub async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|err| anyhow::anyhow!("hashing failed: {err}"))
    })
    .await?
}

/// Whether `password` matches `phc`. An unreadable stored hash matches
/// nothing.
pub async fn verify(password: String, phc: String) -> anyhow::Result<bool> {
    Ok(tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await?)
}

/// A hash to check against when there is no such user, so that a login
/// for an unknown email takes as long as a wrong password.
pub async fn dummy_hash() -> &'static str {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY
        .get_or_init(|| async {
            hash("not a password anyone has".to_owned())
                .await
                .expect("hashing a constant")
        })
        .await
}
