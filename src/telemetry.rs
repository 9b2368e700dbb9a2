//! Logs on stdout with `tracing`: text for people, JSON for collectors.
//! `RUST_LOG` overrides the configured filter.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, filter::Directive};

use crate::settings::{LogFormat, LogSettings};

/// The target of the lines scripts and operators look for (`listening on
/// http://ADDR`): enabled whatever the filter says.
const ANNOUNCE_TARGET: &str = "tessera::announce";

pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(&settings.filter))
        .add_directive(announce_directive());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(wants_colour());
    // A second call (several servers in one test process) keeps the first subscriber.
    let _ = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}

/// Logs one of the lines that say where the server listens.
pub fn announce(message: std::fmt::Arguments<'_>) {
    tracing::info!(target: ANNOUNCE_TARGET, "{message}");
}

fn announce_directive() -> Directive {
    format!("{ANNOUNCE_TARGET}=info")
        .parse()
        .expect("a valid directive")
}

/// Colours only for a person at a terminal who has not asked for none
/// (<https://no-color.org>): journald, `docker logs` and pipes get plain text.
fn wants_colour() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    std::io::stdout().is_terminal() && !no_color
}
