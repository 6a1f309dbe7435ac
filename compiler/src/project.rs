//! Finding a project on disk: its manifest (`cairn.toml`) and its `.cairn` sources.
//!
//! This is the only part of the compiler that touches the file system. It runs before
//! any query: the caller loads a [`Project`] and sets the database inputs from it.

use miette::{Diagnostic, NamedSource, SourceSpan};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const MANIFEST: &str = "cairn.toml";
/// Where a project keeps its runtime state; never searched for sources.
pub const STATE_DIR: &str = ".cairn";

/// `cairn.toml`. Secrets never live here: the daemon reads them from the environment.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default)]
    pub project: ProjectSection,
    #[serde(default)]
    pub serve: ServeSection,
    /// Email over SMTP; without it, emails go to the file outbox.
    pub email: Option<EmailSection>,
    /// SMS through a provider; without it, SMS go to the file outbox.
    pub sms: Option<SmsSection>,
    /// Push through a provider; without it, push messages go to the file outbox.
    pub push: Option<PushSection>,
    /// `[double_opt_in]`: consent name = the transactional email template that asks
    /// the contact to confirm it (`email_marketing = "confirm_optin"`). The daemon
    /// grants such a consent only through the confirmation link.
    #[serde(default)]
    pub double_opt_in: BTreeMap<String, String>,
    /// `[retention]`: how long the daemon keeps what it stores.
    #[serde(default)]
    pub retention: RetentionSection,
}

/// `[retention]`: `events = "400d"` deletes stored events once they are that old;
/// without it they are kept forever.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    pub events: Option<String>,
}

/// `[email]`: the SMTP server. The password comes from `CAIRN_SMTP_PASSWORD` or the
/// file `CAIRN_SMTP_PASSWORD_FILE` names, never from here.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EmailSection {
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    /// `starttls` (default), `tls` (implicit, port 465) or `none` (a local relay).
    pub tls: Option<String>,
    pub username: Option<String>,
    pub from: Option<String>,
    pub reply_to: Option<String>,
    pub pool_size: Option<u32>,
    pub timeout_secs: Option<u64>,
    /// A PEM file of extra certificate authorities, relative to the project.
    pub ca_file: Option<String>,
    pub hello_name: Option<String>,
}

/// `[sms]`: the SMS provider. The token comes from `CAIRN_SMS_TOKEN` or
/// `CAIRN_SMS_TOKEN_FILE`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmsSection {
    /// `twilio` or `json`.
    pub provider: Option<String>,
    pub url: Option<String>,
    pub account_sid: Option<String>,
    pub from: Option<String>,
    pub timeout_secs: Option<u64>,
}

/// `[push]`: the push provider. The token comes from `CAIRN_PUSH_TOKEN` or
/// `CAIRN_PUSH_TOKEN_FILE`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PushSection {
    pub url: Option<String>,
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProjectSection {
    pub name: Option<String>,
    /// Currency of money amounts that arrive without one.
    pub currency: Option<String>,
    /// Globs, relative to the project root, of the sources. Default: every `.cairn` file.
    pub sources: Option<Vec<String>>,
}

/// Non-secret defaults for `cairn serve`; flags and `CAIRN_*` variables override them.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServeSection {
    pub listen: Option<String>,
    pub database: Option<String>,
    pub outbox: Option<String>,
    pub public_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SourceText {
    /// Path as the user should read it (relative to where they ran the command).
    pub path: PathBuf,
    /// The text; invalid UTF-8 is replaced so diagnostics can still show the file.
    pub text: String,
    /// Present when the bytes were not UTF-8.
    pub utf8_error: Option<cairn_grammar::Diagnostic>,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
    pub manifest: Manifest,
    pub sources: Vec<SourceText>,
    /// Files templates may include (`html file "templates/x.html"`), by path relative to
    /// the root with `/` separators.
    pub assets: BTreeMap<String, String>,
}

/// Endings of the files loaded as template assets.
const ASSET_EXTENSIONS: &[&str] = &["html", "htm", "txt", "md", "jinja", "j2", "mjml"];
/// Larger files are not loaded as assets.
const MAX_ASSET_BYTES: u64 = 2 * 1024 * 1024;

impl Project {
    pub fn name(&self) -> String {
        self.manifest.project.name.clone().unwrap_or_else(|| {
            self.root
                .canonicalize()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "project".to_string())
        })
    }
}

