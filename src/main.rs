use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tessera::{app, database, settings::Settings, telemetry};

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
    telemetry::init(&settings.log.filter);
    let result = match command {
        Command::Migrate => database::connect_and_migrate(&settings.database)
            .await
            .map(|_| tracing::info!("migrations applied"))
            .map_err(|err| err.to_string()),
        _ => serve(settings).await,
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

async fn serve(settings: Settings) -> Result<(), String> {
    let app = app::App::build(settings)
        .await
        .map_err(|err| err.to_string())?;
    app.run_until_stopped().await.map_err(|err| err.to_string())
}
