//! The `roost` command: the console with the broker attached, or one of the subcommands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use roost::cli;
use roost::config::{Config, StorageMode, default_config_text};
use roost::headless::{ServeOverrides, headless_config, serve};

#[derive(Debug, Parser)]
#[command(
    name = "roost",
    version,
    about = "MQTT broker with its administration console built in"
)]
struct Cli {
    /// Configuration file [default: roost.ron]. The console creates it with the defaults when
    /// it is missing; `serve` uses the defaults when no file is named and roost.ron is absent.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Console theme: dark, light, high-contrast, or a theme file.
    #[arg(long, value_name = "NAME")]
    theme: Option<String>,

    /// The console's data directory: attach to the broker running on it (whatever its config
    /// file), else run one in this process with it (not saved to the file). For `serve`, give
    /// `--data-dir` after the subcommand.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker headless (no console) until SIGINT or SIGTERM.
    Serve {
        /// Listen for MQTT over TCP on this address, overriding the file.
        #[arg(long, value_name = "ADDR:PORT")]
        tcp: Option<SocketAddr>,
        /// Listen for MQTT over WebSockets on this address, overriding the file.
        #[arg(long, value_name = "ADDR:PORT")]
        ws: Option<SocketAddr>,
        /// The URL path WebSocket clients connect to, such as /mqtt, overriding the file.
        #[arg(long, value_name = "PATH")]
        ws_path: Option<String>,
        /// Directory for the disk store, keys and certificates.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Storage for sessions and messages: memory, disk-buffered, disk-unbuffered or
        /// disk-fault-tolerant.
        #[arg(long, value_name = "MODE", value_parser = parse_storage_mode)]
        persistence: Option<StorageMode>,
        /// Worker threads. 1 (the default) runs the whole broker on one thread: its tasks
        /// hand messages to each other without cross-thread wake-ups, which costs less CPU
        /// per message than several threads do on small machines.
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
        threads: u16,
        #[command(flatten)]
        tls: TlsFlags,
        /// Clients must give a username and password of a configured user.
        #[arg(long)]
        require_credentials: bool,
        /// Topic permissions from a Mosquitto acl_file, replacing those of the config.
        #[arg(long, value_name = "FILE")]
        acl_file: Option<PathBuf>,
    },
    /// The certificate authority: create, import, export, show.
    Ca {
        #[command(subcommand)]
        command: cli::certs::CaCommand,
    },
    /// The server certificate: create, import, export, show.
    ServerCert {
        #[command(subcommand)]
        command: cli::certs::ServerCertCommand,
    },
    /// Client certificates: issue, add, list, authorize, revoke, remove.
    ClientCert {
        #[command(subcommand)]
        command: cli::certs::ClientCertCommand,
    },
    /// Manage users and their passwords in the config file.
    User {
        #[command(subcommand)]
        command: cli::users::UserCommand,
        /// Accepted for symmetry with the other commands; users live in the config file.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Manage topic permissions in the config file.
    Acl {
        #[command(subcommand)]
        command: cli::acl::AclCommand,
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// The console (the default command). It attaches to the broker running on the config
    /// file or the data directory when there is one, else runs a broker in this process.
    Console {
        /// Attach to the broker behind this admin socket (never start one).
        #[arg(long, value_name = "SOCKET")]
        attach: Option<PathBuf>,
    },
    /// Work with configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

/// `roost serve` switches for TLS and client certificates, overriding the file (each only
/// turns its setting on).
#[derive(Debug, clap::Args)]
struct TlsFlags {
    /// Use encryption (TLS) on the TCP listener.
    #[arg(long)]
    tls: bool,
    /// Require a client certificate.
    #[arg(long)]
    require_client_cert: bool,
    /// Accept only client certificates listed as Authorized.
    #[arg(long)]
    authorized_only: bool,
    /// Accept an untrusted client certificate that matches an Authorized entry.
    #[arg(long)]
    trust_any_authorized: bool,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print a complete, commented default configuration.
    Init,
    /// Check a configuration file and report the first invalid field.
    Check,
}

fn parse_storage_mode(text: &str) -> Result<StorageMode, String> {
    StorageMode::from_cli_name(text).ok_or_else(|| {
        let names: Vec<_> = StorageMode::ALL.iter().map(|m| m.cli_name()).collect();
        format!("expected one of {}", names.join(", "))
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("roost: {}", error_report(&err));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if cli.data_dir.is_some() && !matches!(cli.command, None | Some(Command::Console { .. })) {
        anyhow::bail!(
            "--data-dir before a subcommand is the console's; give it after the subcommand \
             (for example `roost serve --data-dir DIR`)"
        );
    }
    match cli.command {
        Some(Command::Config {
            command: ConfigCommand::Init,
        }) => {
            print!("{}", default_config_text());
            Ok(())
        }
        Some(Command::Config {
            command: ConfigCommand::Check,
        }) => {
            let path = cli.config.unwrap_or_else(|| PathBuf::from("roost.ron"));
            Config::load(&path)?;
            println!("{}: valid", path.display());
            Ok(())
        }
        Some(Command::Serve {
            tcp,
            ws,
            ws_path,
            data_dir,
            persistence,
            threads,
            tls,
            require_credentials,
            acl_file,
        }) => {
            init_logging_to_stderr();
            let mut overrides = ServeOverrides {
                tcp,
                ws,
                ws_path,
                data_dir,
                persistence,
                tls: tls.tls,
                require_client_certificate: tls.require_client_cert,
                authorized_only: tls.authorized_only,
                trust_any_matching_authorized: tls.trust_any_authorized,
                require_credentials,
                acl: None,
            };
            if let Some(path) = &acl_file {
                overrides.read_acl_file(path)?;
            }
            // Refuse a bad file or override before starting anything.
            headless_config(cli.config.as_deref(), &overrides)?;
            serve_runtime(threads)?.block_on(serve(cli.config.as_deref(), overrides))?;
            Ok(())
        }
        Some(Command::Ca { command }) => {
            let (command, location) = command.into_parts();
            cli::certs::run(cli.config.as_deref(), command, location)
        }
        Some(Command::ServerCert { command }) => {
            let (command, location) = command.into_parts();
            cli::certs::run(cli.config.as_deref(), command, location)
        }
        Some(Command::ClientCert { command }) => {
            let (command, location) = command.into_parts();
            cli::certs::run(cli.config.as_deref(), command, location)
        }
        Some(Command::User { command, .. }) => {
            let path = cli.config.unwrap_or_else(|| PathBuf::from("roost.ron"));
            let (outcome, saved) = cli::users::run(&command, &path, &mut std::io::stdin().lock())?;
            print_outcome(&outcome.to_string());
            if let Some(saved) = saved {
                eprintln!("{saved}");
            }
            Ok(())
        }
        Some(Command::Acl { command, .. }) => {
            let path = cli.config.unwrap_or_else(|| PathBuf::from("roost.ron"));
            let (outcome, saved) = cli::acl::run(&command, &path)?;
            print_outcome(&outcome.to_string());
            eprintln!("{saved}");
            Ok(())
        }
        None | Some(Command::Console { .. }) => {
            let attach = match cli.command {
                Some(Command::Console { attach }) => attach,
                _ => None,
            };
            let options = roost::console::ConsoleOptions {
                config_path: cli.config.unwrap_or_else(|| PathBuf::from("roost.ron")),
                theme: cli.theme,
                attach,
                data_dir: cli.data_dir,
            };
            runtime()?.block_on(roost::console::start(options))?;
            Ok(())
        }
    }
}

/// A command's report on stdout, one line per line, with a final newline.
fn print_outcome(text: &str) {
    if text.ends_with('\n') || text.is_empty() {
        print!("{text}");
    } else {
        println!("{text}");
    }
}

/// The error and its causes on one line, leaving out causes the message already quotes
/// (several library errors include their source's text in their own message).
fn error_report(err: &anyhow::Error) -> String {
    let mut report = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !report.contains(&cause) {
            report.push_str(": ");
            report.push_str(&cause);
        }
    }
    report
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

/// The headless broker's runtime: one thread unless asked for more.
fn serve_runtime(threads: u16) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(usize::from(threads));
        builder
    };
    builder
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

/// Headless logs go to stderr; `RUST_LOG` sets the filter (default `info`).
fn init_logging_to_stderr() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
