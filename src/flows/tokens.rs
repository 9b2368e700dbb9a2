//! For resource servers: is a token still good (RFC 7662), and revoke it
//! (RFC 7009). Either kind of token is recognised by its form: a refresh
//! token by its MAC, an access token by its signature and claims.

use std::time::Duration;

use super::{Stores, auth::record_revoked};
use crate::{
    audit::Acting,
    auth::jwt::{AccessClaims, AccessTokens},
    domain::Username,
    sessions::{RefreshToken, RefreshTokenKeys, SessionError},
    users::UserStoreError,
};

/// The keys that tell Tessera's tokens from anything else.
#[derive(Clone, Copy)]
pub struct TokenKeys<'a> {
    pub access: &'a AccessTokens,
    pub refresh: &'a RefreshTokenKeys,
}

/// What introspection finds.
pub enum Introspection {
    /// Anything that is not a live token of an enabled user.
    Inactive,
    Access {
        claims: AccessClaims,
        username: Username,
    },
    Refresh {
        token: RefreshToken,
        username: Username,
        /// Until the session goes idle.
        expires_in: Duration,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum IntrospectionError {
    #[error("the session store")]
    Sessions(#[from] SessionError),
    #[error("the user store")]
    Users(#[from] UserStoreError),
}

/// Whether `token` is live: an access token whose signature and claims
/// hold, whose session is live (epoch included) and whose user is enabled,
/// whatever `session.check_on_access` says; or the current refresh token of
/// such a session. Reads only: no rotation, no idle-timer reset.
pub async fn introspect(
    stores: &Stores,
    keys: TokenKeys<'_>,
    token: &str,
) -> Result<Introspection, IntrospectionError> {
    if let Some(refresh) = keys.refresh.verify(token) {
        let Some(expires_in) = stores.sessions.inspect(refresh).await? else {
            return Ok(Introspection::Inactive);
        };
        return Ok(match stores.users.find_active(refresh.user_id).await? {
            Some(user) => Introspection::Refresh {
                token: refresh,
                username: user.username,
                expires_in,
            },
            None => Introspection::Inactive,
        });
    }
    let Ok(claims) = keys.access.verify(token) else {
        return Ok(Introspection::Inactive);
    };
    let (live, user) = tokio::try_join!(
        async {
            Ok::<_, IntrospectionError>(stores.sessions.is_live(claims.sub, claims.sid).await?)
        },
        async { Ok(stores.users.find_active(claims.sub).await?) },
    )?;
    Ok(match (live, user) {
        (true, Some(user)) => Introspection::Access {
            claims,
            username: user.username,
        },
        _ => Introspection::Inactive,
    })
}

/// Revokes the session of `token` (RFC 7009): a refresh token of any
/// generation whose MAC holds, or an access token that is still valid.
/// Anything else is no token of ours, and nothing to do.
pub async fn revoke_token(
    stores: &Stores,
    keys: TokenKeys<'_>,
    token: &str,
    by: &Acting,
) -> Result<(), SessionError> {
    let session = match keys.refresh.verify(token) {
        Some(refresh) => Some((refresh.user_id, refresh.session_id)),
        None => keys
            .access
            .verify(token)
            .ok()
            .map(|claims| (claims.sub, claims.sid)),
    };
    let Some((user_id, session_id)) = session else {
        return Ok(());
    };
    if stores.sessions.revoke(user_id, session_id).await? {
        record_revoked(stores, user_id, session_id, by).await;
    }
    Ok(())
}
