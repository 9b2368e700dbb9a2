//! Credentials and tokens: password hashing and access tokens.

pub mod hashing;
pub mod jwt;
