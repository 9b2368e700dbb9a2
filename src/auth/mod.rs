//! Credentials and tokens: password hashing now, access and refresh tokens next.

pub mod hashing;
