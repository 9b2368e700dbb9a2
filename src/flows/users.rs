//! What operators do to users: list, disable, enable, delete, and look at
//! their sessions. Creating a user is [`super::sign_up`] with
//! [`super::Origin::Operator`].

use super::Stores;
use crate::{
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

/// Disables a user (idempotent) and ends every session; how many were live.
pub async fn disable_user(
    stores: &Stores,
    reference: &UserRef,
) -> Result<(User, u64), UserOpError> {
    let user = find_user(stores, reference).await?;
    changing_the_account(stores, user, async |user| {
        if user.disabled_at.is_none() {
            stores
                .users
                .set_disabled(user.id, true)
                .await
                .map_err(vanished_is_gone)?;
        }
        Ok(())
    })
    .await
}

pub async fn enable_user(stores: &Stores, reference: &UserRef) -> Result<User, UserOpError> {
    let user = find_user(stores, reference).await?;
    stores
        .users
        .set_disabled(user.id, false)
        .await
        .map_err(vanished_is_gone)?;
    Ok(user)
}

/// Deletes a user and ends every session; how many were live.
pub async fn delete_user(stores: &Stores, reference: &UserRef) -> Result<(User, u64), UserOpError> {
    let user = find_user(stores, reference).await?;
    changing_the_account(stores, user, async |user| {
        if stores.users.delete(user.id).await? {
            Ok(())
        } else {
            Err(UserOpError::NoSuchUser)
        }
    })
    .await
}

/// A change after which none of the user's sessions may live ("Sessions
/// never outlive the account's state"): the session epoch moves first, so
/// with Redis down nothing changes; then the database; then the epoch moves
/// again, for sign-ins that read the epoch after the first move but the
/// account before the change. If the database fails, the sessions stay
/// ended and the operation can be retried. Returns how many were live.
async fn changing_the_account(
    stores: &Stores,
    user: User,
    change: impl AsyncFnOnce(&User) -> Result<(), UserOpError>,
) -> Result<(User, u64), UserOpError> {
    let ended = stores.sessions.supersede(user.id).await?;
    change(&user).await?;
    stores.sessions.supersede(user.id).await?;
    Ok((user, ended))
}

pub async fn list_sessions(
    stores: &Stores,
    reference: &UserRef,
) -> Result<(User, Vec<SessionInfo>), UserOpError> {
    let user = find_user(stores, reference).await?;
    let sessions = stores.sessions.list(user.id).await?;
    Ok((user, sessions))
}

/// A user deleted between the lookup and the change is simply not there.
fn vanished_is_gone(err: UserStoreError) -> UserOpError {
    match err {
        UserStoreError::NotFound => UserOpError::NoSuchUser,
        other => other.into(),
    }
}
