//! The signed-in user's own account: change the password, delete the account.

use poem::Request;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};

use super::{ApiTags, Context, bearer::Bearer, strict::StrictString};
use crate::{
    domain::PasswordAttempt,
    error::{Failure, error_set},
    flows::{self, Caller, PasswordChange},
};

error_set! {
    ChangePasswordErrors = [MalformedRequest, InvalidToken, MissingBearer, InvalidCredentials, PayloadTooLarge, UnsupportedMediaType, Validation, RateLimited, MfaLocked, Unavailable];
    DeleteAccountErrors = [MalformedRequest, InvalidToken, MissingBearer, InvalidCredentials, PayloadTooLarge, UnsupportedMediaType, RateLimited, MfaLocked, Unavailable];
}

/// The current password, to prove it is the owner, and the new one.
#[derive(Object)]
struct ChangePasswordRequest {
    /// Checked like a sign-in's: a wrong one counts as a failed sign-in.
    current_password: StrictString,
    /// The sign-up rules apply, and it must differ from the current one.
    new_password: StrictString,
    /// Required when the second factor is on: a TOTP or recovery code.
    code: Option<StrictString>,
}

/// The password again, to prove it is the owner.
#[derive(Object)]
struct DeleteAccountRequest {
    /// Checked like a sign-in's: a wrong one counts as a failed sign-in.
    password: StrictString,
    /// Required when the second factor is on: a TOTP or recovery code.
    code: Option<StrictString>,
}

#[derive(ApiResponse)]
enum ChangePasswordResponse {
    /// The password is changed; every other session of the user is revoked.
    #[oai(status = 204)]
    Changed,
}

#[derive(ApiResponse)]
enum DeleteAccountResponse {
    /// The account and every session are gone; the refresh cookie is cleared.
    #[oai(status = 204)]
    Deleted(#[oai(header = "Set-Cookie")] String),
}

pub struct AccountApi;

#[OpenApi(prefix_path = "/v1/me", tag = "ApiTags::Account")]
impl AccountApi {
    /// Change the password
    ///
    /// Checks, in order: the new password's rules (422), the current password
    /// (401 `invalid_credentials`, counted as a failed sign-in), that the two
    /// differ (422 `unchanged`). The calling session stays signed in.
    #[oai(path = "/password", method = "post", operation_id = "changePassword")]
    async fn change_password(
        &self,
        context: Context<'_>,
        req: &Request,
        auth: Bearer,
        body: Json<ChangePasswordRequest>,
    ) -> Result<ChangePasswordResponse, Failure<ChangePasswordErrors>> {
        let caller = live_caller(&context, req, auth).await?;
        let ChangePasswordRequest {
            current_password,
            new_password,
            code,
        } = body.0;
        let change = PasswordChange {
            current: PasswordAttempt::new(current_password.0),
            new: new_password.0,
            code: code.map(|code| code.0),
        };
        flows::change_password(
            &context.stores,
            &context.hashing,
            &context.password_policy,
            &caller,
            change,
        )
        .await?;
        Ok(ChangePasswordResponse::Changed)
    }

    /// Delete the account
    ///
    /// Needs the password again (401 `invalid_credentials`, counted as a
    /// failed sign-in). The username can be registered again at once.
    #[oai(path = "/delete", method = "post", operation_id = "deleteAccount")]
    async fn delete_account(
        &self,
        context: Context<'_>,
        req: &Request,
        auth: Bearer,
        body: Json<DeleteAccountRequest>,
    ) -> Result<DeleteAccountResponse, Failure<DeleteAccountErrors>> {
        let caller = live_caller(&context, req, auth).await?;
        let DeleteAccountRequest { password, code } = body.0;
        let password = PasswordAttempt::new(password.0);
        let code = code.map(|code| code.0);
        flows::delete_account(
            &context.stores,
            &context.hashing,
            &caller,
            password,
            code.as_deref(),
        )
        .await?;
        Ok(DeleteAccountResponse::Deleted(
            context.refresh_cookie.clear(),
        ))
    }
}

/// The caller of an account change, its session checked live whatever
/// `session.check_on_access` says.
pub(super) async fn live_caller(
    context: &Context<'_>,
    req: &Request,
    auth: Bearer,
) -> Result<Caller, crate::error::ApiError> {
    let principal = auth.0.require_live(context).await?;
    Ok(Caller {
        user_id: principal.user_id,
        session_id: principal.session_id,
        client: super::client_info(context, req),
    })
}
