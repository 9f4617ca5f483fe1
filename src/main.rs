//! `calbridge`: the command line. Thin: parse flags, set up logging, hand
//! over to the library.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use calbridge::config::{self, Config, Flags, LogFormat};

#[derive(Parser)]
#[command(
    name = "calbridge",
    version,
    about = "ICS feeds and CalDAV for your staff, synced with Google and Microsoft"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// TOML configuration file (also CALBRIDGE_CONFIG).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on (also CALBRIDGE_LISTEN); default 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<String>,
        /// Store directory (also CALBRIDGE_DATA); default ./data.
        #[arg(long)]
        data: Option<String>,
        /// Base of every URL handed out (also CALBRIDGE_PUBLIC_URL).
        #[arg(long)]
        public_url: Option<String>,
    },
    /// The whole system on this machine with sample data and no credentials.
    Demo {
        /// Address to listen on; default 127.0.0.1:8080 or the next free port.
        #[arg(long)]
        listen: Option<String>,
        /// Also write the URLs and credentials as JSON to this file (for
        /// scripts: CI interop checks, benchmarks).
        #[arg(long)]
        state_file: Option<PathBuf>,
    },
    /// Write a consistent backup of the store to a file. Reads the store
    /// directly when no server holds it, or asks the running server.
    Backup {
        /// Where to write the backup (gzip-compressed).
        #[arg(long)]
        to: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data: Option<String>,
        /// The running server's base URL (default: server.public_url).
        #[arg(long)]
        server: Option<String>,
    },
    /// Restore a backup into a new (empty) data directory.
    Restore {
        #[arg(long)]
        from: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data: Option<String>,
    },
    /// The Google Calendar + Microsoft Graph emulator alone (tests,
    /// development, benchmarks). Point calbridge's provider URLs at it.
    FakeUpstream {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: String,
    },
}

fn init_tracing(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

fn main() {
    if let Err(e) = run() {
        // One clear line (with its causes), never a backtrace.
        eprintln!("calbridge: {e:#}");
        std::process::exit(1);
    }
}

/// glibc's malloc raises its mmap threshold each time a large block is
/// freed, up to 32 MiB, after which large blocks (an Argon2 verification's
/// working memory, a feed render's multi-megabyte buffers) come from the
/// per-thread arenas and stay resident after they are freed: the server
/// grew to 150-250 MB after a burst of CalDAV clients or a few feed
/// renders. Fixing the threshold at its default (128 KiB) keeps large
/// blocks mapped on their own and returned to the system when freed.
/// glibc also makes up to eight arenas per core, each keeping its own free
/// memory; two are enough for a server whose work runs on a few threads
/// (measured in the 5,000-event benchmark: 7-10 MB less at its peak).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only sets allocator parameters; it is called
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

fn run() -> anyhow::Result<()> {
    tune_allocator();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command {
        Command::Serve {
            config,
            listen,
            data,
            public_url,
        } => {
            let flags = Flags {
                config,
                listen,
                data,
                public_url,
            };
            let cfg = match config::load(&flags, &config::process_env()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("calbridge: configuration error: {e}");
                    std::process::exit(2);
                }
            };
            init_tracing(&cfg.log_level, cfg.log_format);
            runtime.block_on(serve(cfg))
        }
        Command::Backup {
            to,
            config,
            data,
            server,
        } => {
            let cfg = load_or_exit(Flags {
                config,
                data,
                ..Flags::default()
            });
            init_tracing("warn", LogFormat::Text);
            runtime.block_on(backup(cfg, to, server))
        }
        Command::Restore { from, config, data } => {
            let cfg = load_or_exit(Flags {
                config,
                data,
                ..Flags::default()
            });
            init_tracing("warn", LogFormat::Text);
            restore(cfg, from)
        }
        Command::FakeUpstream { listen } => {
            init_tracing("info", LogFormat::Text);
            runtime.block_on(fake_upstream(listen))
        }
        Command::Demo { listen, state_file } => {
            init_tracing("warn", LogFormat::Text);
            runtime.block_on(calbridge::demo::run(listen, state_file, shutdown_signal()))
        }
    }
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let cfg = Arc::new(cfg);
    let server = calbridge::server::Server::open(cfg.clone())
        .with_context(|| format!("cannot open the store at {}", cfg.store_path.display()))?;
    server.announce_admin_token();
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("server.listen: cannot listen on {}", cfg.listen))?;
    tracing::info!(listen = %cfg.listen, public_url = %cfg.public_url, "calbridge serving");
    server.run(listener, shutdown_signal()).await?;
    Ok(())
}

