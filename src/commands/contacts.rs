//! `cairn contacts export ID` and `cairn contacts erase ID`: a contact's data rights on
//! a running daemon, through its admin API; `cairn contacts import FILE`: contacts in
//! bulk (see [`import`]).

mod import;

use super::CommandResult;
use super::deploy::{admin_token, read_manifest, server_url};
use crate::Outcome;
use crate::cli::{ContactArgs, ContactsCommand, EraseArgs};
use crate::render;
use cairn_runtime::client::AdminClient;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

pub fn run(command: &ContactsCommand) -> CommandResult {
    match command {
        ContactsCommand::Export(args) => export(args),
        ContactsCommand::Erase(args) => erase(args),
        ContactsCommand::Import(args) => import::run(args),
    }
}

/// The daemon's URL and a client of its admin API, for `command`.
pub(super) fn connect(
    command: &str,
    server: Option<&str>,
    token: Option<&str>,
) -> miette::Result<(String, AdminClient)> {
    let here = Path::new(".");
    let manifest = read_manifest(here);
    let server = server_url(server, manifest.as_ref());
    let Some(token) = admin_token(token, Some(here)) else {
        return Err(miette::miette!(
            help = "pass `--token TOKEN` or set CAIRN_ADMIN_TOKEN",
            "`{command}` needs the daemon's admin token"
        ));
    };
    let client = AdminClient::new(&server, &token).map_err(|e| miette::miette!("{e}"))?;
    Ok((server, client))
}

fn export(args: &ContactArgs) -> CommandResult {
    let (_, client) = connect(
        "cairn contacts export",
        args.daemon.server.as_deref(),
        args.daemon.token.as_deref(),
    )?;
    let export = client
        .export_contact(&args.id)
        .map_err(|e| miette::miette!("{e}"))?;
    let text = serde_json::to_string_pretty(&export)
        .map_err(|e| miette::miette!("cannot print the export: {e}"))?
        + "\n";
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| miette::miette!("cannot write `{}`: {e}", path.display()))?,
        None => render::out(&text),
    }
    Ok(Outcome::Ok)
}

fn erase(args: &EraseArgs) -> CommandResult {
    let (server, client) = connect(
        "cairn contacts erase",
        args.daemon.server.as_deref(),
        args.daemon.token.as_deref(),
    )?;
    if !args.yes && !confirmed(&args.id, &server)? {
        eprintln!("nothing erased");
        return Ok(Outcome::Failed);
    }
    let erasure = client
        .erase_contact(&args.id)
        .map_err(|e| miette::miette!("{e}"))?;
    let when = cairn_runtime::time::timestamp(erasure.erased_at)
        .strftime("%Y-%m-%d %H:%M:%SZ")
        .to_string();
    if erasure.already_erased {
        render::out(&format!(
            "contact `{}` was already erased ({when}); nothing changed\n",
            erasure.contact_id
        ));
    } else {
        render::out(&format!(
            "erased contact `{}` ({when})\n  runs in flight ended: {}\n  unsent messages cancelled: {}\n  \
             events scrubbed: {}\n  addresses suppressed (as hashes): {}\n",
            erasure.contact_id,
            erasure.runs_ended,
            erasure.messages_cancelled,
            erasure.events_scrubbed,
            erasure.addresses_suppressed,
        ));
    }
    Ok(Outcome::Ok)
}

/// Asks on the terminal; without one, `--yes` is required.
fn confirmed(id: &str, server: &str) -> miette::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(miette::miette!(
            help = "pass `--yes` to erase without asking",
            "`cairn contacts erase` asks before erasing, and standard input is not a terminal"
        ));
    }
    eprint!(
        "erase contact `{id}` on {server}? Its personal data is removed for good.\n\
         type the contact id to confirm: "
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| miette::miette!("cannot read the answer: {e}"))?;
    Ok(answer.trim() == id)
}
