use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use workbridge::app::Application;
use workbridge::config::Settings;
use workbridge::{api, store::Store, telemetry};

/// workbridge turns alert, anomaly and data-quality events from a plant's
/// trusted data layer into work orders in an EAM, and follows them.
///
/// Configuration: built-in defaults, then the TOML file given by --config
/// (or WORKBRIDGE_CONFIG), then environment variables: WORKBRIDGE_HTTP_ADDR,
/// WORKBRIDGE_DATABASE_URL, WORKBRIDGE_AMQP_URL, WORKBRIDGE_ADMIN_KEY,
/// WORKBRIDGE_LOG_FORMAT, and any key as WORKBRIDGE_<SECTION>__<KEY>
/// (e.g. WORKBRIDGE_AMQP__PREFETCH=128). See docker/workbridge.example.toml.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, global = true, env = "WORKBRIDGE_CONFIG")]
    config: Option<PathBuf>,
    /// What to do (default: serve).
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: HTTP API, RabbitMQ consumer and delivery worker.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Print the OpenAPI document (JSON) and exit.
    Openapi,
    /// Rules as code.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Connectors.
    Connectors {
        #[command(subcommand)]
        command: ConnectorsCommand,
    },
}

#[derive(Subcommand)]
enum ConnectorsCommand {
    /// Check a connector stored in the database: reachability, credentials
    /// and the shape of the EAM's answer. Exit status 1 when it fails.
    Check { name: String },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Check a YAML rules file offline: syntax, fields, templates and
    /// expressions, and with --connectors the connectors its rules create
    /// through. Exit status 1 and one line per error (with its line) if
    /// anything is wrong.
    Validate {
        file: PathBuf,
        /// The connectors that exist (comma-separated or repeated), e.g. the
        /// names `GET /v1/connectors` lists: a rule that creates through
        /// another is an error, as the API and start-up refuse it. Without
        /// it the names are not checked (there is no database to ask).
        #[arg(long, value_name = "NAMES", value_delimiter = ',')]
        connectors: Option<Vec<String>>,
    },
}

fn validate_rules(file: &std::path::Path, connectors: Option<&[String]>) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let checked = workbridge::rules::file::parse(&text).and_then(|rules| {
        let Some(known) = connectors else { return Ok((rules, false)) };
        let known: std::collections::BTreeSet<&str> = known.iter().map(|c| c.trim()).collect();
        let missing = workbridge::rules::file::check_connectors(&text, &rules, |c| known.contains(c));
        if missing.is_empty() { Ok((rules, true)) } else { Err(missing) }
    });
    match checked {
        Ok((rules, true)) => {
            println!("{}: {} rule(s), all valid", file.display(), rules.len());
            ExitCode::SUCCESS
        }
        Ok((rules, false)) => {
            println!(
                "{}: {} rule(s), all valid (connectors not checked: give the existing ones with --connectors; \
                 start-up refuses a rule whose connector does not exist)",
                file.display(),
                rules.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in errors {
                eprintln!("{}: {e}", file.display());
            }
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    let command = cli.command.take().unwrap_or(Command::Serve);
    let cli = Cli { command: Some(command), ..cli };
    let command = cli.command.as_ref().expect("set above");
    if let Command::Rules { command: RulesCommand::Validate { file, connectors } } = command {
        return validate_rules(file, connectors.as_deref());
    }
    if let Command::Openapi = command {
        match serde_json::to_string_pretty(&api::openapi()) {
            Ok(json) => {
                use std::io::Write;
                // A closed pipe (`| head`) is not an error worth a panic.
                let _ = writeln!(std::io::stdout(), "{json}");
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Serve => {
                let app = Application::build(settings).await.map_err(report)?;
                app.run_until_stopped().await.map_err(|e| report(&e))
            }
            Command::Migrate => {
                let store = Store::connect(&settings.database.url, 1).await.map_err(report)?;
                store.migrate().await.map_err(report)?;
                tracing::info!("migrations applied");
                Ok(())
            }
            Command::Connectors { command: ConnectorsCommand::Check { name } } => {
                let store = Store::connect(&settings.database.url, 1).await.map_err(report)?;
                if settings.database.migrate_on_start {
                    store.migrate().await.map_err(report)?;
                }
                match workbridge::app::check_connector(&store, &settings, name).await {
                    Ok(detail) => {
                        println!("{name}: ok: {detail}");
                        Ok(())
                    }
                    Err(e) => {
                        eprintln!("{name}: {e}");
                        Err(())
                    }
                }
            }
            Command::Openapi | Command::Rules { .. } => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(()) => ExitCode::FAILURE,
    }
}

/// Logs an error with its chain of causes.
fn report(e: impl std::error::Error) {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    tracing::error!("{msg}");
    eprintln!("error: {msg}");
}
