//! Credentials and tokens: password hashing and access tokens.

pub mod hashing;
pub mod jwt;
pub mod signing_keys;
