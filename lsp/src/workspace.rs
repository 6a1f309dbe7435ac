//! The files the server knows: the projects found in the editor's workspace folders,
//! every `.cairn` file of each (open in the editor or only on disk), and the mapping
//! between LSP URIs, paths and the database's inputs.
//!
//! The main loop owns the one mutable [`World`] and the database; requests read a
//! snapshot (a clone of both). A document open in the editor is the source of truth for
//! its file; a file not open is read from disk.

use crate::position::Text;
use cairn_compiler::db::{Database, ProjectInput, SourceFile};
use cairn_compiler::project::{self, Project};
use lsp_types::{TextDocumentContentChangeEvent, Uri};
use salsa::Setter as _;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

/// How a document is found: its file path when it has one, else its URI as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocKey {
    Path(PathBuf),
    Uri(String),
}

impl DocKey {
    pub fn of(uri: &Uri) -> DocKey {
        match uri_to_path(uri) {
            Some(path) => DocKey::Path(path),
            None => DocKey::Uri(uri.as_str().to_string()),
        }
    }
}

/// One source file of a project.
#[derive(Debug, Clone)]
pub struct Doc {
    /// The URI the editor uses for it (or one made from its path).
    pub uri: Uri,
    pub file: SourceFile,
    pub project: usize,
    /// The editor's version while the document is open; `None` when read from disk.
    pub version: Option<i32>,
    pub text: Arc<Text>,
}

#[derive(Debug, Clone)]
pub struct ProjectState {
    /// The folder holding `cairn.toml` or the sources; `None` for an unsaved document.
    pub root: Option<PathBuf>,
    pub input: ProjectInput,
}

#[derive(Debug, Clone, Default)]
pub struct World {
    pub docs: BTreeMap<DocKey, Arc<Doc>>,
    pub projects: Vec<ProjectState>,
    pub by_file: HashMap<SourceFile, DocKey>,
}

/// Why an edit was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditError {
    UnknownDocument,
    /// The change's version is not newer than the document's.
    StaleVersion {
        have: i32,
        got: i32,
    },
}

impl World {
    pub fn doc(&self, uri: &Uri) -> Option<&Arc<Doc>> {
        self.docs.get(&DocKey::of(uri))
    }

    pub fn doc_of_file(&self, file: SourceFile) -> Option<&Arc<Doc>> {
        self.by_file.get(&file).and_then(|k| self.docs.get(k))
    }

    /// The documents of one project, in path order.
    pub fn project_docs(&self, project: usize) -> impl Iterator<Item = &Arc<Doc>> {
        self.docs.values().filter(move |d| d.project == project)
    }

    /// Loads every project found in a workspace folder. A folder holding no project
    /// is not an error: documents opened later bring their own.
    pub fn load_folder(&mut self, db: &Database, folder: &Path) {
        if let Ok(projects) = project::discover(&[folder.to_path_buf()]) {
            for p in projects {
                self.add_project(db, p);
            }
        }
    }

    fn add_project(&mut self, db: &Database, p: Project) -> usize {
        let root = absolute(&p.root);
        if let Some(existing) = self
            .projects
            .iter()
            .position(|s| s.root.as_deref() == Some(root.as_path()))
        {
            return existing;
        }
        let index = self.projects.len();
        let mut files = Vec::new();
        for source in &p.sources {
            let path = absolute(&source.path);
            let key = DocKey::Path(path.clone());
            if self.docs.contains_key(&key) {
                continue;
            }
            let file = SourceFile::new(db, path.display().to_string(), source.text.clone());
            files.push(file);
            self.insert(
                key,
                Doc {
                    uri: path_to_uri(&path),
                    file,
                    project: index,
                    version: None,
                    text: Arc::new(Text::new(source.text.clone())),
                },
            );
        }
        let input = ProjectInput::new(
            db,
            files,
            p.assets.clone(),
            p.manifest.project.currency.clone(),
        );
        self.projects.push(ProjectState {
            root: Some(root),
            input,
        });
        index
    }

    fn insert(&mut self, key: DocKey, doc: Doc) {
        self.by_file.insert(doc.file, key.clone());
        self.docs.insert(key, Arc::new(doc));
    }

