//! The signed-in user's second factor: enrol TOTP, confirm it, turn it off,
//! get new recovery codes. Every operation checks the session is live.

use poem::Request;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};

use super::{ApiTags, Context, account::live_caller, bearer::Bearer, strict::StrictString};
use crate::{
    domain::PasswordAttempt,
    error::{Failure, error_set},
    flows,
    mfa::RecoveryCode,
};

error_set! {
    StartTotpErrors = [MalformedRequest, InvalidToken, MissingBearer, InvalidCredentials, Conflict, PayloadTooLarge, UnsupportedMediaType, RateLimited, Unavailable];
    ConfirmTotpErrors = [MalformedRequest, InvalidToken, MissingBearer, Conflict, PayloadTooLarge, UnsupportedMediaType, Validation, RateLimited, MfaLocked, Unavailable];
    ChangeFactorErrors = [MalformedRequest, InvalidToken, MissingBearer, InvalidCredentials, Conflict, PayloadTooLarge, UnsupportedMediaType, RateLimited, MfaLocked, Unavailable];
}

#[derive(Object)]
struct PasswordConfirmation {
    /// Checked like a sign-in's: a wrong one counts as a failed sign-in.
    password: StrictString,
}

#[derive(Object)]
struct CodeConfirmation {
    /// 6 digits from the authenticator.
    code: StrictString,
}

#[derive(Object)]
struct PasswordAndCode {
    /// Checked like a sign-in's: a wrong one counts as a failed sign-in.
    password: StrictString,
    /// A TOTP code, or an unused recovery code (then spent).
    code: StrictString,
}

/// A new TOTP secret, shown once: for the authenticator, by hand or as a QR code.
#[derive(Object)]
struct TotpEnrollment {
    /// RFC 4648 base32, upper case, unpadded (32 characters).
    secret: String,
    otpauth_uri: String,
}

/// Recovery codes, shown once: each works once wherever a code is asked for.
#[derive(Object)]
struct RecoveryCodes {
    /// 10 codes, `xxxx-xxxx-xxxx-xxxx`.
    recovery_codes: Vec<String>,
}

#[derive(ApiResponse)]
enum EnrollmentResponse {
    /// Enter the secret in the authenticator, then confirm with a code
    /// within 10 minutes.
    #[oai(status = 200)]
    Started(Json<TotpEnrollment>),
}

#[derive(ApiResponse)]
enum RecoveryCodesResponse {
    /// TOTP is on; keep these codes somewhere safe.
    #[oai(status = 200)]
    Issued(Json<RecoveryCodes>),
}

#[derive(ApiResponse)]
enum DisableResponse {
    /// TOTP is off and the recovery codes are gone.
    #[oai(status = 204)]
    Disabled,
}

pub struct MfaApi;

#[OpenApi(prefix_path = "/v1/me/mfa", tag = "ApiTags::Account")]
impl MfaApi {
    /// Start TOTP enrolment
    ///
    /// The password first (401, counted as a failed sign-in), then 409 if
    /// TOTP is already on. Replaces a pending secret.
    #[oai(path = "/totp", method = "post", operation_id = "startTotpEnrollment")]
    async fn start_totp_enrollment(
        &self,
        context: Context<'_>,
        req: &Request,
        auth: Bearer,
        body: Json<PasswordConfirmation>,
    ) -> Result<EnrollmentResponse, Failure<StartTotpErrors>> {
        let caller = live_caller(&context, req, auth).await?;
        let password = PasswordAttempt::new(body.0.password.0);
        let enrollment =
            flows::start_totp_enrollment(&context.stores, &context.hashing, &caller, password)
                .await?;
        Ok(EnrollmentResponse::Started(Json(TotpEnrollment {
            secret: enrollment.secret,
            otpauth_uri: enrollment.otpauth_uri,
        })))
    }

    /// Confirm TOTP with a first code
    ///
    /// Turns TOTP on and answers the recovery codes, once. A wrong code is
    /// 422 (`errors[].code = invalid_code`); nothing pending, or TOTP
    /// already on, 409.
    #[oai(path = "/totp/confirm", method = "post", operation_id = "confirmTotp")]
    async fn confirm_totp(
        &self,
        context: Context<'_>,
        req: &Request,
        auth: Bearer,
        body: Json<CodeConfirmation>,
    ) -> Result<RecoveryCodesResponse, Failure<ConfirmTotpErrors>> {
        let caller = live_caller(&context, req, auth).await?;
        let codes = flows::confirm_totp(&context.stores, &caller, &body.0.code.0).await?;
        Ok(recovery_codes(codes))
    }

    /// Turn TOTP off
    ///
    /// Needs the password and a code. Outstanding sign-in challenges die.
    #[oai(path = "/totp/disable", method = "post", operation_id = "disableTotp")]
    async fn disable_totp(
        &self,
        context: Context<'_>,
        req: &Request,
        auth: Bearer,
        body: Json<PasswordAndCode>,
    ) -> Result<DisableResponse, Failure<ChangeFactorErrors>> {
        let caller = live_caller(&context, req, auth).await?;
        let PasswordAndCode { password, code } = body.0;
        flows::disable_totp(
            &context.stores,
            &context.hashing,
            &caller,
            PasswordAttempt::new(password.0),
            &code.0,
        )
        .await?;
        Ok(DisableResponse::Disabled)
    }

    /// New recovery codes
    ///
    /// Needs the password and a code; the old codes stop working.
    #[oai(
        path = "/recovery-codes",
        method = "post",
        operation_id = "regenerateRecoveryCodes"
    )]
    async fn regenerate_recovery_codes(
        &self,
        context: Context<'_>,
        req: &Request,
        auth: Bearer,
        body: Json<PasswordAndCode>,
    ) -> Result<RecoveryCodesResponse, Failure<ChangeFactorErrors>> {
        let caller = live_caller(&context, req, auth).await?;
        let PasswordAndCode { password, code } = body.0;
        let codes = flows::regenerate_recovery_codes(
            &context.stores,
            &context.hashing,
            &caller,
            PasswordAttempt::new(password.0),
            &code.0,
        )
        .await?;
        Ok(recovery_codes(codes))
    }
}

fn recovery_codes(codes: Vec<RecoveryCode>) -> RecoveryCodesResponse {
    RecoveryCodesResponse::Issued(Json(RecoveryCodes {
        recovery_codes: codes.iter().map(RecoveryCode::display).collect(),
    }))
}
