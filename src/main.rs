use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tessera::{
    admin::{self, AdminTokensCommand, KeysCommand, MfaCommand, SessionsCommand, UsersCommand},
    app, database,
    settings::Settings,
    telemetry,
};

/// Tessera: a stateless token authentication server.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run migrations, then serve HTTP until SIGTERM or Ctrl-C (the default).
    Serve,
    /// Run pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document and exit.
    Openapi,
    /// Manage users (same database and Redis settings as the server).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Inspect and revoke a user's refresh sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Maintain second-factor secrets.
    #[command(subcommand)]
    Mfa(MfaCommand),
    /// Manage the back office's admin tokens.
    #[command(subcommand)]
    AdminTokens(AdminTokensCommand),
    /// Managed signing keys (`jwt.keys = "managed"`): list and rotate.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[tokio::main]
async fn main() -> ExitCode {
    let command = Cli::parse().command.unwrap_or(Command::Serve);
    if let Command::Openapi = command {
        println!("{}", app::openapi_document());
        return ExitCode::SUCCESS;
    }
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("tessera: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = match command {
        Command::Users(command) => report(admin::users(&settings, command).await),
        Command::Sessions(command) => report(admin::sessions(&settings, command).await),
        Command::Mfa(command) => report(admin::mfa(&settings, command).await),
        Command::AdminTokens(command) => report(admin::admin_tokens(&settings, command).await),
        Command::Keys(command) => report(admin::keys(&settings, command).await),
        Command::Migrate => {
            telemetry::init(&settings.log);
            database::connect_and_migrate(&settings.database)
                .await
                .map(|_| tracing::info!("migrations applied"))
                .map_err(|err| err.to_string())
        }
        Command::Serve | Command::Openapi => {
            telemetry::init(&settings.log);
            serve(settings).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            eprintln!("tessera: {err}");
            ExitCode::FAILURE
        }
    }
}

/// An operator command's outcome: its text on standard output, or the error
/// (printed by `main`). Logging stays quiet unless `RUST_LOG` asks.
fn report(outcome: Result<String, admin::AdminError>) -> Result<(), String> {
    let text = outcome.map_err(|err| err.to_string())?;
    println!("{text}");
    Ok(())
}

async fn serve(settings: Settings) -> Result<(), String> {
    let app = app::App::build(settings)
        .await
        .map_err(|err| err.to_string())?;
    app.run_until_stopped().await.map_err(|err| err.to_string())
}
