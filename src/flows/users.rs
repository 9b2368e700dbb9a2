//! What operators do to users: list, disable, enable, delete, and look at
//! their sessions. Creating a user is [`super::sign_up`] with
//! [`super::Origin::Operator`].

use uuid::Uuid;

use super::{Stores, changing_the_account};
use crate::{
    audit::{Acting, EventType},
    domain::MAX_PAGE,
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

/// A page of users (ascending id, with whether TOTP is on) and the cursor
/// of the next page, `None` exactly when no user follows.
pub struct UserPage {
    pub users: Vec<(User, bool)>,
    pub next: Option<Uuid>,
}

/// Up to `limit` (at most [`MAX_PAGE`]) users after the cursor, optionally
/// only those whose username starts with `username_prefix` (lower-cased:
/// usernames are). Stable under inserts: the cursor is an id.
pub async fn list_users(
    stores: &Stores,
    after: Option<Uuid>,
    limit: u64,
    username_prefix: Option<&str>,
) -> Result<UserPage, UserOpError> {
    let limit = limit.clamp(1, MAX_PAGE);
    let prefix = username_prefix.map(str::to_lowercase);
    let mut users = stores
        .users
        .list_page(after, limit + 1, prefix.as_deref())
        .await?;
    let more = users.len() as u64 > limit;
    users.truncate(limit as usize);
    let next = more
        .then(|| users.last().map(|(user, _)| user.id))
        .flatten();
    Ok(UserPage { users, next })
}

/// Disables a user (idempotent) and ends every session; how many were live.
pub async fn disable_user(
    stores: &Stores,
    reference: &UserRef,
    by: &Acting,
) -> Result<(User, u64), UserOpError> {
    let user = find_user(stores, reference).await?;
    let ((), ended) = changing_the_account(stores, user.id, None, async || {
        // Written (with its event) only when the state changes.
        stores
            .users
            .set_disabled(user.id, true, EventType::Disabled.by(by))
            .await
            .map_err(vanished_is_gone)?;
        Ok::<_, UserOpError>(())
    })
    .await?;
    Ok((user, ended))
}

pub async fn enable_user(
    stores: &Stores,
    reference: &UserRef,
    by: &Acting,
) -> Result<User, UserOpError> {
    let user = find_user(stores, reference).await?;
    stores
        .users
        .set_disabled(user.id, false, EventType::Enabled.by(by))
        .await
        .map_err(vanished_is_gone)?;
    Ok(user)
}

/// Deletes a user and ends every session; how many were live.
pub async fn delete_user(
    stores: &Stores,
    reference: &UserRef,
    by: &Acting,
) -> Result<(User, u64), UserOpError> {
    let user = find_user(stores, reference).await?;
    let ((), ended) = changing_the_account(stores, user.id, None, async || {
        if stores
            .users
            .delete(user.id, EventType::Deleted.by(by))
            .await?
        {
            Ok(())
        } else {
            Err(UserOpError::NoSuchUser)
        }
    })
    .await?;
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
pub(super) fn vanished_is_gone(err: UserStoreError) -> UserOpError {
    match err {
        UserStoreError::NotFound => UserOpError::NoSuchUser,
        other => other.into(),
    }
}