async fn fake_upstream(listen: String) -> anyhow::Result<()> {
    use calbridge::upstream::emulator::{self, Emulator, EmulatorConfig};
    let addr: std::net::SocketAddr = listen
        .parse()
        .map_err(|_| anyhow::anyhow!("--listen: not an address like 127.0.0.1:8090: {listen:?}"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--listen: cannot listen on {addr}"))?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("calbridge fake-upstream: Google Calendar v3 and Microsoft Graph v1.0 at {base}");
    println!("  point calbridge at it with:");
    for (key, value) in emulator::client_settings(&base) {
        let var = calbridge::config::ENV_KEYS
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .unwrap_or(key);
        println!("    {var}={value}");
    }
    println!("  controls: {base}/_emulator/health, /_emulator/users, /_emulator/faults");
    emulator::serve(
        Emulator::new(EmulatorConfig::default()),
        listener,
        shutdown_signal(),
    )
    .await;
    Ok(())
}

fn load_or_exit(flags: Flags) -> Config {
    match config::load(&flags, &config::process_env()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("calbridge: configuration error: {e}");
            std::process::exit(2);
        }
    }
}

async fn backup(cfg: Config, to: PathBuf, server: Option<String>) -> anyhow::Result<()> {
    use calbridge::store::SledStore;
    let partial = to.with_extension("partial");
    let direct = if server.is_none() {
        SledStore::open(&cfg.store_path, cfg.store_cache_bytes).ok()
    } else {
        None
    };
    let records = match direct {
        Some(store) => {
            let file = std::fs::File::create(&partial)
                .with_context(|| format!("cannot write {}", partial.display()))?;
            let stats = calbridge::backup::write_backup(&store, std::io::BufWriter::new(file))?;
            println!(
                "calbridge: backed up the store at {} directly",
                cfg.store_path.display()
            );
            stats.records.to_string()
        }
        None => {
            // The store is held by a running server: ask it.
            let base = server.unwrap_or_else(|| cfg.public_url.clone());
            let token = cfg
                .admin_token
                .as_ref()
                .map(|t| t.expose().to_string())
                .ok_or_else(|| anyhow::anyhow!("security.admin_token (or CALBRIDGE_ADMIN_TOKEN) is needed to back up a running server"))?;
            let client =
                calbridge::upstream::http::build_client(std::time::Duration::from_secs(600));
            let resp = client
                .get(format!("{}/api/v1/backup", base.trim_end_matches('/')))
                .bearer_auth(token)
                .send()
                .await
                .with_context(|| format!("cannot reach the server at {base}"))?;
            if !resp.status().is_success() {
                anyhow::bail!(
                    "the server refused the backup: {} {}",
                    resp.status(),
                    resp.text().await.unwrap_or_default()
                );
            }
            let records = resp
                .headers()
                .get("x-calbridge-records")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?")
                .to_string();
            let bytes = resp.bytes().await?;
            std::fs::write(&partial, &bytes)
                .with_context(|| format!("cannot write {}", partial.display()))?;
            println!("calbridge: backed up the running server at {base}");
            records
        }
    };
    std::fs::rename(&partial, &to).with_context(|| format!("cannot write {}", to.display()))?;
    println!("  {records} records written to {}", to.display());
    Ok(())
}

fn restore(cfg: Config, from: PathBuf) -> anyhow::Result<()> {
    use calbridge::store::SledStore;
    let dir = cfg.store_path.clone();
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        anyhow::bail!(
            "store.path: {} is not empty; restore into a new data directory (--data)",
            dir.display()
        );
    }
    let file =
        std::fs::File::open(&from).with_context(|| format!("cannot read {}", from.display()))?;
    let tmp = dir.with_extension(format!("restoring-{}", calbridge::crypto::random_id(6)));
    let result = (|| -> anyhow::Result<calbridge::backup::BackupStats> {
        let store = SledStore::open(&tmp, cfg.store_cache_bytes)?;
        Ok(calbridge::backup::restore(
            &store,
            std::io::BufReader::new(file),
        )?)
    })();
    match result {
        Ok(stats) => {
            if dir.exists() {
                std::fs::remove_dir(&dir)?;
            }
            std::fs::rename(&tmp, &dir)?;
            println!(
                "calbridge: restored {} records into {}",
                stats.records,
                dir.display()
            );
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e.context(format!("nothing was restored from {}", from.display())))
        }
    }
}
