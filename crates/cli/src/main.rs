//! `sessiongate`: an MCP server and gateway with durable session management.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sessiongate::admin_client::{self, Connection, SessionsCommand};
use sessiongate::app;
use sessiongate::config::{Config, LogFormat, Settings};
use sessiongate_core::SystemClock;

/// glibc's allocator spent over a tenth of the server's CPU under load
/// (`malloc_consolidate`, `unlink_chunk`) on the short-lived buffers of
/// requests, responses and log rows; mimalloc's thread-local free lists do not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "sessiongate", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MCP at /mcp and the management API at /api
    Serve {
        /// TOML config file; flags and SESSIONGATE_* variables override it
        #[arg(long, env = "SESSIONGATE_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        settings: Box<Settings>,
    },
    /// Apply pending database migrations and exit
    Migrate {
        /// TOML config file
        #[arg(long, env = "SESSIONGATE_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory (for the default SQLite file)
        #[arg(long, env = "SESSIONGATE_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// postgres://..., postgresql://..., sqlite:PATH, sqlite://PATH, or a
        /// path to an SQLite file holding a / or ending in .db, .sqlite or .sqlite3
        #[arg(long, env = "SESSIONGATE_DATABASE_URL")]
        database_url: Option<String>,
    },
    /// Inspect or end sessions of a running server
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
        #[command(flatten)]
        connection: Connection,
    },
    /// Show a running server's session health
    Health {
        #[command(flatten)]
        connection: Connection,
    },
    /// Print a running server's live session events until interrupted
    Watch {
        #[command(flatten)]
        connection: Connection,
    },
    /// Drive concurrent MCP clients against a server (ours or any other) and
    /// check their sessions' lifecycle; exits 1 when a check fails
    Loadtest {
        #[command(flatten)]
        args: Box<sessiongate_loadtest::LoadtestArgs>,
    },
}

fn load(config: Option<PathBuf>, settings: Settings) -> anyhow::Result<Config> {
    let file = match config {
        Some(path) => Settings::from_file(&path)?,
        None => Settings::default(),
    };
    Ok(settings.or(file).resolve()?)
}

fn init_logging(filter: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| {
        anyhow::anyhow!("invalid log filter {filter:?}: {e}; use e.g. info or sessiongate=debug")
    })?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Colour codes would litter a file or a pipe; NO_COLOR is honoured
        // as no-color.org asks (any non-empty value).
        LogFormat::Text => logs
            .with_ansi(
                std::io::stderr().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            )
            .init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    Ok(())
}

/// An error and its causes on one line, each cause only where its text is
/// not already in the line (messages often include their source's text).
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || line.contains(text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text);
    }
    line
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn serve(config: Config) -> anyhow::Result<()> {
    init_logging(&config.log, config.log_format)?;
    let data_dir = config.data_dir.clone();
    let database = config.database.to_string();
    let server = app::start(config, SystemClock::shared()).await?;
    let base = format!("http://{}", server.addr);
    let token_note = if server.admin_token_created {
        "  (new; saved in the data directory)"
    } else {
        ""
    };
    let banner = format!(
        "sessiongate {version} listening on {base}\n  \
         MCP endpoint   {base}/mcp\n  \
         dashboard      {base}/\n  \
         session API    {base}/api/mcp/sessions\n  \
         data directory {data_dir}\n  \
         session store  {database}\n  \
         admin token    {token}{token_note}\n",
        version = app::VERSION,
        data_dir = data_dir.display(),
        token = server.admin_token,
    );
    // The banner is for whoever watches; a closed stdout (`serve | head -1`)
    // must not take the server down, as `println!` would by panicking.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    drop(out);
    server.run_until(shutdown_signal()).await
}

/// Errors are printed here, as one line: returning them from `main` would
/// print their causes again and, with RUST_BACKTRACE set, a backtrace.
fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config, settings } => serve(load(config, *settings)?).await,
        Command::Migrate {
            config,
            data_dir,
            database_url,
        } => {
            let settings = Settings {
                data_dir,
                database_url,
                ..Default::default()
            };
            let config = load(config, settings)?;
            std::fs::create_dir_all(&config.data_dir).ok();
            let migrated = sessiongate_store::migrate(&config.database)
                .await
                .with_context(|| format!("cannot migrate {}", config.database))?;
            let db = &config.database;
            match migrated.applied {
                0 => println!("{db} is up to date"),
                n if migrated.before == 0 => {
                    println!("created the schema in {db} ({n} migrations applied)")
                }
                n => println!("applied {n} pending migrations to {db}"),
            }
            Ok(())
        }
        Command::Sessions {
            command,
            connection,
        } => admin_client::sessions(connection, command).await,
        Command::Health { connection } => admin_client::health(connection).await,
        Command::Watch { connection } => tokio::select! {
            watched = admin_client::watch(connection) => watched,
            _ = tokio::signal::ctrl_c() => Ok(()),
        },
        Command::Loadtest { args } => loadtest(*args).await,
    }
}

async fn loadtest(args: sessiongate_loadtest::LoadtestArgs) -> anyhow::Result<()> {
    let json = args.json.clone();
    let report = sessiongate_loadtest::run(args).await?;
    print!("{}", report.render());
    if let Some(path) = json {
        report.write_json(&path)?;
    }
    if !report.passed {
        std::process::exit(1);
    }
    Ok(())
}
