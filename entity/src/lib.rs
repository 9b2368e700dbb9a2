//! SeaORM entities of Tessera's relational store.

pub mod user;