    /// The editor opened a document: it now owns the text.
    pub fn open(&mut self, db: &mut Database, uri: &Uri, text: String, version: i32) {
        let key = DocKey::of(uri);
        let project = match &key {
            DocKey::Path(path) if !self.docs.contains_key(&key) => self.project_for_path(db, path),
            _ => None,
        };
        // Loading the project may have read this very file from disk.
        if let Some(doc) = self.docs.get(&key).cloned() {
            if doc.text.text != text {
                doc.file.set_text(db).to(text.clone());
            }
            self.insert(
                key,
                Doc {
                    uri: uri.clone(),
                    version: Some(version),
                    text: Arc::new(Text::new(text)),
                    ..(*doc).clone()
                },
            );
            return;
        }
        let project = match project {
            Some(p) => p,
            None => {
                let input = ProjectInput::new(db, Vec::new(), BTreeMap::new(), None);
                self.projects.push(ProjectState { root: None, input });
                self.projects.len() - 1
            }
        };
        let name = match &key {
            DocKey::Path(p) => p.display().to_string(),
            DocKey::Uri(u) => u.clone(),
        };
        let file = SourceFile::new(db, name, text.clone());
        let input = self.projects[project].input;
        let mut files = input.files(db).clone();
        files.push(file);
        input.set_files(db).to(files);
        self.insert(
            key,
            Doc {
                uri: uri.clone(),
                file,
                project,
                version: Some(version),
                text: Arc::new(Text::new(text)),
            },
        );
    }

    /// The project a file on disk belongs to: one already loaded whose root holds it,
    /// else the project around it, loaded now.
    fn project_for_path(&mut self, db: &Database, path: &Path) -> Option<usize> {
        let known = self
            .projects
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let root = p.root.as_ref()?;
                path.starts_with(root)
                    .then_some((i, root.components().count()))
            })
            .max_by_key(|(_, depth)| *depth)
            .map(|(i, _)| i);
        if known.is_some() {
            return known;
        }
        let dir = path.parent()?;
        let root = dir
            .ancestors()
            .find(|a| a.join(project::MANIFEST).is_file())
            .unwrap_or(dir);
        let loaded = project::load(root).unwrap_or_else(|_| Project {
            root: root.to_path_buf(),
            manifest: project::Manifest::default(),
            sources: Vec::new(),
            assets: project::read_assets(root).unwrap_or_default(),
        });
        Some(self.add_project(db, loaded))
    }

    /// Applies the editor's changes in order. A change whose version is not newer than
    /// the document's is refused whole: applying it to the wrong text would corrupt it.
    pub fn change(
        &mut self,
        db: &mut Database,
        uri: &Uri,
        version: i32,
        changes: Vec<TextDocumentContentChangeEvent>,
    ) -> Result<(), EditError> {
        let key = DocKey::of(uri);
        let doc = self
            .docs
            .get(&key)
            .ok_or(EditError::UnknownDocument)?
            .clone();
        if let Some(have) = doc.version
            && version <= have
        {
            return Err(EditError::StaleVersion { have, got: version });
        }
        let mut text = Text::new(doc.text.text.clone());
        for change in changes {
            text = match change.range {
                None => Text::new(change.text),
                Some(range) => {
                    let span = text.span(range);
                    let mut s = text.text;
                    s.replace_range(span.start..span.end, &change.text);
                    Text::new(s)
                }
            };
        }
        doc.file.set_text(db).to(text.text.clone());
        self.insert(
            key,
            Doc {
                version: Some(version),
                text: Arc::new(text),
                ..(*doc).clone()
            },
        );
        Ok(())
    }

    /// The editor closed a document: the file on disk is the truth again, and a file
    /// that was never saved leaves its project.
    pub fn close(&mut self, db: &mut Database, uri: &Uri) {
        let key = DocKey::of(uri);
        let Some(doc) = self.docs.get(&key).cloned() else {
            return;
        };
        let on_disk = match &key {
            DocKey::Path(p) => std::fs::read_to_string(p).ok(),
            DocKey::Uri(_) => None,
        };
        match on_disk {
            Some(text) => {
                if doc.text.text != text {
                    doc.file.set_text(db).to(text.clone());
                }
                self.insert(
                    key,
                    Doc {
                        version: None,
                        text: Arc::new(Text::new(text)),
                        ..(*doc).clone()
                    },
                );
            }
            None => self.remove(db, &key),
        }
    }
}

