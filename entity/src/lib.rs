//! SeaORM entities of Tessera's relational store.

pub mod admin_token;
pub mod audit_event;
pub mod mfa_factor;
pub mod password_reset;
pub mod recovery_code;
pub mod signing_key;
pub mod user;
