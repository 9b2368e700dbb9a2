//! Schema migrations, run at start-up and by `tessera migrate`.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_create_users;
mod m20261125_000002_add_users_disabled_at;
mod m20261203_000003_account_lifecycle;
mod m20261203_000004_second_factor;
mod m20261203_000005_admin_tokens;
mod m20261203_000006_users_last_signin_at;
mod m20261203_000007_usernames_in_byte_order;
mod m20261203_000008_audit_events;
mod m20261203_000009_signing_keys;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_users::Migration),
            Box::new(m20261125_000002_add_users_disabled_at::Migration),
            Box::new(m20261203_000003_account_lifecycle::Migration),
            Box::new(m20261203_000004_second_factor::Migration),
            Box::new(m20261203_000005_admin_tokens::Migration),
            Box::new(m20261203_000006_users_last_signin_at::Migration),
            Box::new(m20261203_000007_usernames_in_byte_order::Migration),
            Box::new(m20261203_000008_audit_events::Migration),
            Box::new(m20261203_000009_signing_keys::Migration),
        ]
    }
}