impl World {
    /// Files changed on disk (the client's file watcher): documents not open in the
    /// editor are read again, new `.cairn` files join their project, and a changed
    /// template file reloads its project's assets.
    pub fn reload_from_disk(&mut self, db: &mut Database, changes: &[lsp_types::FileEvent]) {
        for change in changes {
            let Some(path) = uri_to_path(&change.uri) else {
                continue;
            };
            let key = DocKey::Path(path.clone());
            let on_disk = std::fs::read_to_string(&path).ok();
            if let Some(doc) = self.docs.get(&key).cloned() {
                if doc.version.is_some() {
                    continue;
                }
                match on_disk {
                    Some(text) => {
                        if doc.text.text != text {
                            doc.file.set_text(db).to(text.clone());
                        }
                        self.insert(
                            key,
                            Doc {
                                text: Arc::new(Text::new(text)),
                                ..(*doc).clone()
                            },
                        );
                    }
                    None => self.remove(db, &key),
                }
                continue;
            }
            let Some(project) = self
                .projects
                .iter()
                .position(|p| p.root.as_ref().is_some_and(|root| path.starts_with(root)))
            else {
                continue;
            };
            if path.extension().and_then(|e| e.to_str()) == Some("cairn") {
                if let Some(text) = on_disk {
                    let file = SourceFile::new(db, path.display().to_string(), text.clone());
                    let input = self.projects[project].input;
                    let mut files = input.files(db).clone();
                    files.push(file);
                    input.set_files(db).to(files);
                    self.insert(
                        key,
                        Doc {
                            uri: path_to_uri(&path),
                            file,
                            project,
                            version: None,
                            text: Arc::new(Text::new(text)),
                        },
                    );
                }
            } else if let Some(root) = self.projects[project].root.clone() {
                let assets = project::read_assets(&root).unwrap_or_default();
                let input = self.projects[project].input;
                if *input.assets(db) != assets {
                    input.set_assets(db).to(assets);
                }
            }
        }
    }

    fn remove(&mut self, db: &mut Database, key: &DocKey) {
        let Some(doc) = self.docs.remove(key) else {
            return;
        };
        self.by_file.remove(&doc.file);
        let input = self.projects[doc.project].input;
        let files: Vec<SourceFile> = input
            .files(db)
            .iter()
            .copied()
            .filter(|f| *f != doc.file)
            .collect();
        input.set_files(db).to(files);
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The path of a `file:` URI, percent-decoded; `None` for other schemes.
pub fn uri_to_path(uri: &Uri) -> Option<PathBuf> {
    let s = uri.as_str();
    let rest = s.strip_prefix("file://")?;
    // `file://host/path`: only the local host is ours.
    let path = match rest.find('/') {
        Some(0) => rest,
        Some(i) if &rest[..i] == "localhost" => &rest[i..],
        _ => return None,
    };
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let bytes = percent_decode(path)?;
    let decoded = String::from_utf8(bytes).ok()?;
    Some(PathBuf::from(decoded))
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The `file:` URI of an absolute path, percent-encoding all but the unreserved
/// characters and `/`.
pub fn path_to_uri(path: &Path) -> Uri {
    let mut s = String::from("file://");
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'.' | b'_' | b'~') {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    match Uri::from_str(&s) {
        Ok(uri) => uri,
        // Every character is encoded or unreserved, so this cannot fail; fall back to
        // a URI that names nothing rather than panic.
        Err(_) => fallback_uri(),
    }
}

fn fallback_uri() -> Uri {
    #[expect(clippy::unwrap_used, reason = "a constant URI that parses")]
    Uri::from_str("file:///").unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_uris_round_trip() {
        for p in [
            "/tmp/a b/żółw 🛒.cairn",
            "/x/y%z#.cairn",
            "/plain/path.cairn",
        ] {
            let uri = path_to_uri(Path::new(p));
            assert_eq!(
                uri_to_path(&uri),
                Some(PathBuf::from(p)),
                "{}",
                uri.as_str()
            );
        }
        let untitled = Uri::from_str("untitled:Untitled-1").expect("a URI");
        assert_eq!(uri_to_path(&untitled), None);
    }
}
