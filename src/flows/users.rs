//! What operators do to users: list, disable, enable, delete, and look at
//! their sessions. Creating a user is [`super::sign_up`] with
//! [`super::Origin::Operator`].

use super::Stores;
use crate::{
    clock::Clock,
    sessions::{SessionError, SessionInfo},
    users::{User, UserRef, UserStoreError},
};

#[derive(Debug, thiserror::Error)]
pub enum UserOpError {
    #[error("no such user")]
    NoSuchUser,
    #[error("the user store")]
    Users(#[from] UserStoreError),
    #[error("the session store")]
    Sessions(#[from] SessionError),
    /// The database change is made; the sessions are still live.
    #[error("revoking the user's sessions")]
    SessionsNotRevoked {
        user: Box<User>,
        #[source]
        cause: SessionError,
    },
}

/// Any user, disabled or not.
pub async fn find_user(stores: &Stores, reference: &UserRef) -> Result<User, UserOpError> {
    match stores.users.find(reference).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) | Err(UserStoreError::NotFound) => Err(UserOpError::NoSuchUser),
        Err(err) => Err(err.into()),
    }
}

pub async fn list_users(stores: &Stores) -> Result<Vec<User>, UserOpError> {
    Ok(stores.users.list().await?)
}

/// Disables a user (idempotent) and revokes every session; how many were live.
pub async fn disable_user(
    stores: &Stores,
    clock: Clock,
    reference: &UserRef,
) -> Result<(User, u64), UserOpError> {
    let user = find_user(stores, reference).await?;
    if user.disabled_at.is_none() {
        stores
            .users
            .set_disabled(user.id, Some(clock.now()))
            .await
            .map_err(vanished_is_gone)?;
    }
    revoke_after(stores, user).await
}

pub async fn enable_user(stores: &Stores, reference: &UserRef) -> Result<User, UserOpError> {
    let user = find_user(stores, reference).await?;
    stores
        .users
        .set_disabled(user.id, None)
        .await
        .map_err(vanished_is_gone)?;
    Ok(user)
}

/// Deletes a user and revokes every session; how many were live.
pub async fn delete_user(stores: &Stores, reference: &UserRef) -> Result<(User, u64), UserOpError> {
    let user = find_user(stores, reference).await?;
    if !stores.users.delete(user.id).await? {
        return Err(UserOpError::NoSuchUser);
    }
    revoke_after(stores, user).await
}

pub async fn list_sessions(
    stores: &Stores,
    reference: &UserRef,
) -> Result<(User, Vec<SessionInfo>), UserOpError> {
    let user = find_user(stores, reference).await?;
    let sessions = stores.sessions.list(user.id).await?;
    Ok((user, sessions))
}

/// After a change that must end the user's sessions.
async fn revoke_after(stores: &Stores, user: User) -> Result<(User, u64), UserOpError> {
    match stores.sessions.revoke_all(user.id).await {
        Ok(revoked) => Ok((user, revoked)),
        Err(cause) => Err(UserOpError::SessionsNotRevoked {
            user: Box::new(user),
            cause,
        }),
    }
}

/// A user deleted between the lookup and the change is simply not there.
fn vanished_is_gone(err: UserStoreError) -> UserOpError {
    match err {
        UserStoreError::NotFound => UserOpError::NoSuchUser,
        other => other.into(),
    }
}
