//! HS256 access tokens. The algorithm is pinned: a token that claims another one is rejected.

use super::Principal;
use crate::domain::{PatientId, Role, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

const ISSUER: &str = "healthcore";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: UserId,
    role: Role,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pid: Option<PatientId>,
    /// The account's token version when issued: any later change to the account ends the token.
    #[serde(default)]
    ver: i64,
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

/// What a valid token says: who, with which role, issued at which version of the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed {
    pub principal: Principal,
    pub token_version: i64,
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

    pub fn issue(&self, principal: &Principal, token_version: i64) -> IssuedToken {
        let now = crate::clock::now().timestamp();
        let claims = Claims {
            sub: principal.user_id,
            role: principal.role,
            pid: principal.patient_id,
            ver: token_version,
            iss: ISSUER.into(),
            iat: now,
            exp: now + self.lifetime_seconds,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 encoding of a plain struct cannot fail");
        IssuedToken { token, expires_in: self.lifetime_seconds }
    }

    /// What a valid, unexpired token signed by us claims; `None` for anything else. Whether the
    /// account still agrees is for `service::auth::authenticate` to check.
    pub fn verify(&self, token: &str) -> Option<Claimed> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        let claims = data.claims;
        let principal = Principal { user_id: claims.sub, role: claims.role, patient_id: claims.pid };
        Some(Claimed { principal, token_version: claims.ver })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal() -> Principal {
        Principal { user_id: UserId::generate(), role: Role::Nurse, patient_id: None }
    }

    #[test]
    fn an_issued_token_verifies_to_the_same_principal() {
        let issuer = TokenIssuer::new(b"0123456789abcdef0123456789abcdef", 60);
        let principal = principal();
        let claimed = issuer.verify(&issuer.issue(&principal, 3).token).unwrap();
        assert_eq!((claimed.principal, claimed.token_version), (principal, 3));
    }

    #[test]
    fn a_token_signed_with_another_key_is_rejected() {
        let ours = TokenIssuer::new(b"0123456789abcdef0123456789abcdef", 60);
        let theirs = TokenIssuer::new(b"fedcba9876543210fedcba9876543210", 60);
        assert_eq!(ours.verify(&theirs.issue(&principal(), 0).token), None);
    }

    #[test]
    fn an_expired_token_is_rejected() {
        let issuer = TokenIssuer::new(b"0123456789abcdef0123456789abcdef", -60);
        assert_eq!(issuer.verify(&issuer.issue(&principal(), 0).token), None);
    }

    #[test]
    fn an_unsigned_token_is_rejected() {
        let issuer = TokenIssuer::new(b"0123456789abcdef0123456789abcdef", 60);
        let token = issuer.issue(&principal(), 0).token;
        let mut parts: Vec<&str> = token.split('.').collect();
        // {"alg":"none","typ":"JWT"}
        parts[0] = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
        parts[2] = "";
        assert_eq!(issuer.verify(&parts.join(".")), None);
    }
}