#[derive(Debug, Error, Diagnostic)]
pub enum ProjectError {
    #[error("`{}` does not exist", path.display())]
    #[diagnostic(
        code(cairn::path),
        help("check the spelling, or run the command from the project directory")
    )]
    NotFound { path: PathBuf },

    #[error("`{}` has no `.cairn` files and no `cairn.toml`", path.display())]
    #[diagnostic(
        code(cairn::path),
        help("point at a project directory, a `.cairn` file, or a folder holding projects")
    )]
    NoSources { path: PathBuf },

    #[error("cannot read `{}`: {source}", path.display())]
    #[diagnostic(code(cairn::io))]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("`{}` is not a `.cairn` file", path.display())]
    #[diagnostic(code(cairn::path), help("Cairn sources end in `.cairn`"))]
    NotCairnFile { path: PathBuf },

    #[error("invalid `cairn.toml`: {message}")]
    #[diagnostic(code(cairn::manifest), help("see docs/cli.md for the manifest's keys"))]
    BadManifest {
        message: String,
        #[source_code]
        src: NamedSource<String>,
        #[label("here")]
        span: Option<SourceSpan>,
    },

    #[error("invalid source pattern `{pattern}` in `cairn.toml`: {message}")]
    #[diagnostic(code(cairn::manifest))]
    BadGlob { pattern: String, message: String },
}

/// Resolves the paths a user gave on the command line to projects.
///
/// - a `.cairn` file is a project of its own;
/// - a directory with `cairn.toml` or `.cairn` files directly inside is one project;
/// - any other directory holds the projects found below it.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<Project>, ProjectError> {
    let mut projects = Vec::new();
    for path in paths {
        if !path.exists() {
            return Err(ProjectError::NotFound { path: path.clone() });
        }
        if path.is_file() {
            if path.extension().and_then(|e| e.to_str()) != Some("cairn") {
                return Err(ProjectError::NotCairnFile { path: path.clone() });
            }
            let root = match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
                _ => PathBuf::from("."),
            };
            projects.push(Project {
                assets: read_assets(&root)?,
                root,
                manifest: Manifest::default(),
                sources: vec![read_source(path)?],
            });
        } else if is_project_dir(path) {
            projects.push(load(path)?);
        } else {
            let found = find_project_dirs(path)?;
            if found.is_empty() {
                return Err(ProjectError::NoSources { path: path.clone() });
            }
            for dir in found {
                projects.push(load(&dir)?);
            }
        }
    }
    Ok(projects)
}

/// Loads the project rooted at `root`.
pub fn load(root: &Path) -> Result<Project, ProjectError> {
    let manifest = read_manifest(root)?;
    let patterns = manifest
        .project
        .sources
        .clone()
        .unwrap_or_else(|| vec!["**/*.cairn".to_string()]);
    let mut builder = globset::GlobSetBuilder::new();
    for pattern in &patterns {
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| ProjectError::BadGlob {
                pattern: pattern.clone(),
                message: e.kind().to_string(),
            })?;
        builder.add(glob);
    }
    let set = builder.build().map_err(|e| ProjectError::BadGlob {
        pattern: patterns.join(", "),
        message: e.to_string(),
    })?;
    let mut sources = Vec::new();
    for entry in walk(root) {
        let entry = entry.map_err(|e| walk_error(root, e))?;
        if !entry.file_type().is_file() {
            continue;
        }
        let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
        if set.is_match(relative) && relative.extension().and_then(|e| e.to_str()) == Some("cairn")
        {
            sources.push(read_source(entry.path())?);
        }
    }
    if sources.is_empty() && manifest == Manifest::default() {
        return Err(ProjectError::NoSources {
            path: root.to_path_buf(),
        });
    }
    Ok(Project {
        root: root.to_path_buf(),
        manifest,
        sources,
        assets: read_assets(root)?,
    })
}

