//! `cairn serve`: build the project and run the daemon for it.
//!
//! Settings come from the flags, then `CAIRN_*` environment variables, then the
//! manifest's `[serve]` table; secrets (the write key, the admin token, the webhook
//! secret) only from the environment, or generated on first start and written to
//! `.cairn/credentials`. State lives in the project's `.cairn/` unless `--database`
//! names another store.

use super::CommandResult;
use super::deploy::{DEFAULT_LISTEN, one_project, project_plan};
use crate::Outcome;
use crate::cli::ServeArgs;
use cairn_compiler::project::STATE_DIR;
use cairn_runtime::server::{ServeConfig, Started, init_tracing, serve_blocking};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn run(args: &ServeArgs) -> CommandResult {
    let dir = args.project.clone().unwrap_or_else(|| PathBuf::from("."));
    let project = one_project(&dir)?;
    let serve = &project.manifest.serve;
    let state_dir = project.root.join(STATE_DIR);

    let listen = setting(
        args.listen.as_deref(),
        "CAIRN_LISTEN",
        serve.listen.as_deref(),
    )
    .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let database = setting(
        args.database.as_deref(),
        "CAIRN_DATABASE_URL",
        serve.database.as_deref(),
    )
    .unwrap_or_else(|| format!("sqlite:{}", state_dir.join("cairn.db").display()));
    let outbox = setting(None, "CAIRN_OUTBOX", serve.outbox.as_deref())
        .map(|o| relative_to(&project.root, &o))
        .unwrap_or_else(|| state_dir.join("outbox"));
    let public_url = setting(
        args.public_url.as_deref(),
        "CAIRN_PUBLIC_URL",
        serve.public_url.as_deref(),
    )
    .unwrap_or_else(|| format!("http://{listen}"));

    let Some(plan) = project_plan(&dir)? else {
        return Ok(Outcome::Failed);
    };
    if database.starts_with("sqlite:") {
        std::fs::create_dir_all(&state_dir)
            .map_err(|e| miette::miette!("cannot create `{}`: {e}", state_dir.display()))?;
    }

    let mut config = ServeConfig::new(database.clone(), state_dir.clone());
    config.outbox_dir = outbox.clone();
    config.public_url = public_url;
    config.plan = Some(plan);
    config.write_key = secret("CAIRN_WRITE_KEY");
    config.admin_token = secret("CAIRN_ADMIN_TOKEN");
    config.webhook_secret = secret("CAIRN_WEBHOOK_SECRET");
    config.link_secret = secret("CAIRN_LINK_SECRET");
    config.respect.double_opt_in = project.manifest.double_opt_in.clone();
    if let Some(events) = &project.manifest.retention.events {
        config.retention =
            cairn_runtime::retention::parse(events).map_err(|e| miette::miette!("{e}"))?;
    }
    super::serve_channels::configure(args, &project.manifest, &project.root, &mut config)?;
    if let Some(lease) = secret("CAIRN_LEASE_SECS") {
        match lease.parse::<u64>() {
            Ok(seconds) if seconds > 0 => config.timer_lease = Duration::from_secs(seconds),
            _ => {
                return Err(miette::miette!(
                    "CAIRN_LEASE_SECS is `{lease}`: expected a whole number of seconds above 0"
                ));
            }
        }
    }

    let channels = super::serve_channels::describe(&config, &outbox);
    init_tracing();
    let shown_database = redact(&database);
    let on_start = |started: &Started| {
        eprintln!(
            "cairn serve: `{}` on http://{} ({} store at {shown_database})",
            project.name(),
            started.listening,
            started.backend.as_str()
        );
        match &started.deployed {
            Some(d) if d.changed => eprintln!(
                "deployed the project as plan version {} (hash {}…)",
                d.version,
                &d.content_hash[..12.min(d.content_hash.len())]
            ),
            Some(d) => eprintln!("plan version {} is current", d.version),
            None => {}
        }
        match &started.credentials_file {
            Some(file) => eprintln!(
                "first start: the write key and the admin token are in `{}`",
                file.display()
            ),
            None => eprintln!(
                "the write key and the admin token are in `{}` (or CAIRN_WRITE_KEY / CAIRN_ADMIN_TOKEN)",
                state_dir
                    .join(cairn_runtime::server::CREDENTIALS_FILE)
                    .display()
            ),
        }
        for line in &channels {
            eprintln!("{line}");
        }
    };
    serve_blocking(config, &listen, on_start).map_err(|e| miette::miette!("{e}"))?;
    eprintln!("cairn serve: stopped");
    Ok(Outcome::Ok)
}

/// The flag, else the environment variable, else the manifest's value.
fn setting(flag: Option<&str>, env: &str, manifest: Option<&str>) -> Option<String> {
    flag.map(str::to_string)
        .or_else(|| std::env::var(env).ok().filter(|v| !v.is_empty()))
        .or_else(|| manifest.map(str::to_string))
}

fn secret(env: &str) -> Option<String> {
    std::env::var(env).ok().filter(|v| !v.is_empty())
}

fn relative_to(root: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        root.join(path)
    }
}

/// A database URL without its password, for printing.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
