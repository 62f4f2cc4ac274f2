//! HS256 access tokens. The algorithm is pinned: a token that claims another one is rejected.

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Principal;
use crate::domain::Role;

const ISSUER: &str = "healthcore";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    role: Role,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pid: Option<Uuid>,
    iss: String,
    iat: i64,
    exp: i64,
}

#[derive(Clone)]
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    lifetime_seconds: i64,
}

pub struct IssuedToken {
    pub token: String,
    pub expires_in: i64,
}

impl TokenIssuer {
    pub fn new(secret: &[u8], lifetime_seconds: i64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        TokenIssuer {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            lifetime_seconds,
        }
    }

    pub fn issue(&self, principal: &Principal) -> IssuedToken {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: principal.user_id,
            role: principal.role,
            pid: principal.patient_id,
            iss: ISSUER.into(),
            iat: now,
            exp: now + self.lifetime_seconds,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 encoding of a plain struct cannot fail");
        IssuedToken { token, expires_in: self.lifetime_seconds }
    }

    /// Returns the principal of a valid, unexpired token signed by us; `None` for anything else.
    pub fn verify(&self, token: &str) -> Option<Principal> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        let claims = data.claims;
        Some(Principal { user_id: claims.sub, role: claims.role, patient_id: claims.pid })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal() -> Principal {
        Principal { user_id: Uuid::now_v7(), role: Role::Nurse, patient_id: None }
    }

    #[test]
    fn an_issued_token_verifies_to_the_same_principal() {
        let issuer = TokenIssuer::new(b"0123456789abcdef0123456789abcdef", 60);
        let principal = principal();
        assert_eq!(issuer.verify(&issuer.issue(&principal).token), Some(principal));
    }

    #[test]
    fn a_token_signed_with_another_key_is_rejected() {
        let ours = TokenIssuer::new(b"0123456789abcdef0123456789abcdef", 60);
        let theirs = TokenIssuer::new(b"fedcba9876543210fedcba9876543210", 60);
        assert_eq!(ours.verify(&theirs.issue(&principal()).token), None);
    }

    #[test]
    fn an_expired_token_is_rejected() {
        let issuer = TokenIssuer::new(b"0123456789abcdef0123456789abcdef", -60);
        assert_eq!(issuer.verify(&issuer.issue(&principal()).token), None);
    }

    #[test]
    fn an_unsigned_token_is_rejected() {
        let issuer = TokenIssuer::new(b"0123456789abcdef0123456789abcdef", 60);
        let token = issuer.issue(&principal()).token;
        let mut parts: Vec<&str> = token.split('.').collect();
        // {"alg":"none","typ":"JWT"}
        parts[0] = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
        parts[2] = "";
        assert_eq!(issuer.verify(&parts.join(".")), None);
    }
}
