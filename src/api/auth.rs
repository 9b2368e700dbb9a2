use chrono::{DateTime, Utc};
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};
use uuid::Uuid;

use super::{ApiTags, Context, strict::StrictString};
use crate::{
    domain::Username,
    error::{ApiError, Failure, error_set},
    users::User,
};

error_set! {
    SignupErrors = [400, 409, 413, 415, 422, 429, 503];
}

/// Username and password, as sent to sign-up and sign-in.
#[derive(Object)]
struct Credentials {
    /// 3–32 characters of `[A-Za-z0-9._-]`, starting with a letter or digit; case-insensitive.
    username: StrictString,
    /// 12–128 characters; not common, not containing the username, strong enough.
    password: StrictString,
}

/// A user as clients see it.
#[derive(Object)]
pub struct UserView {
    id: Uuid,
    /// Lower-cased.
    username: String,
    created_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        UserView {
            id: user.id,
            username: user.username.to_string(),
            created_at: user.created_at,
        }
    }
}

#[derive(ApiResponse)]
enum SignupResponse {
    /// The account was created.
    #[oai(status = 201)]
    Created(Json<UserView>, #[oai(header = "Location")] String),
}

pub struct AuthApi;

#[OpenApi(prefix_path = "/v1/auth", tag = "ApiTags::Auth")]
impl AuthApi {
    /// Create an account
    ///
    /// Reports every broken username and password rule at once (422).
    #[oai(path = "/signup", method = "post", operation_id = "signup")]
    async fn signup(
        &self,
        context: Context<'_>,
        body: Json<Credentials>,
    ) -> Result<SignupResponse, Failure<SignupErrors>> {
        let Credentials {
            username: StrictString(username),
            password: StrictString(password),
        } = body.0;
        let username = Username::parse(&username);
        let password = context
            .password_policy
            .parse(password, username.as_ref().ok());
        let (username, password) = match (username, password) {
            (Ok(username), Ok(password)) => (username, password),
            (username, password) => {
                let errors = username
                    .err()
                    .into_iter()
                    .chain(password.err().into_iter().flatten());
                return Err(ApiError::Validation(errors.collect()).into());
            }
        };
        let hash = context.hashing.hash(password).await?;
        let user = context.users.create(username, hash).await?;
        Ok(SignupResponse::Created(Json(user.into()), "/v1/me".into()))
    }
}
