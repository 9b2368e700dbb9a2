//! SeaORM entities of Tessera's relational store.

pub mod password_reset;
pub mod user;
