//! One module per command.

mod bench;
mod build;
mod check;
mod contacts;
mod deploy;
mod diff;
mod explain;
mod fmt;
mod graph;
mod lsp;
mod pause;
mod preview;
mod serve;
mod serve_channels;
mod simulate;
mod stats;
mod status;
mod test;
mod trace;

use crate::Outcome;
use crate::cli::{Cli, Command};

pub type CommandResult = miette::Result<Outcome>;

/// The one project at `path` (a directory or a `.cairn` file) and its plan, for a
/// command that `does` what the refusal of several projects says (`` `cairn graph`
/// draws one journey of one project ``); `None` after printing the diagnostics of a
/// project that does not compile.
fn compiled_project(
    path: &std::path::Path,
    does: &str,
) -> miette::Result<Option<(cairn_compiler::project::Project, cairn_plan::Plan)>> {
    let mut projects = cairn_compiler::project::discover(&[path.to_path_buf()])?;
    if projects.len() != 1 {
        return Err(miette::miette!(
            help = "name one project directory or `.cairn` file",
            "`{}` holds {} projects; {does}",
            path.display(),
            projects.len()
        ));
    }
    let project = projects.remove(0);
    match cairn_compiler::build::build_plan(&project, None) {
        Ok(built) => Ok(Some((project, built.plan))),
        Err(errors) => {
            for (file, d) in &errors {
                let source = &project.sources[*file];
                eprintln!(
                    "{}",
                    crate::render::diagnostic(d, &source.path, &source.text)
                );
            }
            eprintln!("`{}` does not compile", project.name());
            Ok(None)
        }
    }
}

pub fn run(cli: Cli) -> CommandResult {
    match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Fmt(args) => fmt::run(&args),
        Command::Explain(args) => explain::run(&args),
        Command::Test(args) => test::run(&args),
        Command::Graph(args) => graph::run(&args),
        Command::Simulate(args) => simulate::run(&args),
        Command::Build(args) => build::run(&args),
        Command::Lsp => lsp::run(),
        Command::Serve(args) => serve::run(&args),
        Command::Deploy(args) => deploy::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Contacts(command) => contacts::run(&command),
        Command::Stats(args) => stats::run(&args),
        Command::Pause(args) => pause::pause(&args),
        Command::Resume(args) => pause::resume(&args),
        Command::Diff(args) => diff::run(&args),
        Command::Trace(args) => trace::run(&args),
        Command::Preview(args) => preview::run(&args),
        Command::Bench(args) => bench::run(&args),
    }
}
