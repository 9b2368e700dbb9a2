//! Tessera: a stateless token authentication server.
//!
//! The request path reads top to bottom: [`api`] (routes, handlers, parsing
//! into [`domain`] values) → [`flows`] (one function per operation, shared
//! with the [`admin`] CLI) → [`auth`] (hashing, tokens), [`users`] and
//! [`sessions`] (storage). [`error`] maps every failure to problem+json in
//! one place.

pub mod admin;
pub mod admin_tokens;
pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod database;
pub mod domain;
pub mod error;
pub mod flows;
pub mod keyspace;
pub mod metrics;
pub mod mfa;
pub mod middleware;
pub mod rate_limit;
pub mod sealing;
pub mod secrets;
pub mod sessions;
pub mod settings;
pub mod telemetry;
pub mod user_cache;
pub mod users;