/// A project from files held in memory, keyed by their path relative to the project
/// root (`/`-separated): what `cairn diff` loads from a git revision. The same rules as
/// [`load`]: the manifest's source globs, hidden folders skipped, template assets by
/// their ending. Paths in diagnostics are `root` joined with the key.
pub fn from_files(root: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<Project, ProjectError> {
    let manifest = match files.get(MANIFEST) {
        None => Manifest::default(),
        Some(bytes) => {
            let text = String::from_utf8_lossy(bytes).into_owned();
            toml::from_str(&text).map_err(|e| ProjectError::BadManifest {
                message: e.message().to_string(),
                span: e.span().map(|r| (r.start, r.end - r.start).into()),
                src: NamedSource::new(root.join(MANIFEST).display().to_string(), text),
            })?
        }
    };
    let set = source_globs(&manifest)?;
    let hidden = |key: &str| {
        key.split('/')
            .rev()
            .skip(1)
            .any(|dir| dir.starts_with('.') || dir == "target" || dir == "node_modules")
    };
    let mut sources = Vec::new();
    let mut assets = BTreeMap::new();
    for (key, bytes) in files {
        if hidden(key) {
            continue;
        }
        let relative = Path::new(key);
        let ending = relative.extension().and_then(|e| e.to_str());
        if ending == Some("cairn") && set.is_match(relative) {
            let utf8_error = cairn_grammar::parse::utf8_error(bytes);
            sources.push(SourceText {
                path: root.join(relative),
                text: String::from_utf8_lossy(bytes).into_owned(),
                utf8_error,
            });
        } else if ending
            .is_some_and(|e| ASSET_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            && bytes.len() as u64 <= MAX_ASSET_BYTES
            && let Ok(text) = std::str::from_utf8(bytes)
        {
            assets.insert(key.clone(), text.to_string());
        }
    }
    if sources.is_empty() && manifest == Manifest::default() {
        return Err(ProjectError::NoSources {
            path: root.to_path_buf(),
        });
    }
    Ok(Project {
        root: root.to_path_buf(),
        manifest,
        sources,
        assets,
    })
}

fn source_globs(manifest: &Manifest) -> Result<globset::GlobSet, ProjectError> {
    let patterns = manifest
        .project
        .sources
        .clone()
        .unwrap_or_else(|| vec!["**/*.cairn".to_string()]);
    let mut builder = globset::GlobSetBuilder::new();
    for pattern in &patterns {
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| ProjectError::BadGlob {
                pattern: pattern.clone(),
                message: e.kind().to_string(),
            })?;
        builder.add(glob);
    }
    builder.build().map_err(|e| ProjectError::BadGlob {
        pattern: patterns.join(", "),
        message: e.to_string(),
    })
}

pub fn read_source(path: &Path) -> Result<SourceText, ProjectError> {
    let bytes = std::fs::read(path).map_err(|source| ProjectError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let utf8_error = cairn_grammar::parse::utf8_error(&bytes);
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    Ok(SourceText {
        path: path.to_path_buf(),
        text,
        utf8_error,
    })
}

/// Template files below `root`: HTML, text and Jinja files.
pub fn read_assets(root: &Path) -> Result<BTreeMap<String, String>, ProjectError> {
    let mut assets = BTreeMap::new();
    for entry in walk(root) {
        let entry = entry.map_err(|e| walk_error(root, e))?;
        let path = entry.path();
        let wanted = entry.file_type().is_file()
            && path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ASSET_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            && entry.metadata().is_ok_and(|m| m.len() <= MAX_ASSET_BYTES);
        if !wanted {
            continue;
        }
        let relative = path.strip_prefix(root).unwrap_or(path);
        let key: Vec<String> = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if let Ok(text) = std::fs::read_to_string(path) {
            assets.insert(key.join("/"), text);
        }
    }
    Ok(assets)
}

fn read_manifest(root: &Path) -> Result<Manifest, ProjectError> {
    let path = root.join(MANIFEST);
    if !path.exists() {
        return Ok(Manifest::default());
    }
    let text = std::fs::read_to_string(&path).map_err(|source| ProjectError::Unreadable {
        path: path.clone(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ProjectError::BadManifest {
        message: e.message().to_string(),
        span: e.span().map(|r| (r.start, r.end - r.start).into()),
        src: NamedSource::new(path.display().to_string(), text),
    })
}

fn is_project_dir(dir: &Path) -> bool {
    if dir.join(MANIFEST).is_file() {
        return true;
    }
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let p = e.path();
            p.is_file() && p.extension().and_then(|x| x.to_str()) == Some("cairn")
        })
    })
}

/// Project directories below `dir`, outermost first; a project's own subfolders are
/// part of it, not projects of their own.
fn find_project_dirs(dir: &Path) -> Result<Vec<PathBuf>, ProjectError> {
    let mut found: Vec<PathBuf> = Vec::new();
    let mut walker = walk(dir);
    while let Some(entry) = walker.next() {
        let entry = entry.map_err(|e| walk_error(dir, e))?;
        if entry.file_type().is_dir() && entry.depth() > 0 && is_project_dir(entry.path()) {
            found.push(entry.path().to_path_buf());
            walker.skip_current_dir();
        }
    }
    found.sort();
    Ok(found)
}

type Walker = walkdir::FilterEntry<walkdir::IntoIter, fn(&walkdir::DirEntry) -> bool>;

/// Walks `dir` in a stable order, skipping hidden folders (`.cairn/` state, `.git/`),
/// build output and installed packages.
fn walk(dir: &Path) -> Walker {
    fn visible(e: &walkdir::DirEntry) -> bool {
        let name = e.file_name().to_string_lossy();
        e.depth() == 0 || !(name.starts_with('.') || name == "target" || name == "node_modules")
    }
    walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .follow_links(false)
        .into_iter()
        .filter_entry(visible as fn(&walkdir::DirEntry) -> bool)
}

fn walk_error(root: &Path, e: walkdir::Error) -> ProjectError {
    let path = e
        .path()
        .map_or_else(|| root.to_path_buf(), Path::to_path_buf);
    ProjectError::Unreadable {
        path,
        source: e
            .into_io_error()
            .unwrap_or_else(|| std::io::Error::other("file system loop")),
    }
}
