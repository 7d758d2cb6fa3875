//! Access tokens: HS256 JWTs signed with `WABLAST_JWT_SECRET`.

use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Role;

/// What a token says about its bearer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: Uuid,
    /// The user's tenant.
    pub tenant: Uuid,
    /// The user's role when the token was issued.
    pub role: Role,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
}

/// Issues and checks access tokens.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// Tokens signed with `secret`, valid for `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    /// How long a token is valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A token for a user.
    pub fn issue(&self, user: Uuid, tenant: Uuid, role: Role) -> String {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user,
            tenant,
            role,
            iat: now,
            exp: now + i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// The claims of a valid token, or why it is not.
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|err| match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    "the token has expired; log in again".to_owned()
                }
                _ => "the token is not valid".to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_another_secret_refuses_it() {
        let tokens = Tokens::new(b"secret one", Duration::from_secs(60));
        let (user, tenant) = (Uuid::now_v7(), Uuid::now_v7());
        let token = tokens.issue(user, tenant, Role::Owner);
        let claims = tokens.verify(&token).unwrap();
        assert_eq!(
            (claims.sub, claims.tenant, claims.role),
            (user, tenant, Role::Owner)
        );
        assert!(claims.exp - claims.iat == 60);

        let other = Tokens::new(b"secret two", Duration::from_secs(60));
        assert_eq!(other.verify(&token).unwrap_err(), "the token is not valid");
        assert!(tokens.verify("not.a.jwt").is_err());
        // A tampered payload fails the signature.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1].replace_range(0..2, "ey");
        parts[1].push('A');
        assert!(tokens.verify(&parts.join(".")).is_err());
    }

    #[test]
    fn an_expired_token_is_refused() {
        let tokens = Tokens::new(b"secret", Duration::from_secs(0));
        let claims = Claims {
            sub: Uuid::now_v7(),
            tenant: Uuid::now_v7(),
            role: Role::Member,
            iat: 0,
            exp: Utc::now().timestamp() - 60,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert_eq!(
            tokens.verify(&token).unwrap_err(),
            "the token has expired; log in again"
        );
    }
}
