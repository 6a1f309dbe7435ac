//! The main loop: it owns the database and the [`World`], applies the editor's edits,
//! and hands every request a snapshot to answer on a worker thread.
//!
//! Salsa makes the concurrency simple: a snapshot is a clone of the database, and
//! setting an input (an edit) cancels every query running on a clone and waits until
//! the clones are dropped. A request cancelled that way is answered `ContentModified`;
//! a request that panics is answered `InternalError`; the server goes on either way.

use crate::diagnostics;
use crate::handlers;
use crate::workspace::{DocKey, EditError, World, uri_to_path};
use cairn_compiler::db::Database;
use crossbeam_channel::{Receiver, Sender};
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types::notification::{self as notif, Notification as _};
use lsp_types::request::{self as req, Request as _};
use lsp_types::{InitializeParams, InitializeResult, ServerInfo};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

/// What a request handler reads: the database and the files, frozen at one moment.
#[derive(Clone)]
pub struct Snapshot {
    pub db: Database,
    pub world: Arc<World>,
}

/// A request that could not be answered, as the protocol error to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    pub code: i32,
    pub message: String,
}

impl RequestError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code: code as i32,
            message: message.into(),
        }
    }

    pub fn unknown_document(uri: &lsp_types::Uri) -> Self {
        Self::new(
            ErrorCode::InvalidParams,
            format!(
                "`{}` is not open and not part of a Cairn project",
                uri.as_str()
            ),
        )
    }
}

pub type RequestResult<T> = Result<T, RequestError>;

/// Why the server stopped other than by `exit`.
#[derive(Debug)]
pub struct ServerError(pub String);

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServerError {}

/// How the session ended. The protocol asks for exit code 0 after `shutdown` and 1
/// when the client exits (or goes away) without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    AfterShutdown,
    WithoutShutdown,
}

/// Runs the server over standard input and output until the client says `exit`.
pub fn run_stdio() -> Result<Exit, ServerError> {
    let (connection, io_threads) = Connection::stdio();
    let exit = run(connection)?;
    io_threads
        .join()
        .map_err(|e| ServerError(format!("i/o: {e}")))?;
    Ok(exit)
}

/// Runs the server on any connection (standard I/O, or memory in tests and benchmarks).
pub fn run(connection: Connection) -> Result<Exit, ServerError> {
    let Some(params) = handshake(&connection)? else {
        return Ok(Exit::WithoutShutdown);
    };
    let mut server = Server::new(outbox(connection.sender.clone()));
    for folder in workspace_folders(&params) {
        Arc::make_mut(&mut server.world).load_folder(&server.db, &folder);
    }
    server.diagnostics_dirty = true;
    server.main_loop(&connection.receiver);
    Ok(if server.shutdown {
        Exit::AfterShutdown
    } else {
        Exit::WithoutShutdown
    })
}

/// A sender that never blocks: messages queue here and a thread hands them to the
/// connection in order. Workers hold database snapshots while they send, and an edit
/// waits for every snapshot to be dropped; if sending could block on a client that is
/// itself blocked writing an edit to us, nothing would move again.
fn outbox(connection: Sender<Message>) -> Sender<Message> {
    let (sender, receiver) = crossbeam_channel::unbounded::<Message>();
    let direct = connection.clone();
    let spawned = std::thread::Builder::new()
        .name("cairn-lsp-outbox".to_string())
        .spawn(move || {
            for message in receiver {
                if connection.send(message).is_err() {
                    break;
                }
            }
        });
    // Without a thread for the queue, send directly: correct, only less patient.
    if spawned.is_ok() { sender } else { direct }
}

/// Waits for `initialize` and answers it. Requests before it get `ServerNotInitialized`,
/// as the protocol asks. `None`: the client left before initializing.
fn handshake(connection: &Connection) -> Result<Option<InitializeParams>, ServerError> {
    loop {
        let Ok(msg) = connection.receiver.recv() else {
            return Ok(None);
        };
        match msg {
            Message::Request(r) if r.method == req::Initialize::METHOD => {
                let params: InitializeParams = serde_json::from_value(r.params).unwrap_or_default();
                let result = InitializeResult {
                    capabilities: handlers::capabilities(),
                    server_info: Some(ServerInfo {
                        name: "cairn".to_string(),
                        version: Some(env!("CARGO_PKG_VERSION").to_string()),
                    }),
                };
                let response = Response::new_ok(r.id, result);
                connection
                    .sender
                    .send(response.into())
                    .map_err(|_| ServerError("the client went away".to_string()))?;
                return Ok(Some(params));
            }
            Message::Request(r) => {
                let response = Response::new_err(
                    r.id,
                    ErrorCode::ServerNotInitialized as i32,
                    "the server is not initialized yet".to_string(),
                );
                let _ = connection.sender.send(response.into());
            }
            Message::Notification(n) if n.method == notif::Exit::METHOD => return Ok(None),
            Message::Notification(_) | Message::Response(_) => {}
        }
    }
}

#[expect(
    deprecated,
    reason = "root_uri and root_path are what older clients, such as Neovim 0.7, send"
)]
fn workspace_folders(params: &InitializeParams) -> Vec<std::path::PathBuf> {
    let mut folders: Vec<std::path::PathBuf> = params
        .workspace_folders
        .iter()
        .flatten()
        .filter_map(|f| uri_to_path(&f.uri))
        .collect();
    if folders.is_empty() {
        folders.extend(params.root_uri.as_ref().and_then(uri_to_path));
    }
    if folders.is_empty() {
        folders.extend(params.root_path.as_ref().map(std::path::PathBuf::from));
    }
    folders
}

struct Server {
    sender: Sender<Message>,
    db: Database,
    world: Arc<World>,
    pool: Pool,
    /// Diagnostics last published, per document, so unchanged ones are not resent.
    published: Arc<Mutex<HashMap<DocKey, u64>>>,
    /// Documents edited since diagnostics were last scheduled: they are always published,
    /// so an editor sees its version acknowledged.
    touched: Vec<DocKey>,
    diagnostics_dirty: bool,
    shutdown: bool,
}

impl Server {
    fn new(sender: Sender<Message>) -> Self {
        Self {
            sender,
            db: Database::default(),
            world: Arc::new(World::default()),
            pool: Pool::new(),
            published: Arc::new(Mutex::new(HashMap::new())),
            touched: Vec::new(),
            diagnostics_dirty: false,
            shutdown: false,
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            db: self.db.clone(),
            world: self.world.clone(),
        }
    }

    fn main_loop(&mut self, receiver: &Receiver<Message>) {
        // Diagnostics wait until the queue is drained, so a burst of keystrokes is
        // checked once.
        self.schedule_diagnostics();
        while let Ok(msg) = receiver.recv() {
            match msg {
                Message::Request(r) => self.on_request(r),
                Message::Notification(n) => {
                    if n.method == notif::Exit::METHOD {
                        return;
                    }
                    // An edit must never take the server down with it.
                    let outcome =
                        std::panic::catch_unwind(AssertUnwindSafe(|| self.on_notification(n)));
                    if let Err(panic) = outcome {
                        self.log(&format!(
                            "internal error while applying a notification: {}",
                            panic_message(panic.as_ref())
                        ));
                    }
                }
                Message::Response(_) => {}
            }
            if self.diagnostics_dirty && receiver.is_empty() {
                self.schedule_diagnostics();
            }
        }
    }

    fn on_request(&mut self, r: Request) {
        if self.shutdown {
            self.respond(Response::new_err(
                r.id,
                ErrorCode::InvalidRequest as i32,
                "the server is shutting down".to_string(),
            ));
            return;
        }
        if r.method == req::Shutdown::METHOD {
            self.shutdown = true;
            self.respond(Response::new_ok(r.id, ()));
            return;
        }
        if r.method == req::Initialize::METHOD {
            self.respond(Response::new_err(
                r.id,
                ErrorCode::InvalidRequest as i32,
                "the server is already initialized".to_string(),
            ));
            return;
        }
        match handlers::route(&r.method) {
            Some(handler) => {
                let snapshot = self.snapshot();
                let sender = self.sender.clone();
                self.pool.spawn(move || {
                    let response = answer(r.id, &snapshot, r.params, handler);
                    // Sent before the snapshot is dropped: an edit waiting for it cannot
                    // overtake the answer.
                    let _ = sender.send(response.into());
                    drop(snapshot);
                });
            }
            None => self.respond(Response::new_err(
                r.id,
                ErrorCode::MethodNotFound as i32,
                format!("unknown request `{}`", r.method),
            )),
        }
    }

    fn on_notification(&mut self, n: Notification) {
        match n.method.as_str() {
            notif::DidOpenTextDocument::METHOD => {
                let Ok(p) =
                    serde_json::from_value::<lsp_types::DidOpenTextDocumentParams>(n.params)
                else {
                    return self.log("ignored a malformed didOpen");
                };
                let doc = p.text_document;
                Arc::make_mut(&mut self.world).open(&mut self.db, &doc.uri, doc.text, doc.version);
                self.touch(DocKey::of(&doc.uri));
            }
            notif::DidChangeTextDocument::METHOD => {
                let Ok(p) =
                    serde_json::from_value::<lsp_types::DidChangeTextDocumentParams>(n.params)
                else {
                    return self.log("ignored a malformed didChange");
                };
                let uri = p.text_document.uri;
                let result = Arc::make_mut(&mut self.world).change(
                    &mut self.db,
                    &uri,
                    p.text_document.version,
                    p.content_changes,
                );
                match result {
                    Ok(()) => self.touch(DocKey::of(&uri)),
                    Err(EditError::UnknownDocument) => self.log(&format!(
                        "ignored a change to `{}`, which is not open",
                        uri.as_str()
                    )),
                    Err(EditError::StaleVersion { have, got }) => self.log(&format!(
                        "ignored version {got} of `{}`: version {have} is already applied",
                        uri.as_str()
                    )),
                }
            }
            notif::DidCloseTextDocument::METHOD => {
                let Ok(p) =
                    serde_json::from_value::<lsp_types::DidCloseTextDocumentParams>(n.params)
                else {
                    return self.log("ignored a malformed didClose");
                };
                let uri = p.text_document.uri;
                let key = DocKey::of(&uri);
                Arc::make_mut(&mut self.world).close(&mut self.db, &uri);
                if !self.world.docs.contains_key(&key) {
                    // The file left the project: clear what the editor shows for it.
                    if let Ok(mut published) = self.published.lock() {
                        published.remove(&key);
                    }
                    let clear = lsp_types::PublishDiagnosticsParams::new(uri, Vec::new(), None);
                    self.notify::<notif::PublishDiagnostics>(clear);
                }
                self.diagnostics_dirty = true;
            }
            notif::DidChangeWatchedFiles::METHOD => {
                let Ok(p) =
                    serde_json::from_value::<lsp_types::DidChangeWatchedFilesParams>(n.params)
                else {
                    return;
                };
                Arc::make_mut(&mut self.world).reload_from_disk(&mut self.db, &p.changes);
                self.diagnostics_dirty = true;
            }
            notif::DidChangeWorkspaceFolders::METHOD => {
                let Ok(p) =
                    serde_json::from_value::<lsp_types::DidChangeWorkspaceFoldersParams>(n.params)
                else {
                    return self.log("ignored a malformed didChangeWorkspaceFolders");
                };
                // Projects of removed folders stay: their files may still be open.
                for folder in p.event.added {
                    if let Some(path) = uri_to_path(&folder.uri) {
                        Arc::make_mut(&mut self.world).load_folder(&self.db, &path);
                    }
                }
                self.diagnostics_dirty = true;
            }
            // Cancellation is by edit (salsa); requests already running finish quickly.
            _ => {}
        }
    }

    fn touch(&mut self, key: DocKey) {
        if !self.touched.contains(&key) {
            self.touched.push(key);
        }
        self.diagnostics_dirty = true;
    }

    fn schedule_diagnostics(&mut self) {
        self.diagnostics_dirty = false;
        let snapshot = self.snapshot();
        let touched = std::mem::take(&mut self.touched);
        let sender = self.sender.clone();
        let published = self.published.clone();
        self.pool.spawn(move || {
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                salsa::Cancelled::catch(AssertUnwindSafe(|| {
                    diagnostics::publish(&snapshot, &touched, &published, &sender)
                }))
            }));
            if let Err(panic) = outcome {
                let message = format!(
                    "internal error while checking: {}",
                    panic_message(panic.as_ref())
                );
                let _ = sender.send(log_message(&message).into());
            }
            drop(snapshot);
        });
    }

    fn respond(&self, response: Response) {
        let _ = self.sender.send(response.into());
    }

    fn notify<N: notif::Notification>(&self, params: N::Params) {
        let _ = self
            .sender
            .send(Notification::new(N::METHOD.to_string(), params).into());
    }

    fn log(&self, message: &str) {
        let _ = self.sender.send(log_message(message).into());
    }
}

fn log_message(message: &str) -> Notification {
    Notification::new(
        notif::LogMessage::METHOD.to_string(),
        lsp_types::LogMessageParams {
            typ: lsp_types::MessageType::WARNING,
            message: message.to_string(),
        },
    )
}

/// A request handler: parameters and a snapshot in, the result as JSON out.
pub type Handler = fn(&Snapshot, serde_json::Value) -> RequestResult<serde_json::Value>;

/// Runs one handler, turning cancellation and panics into protocol errors.
pub fn answer(
    id: RequestId,
    snapshot: &Snapshot,
    params: serde_json::Value,
    handler: impl FnOnce(&Snapshot, serde_json::Value) -> RequestResult<serde_json::Value>,
) -> Response {
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        salsa::Cancelled::catch(AssertUnwindSafe(|| handler(snapshot, params)))
    }));
    match outcome {
        Ok(Ok(Ok(value))) => Response::new_ok(id, value),
        Ok(Ok(Err(e))) => Response::new_err(id, e.code, e.message),
        Ok(Err(_cancelled)) => Response::new_err(
            id,
            ErrorCode::ContentModified as i32,
            "the document changed while the request ran".to_string(),
        ),
        Err(panic) => Response::new_err(
            id,
            ErrorCode::InternalError as i32,
            format!(
                "internal error: {}; please report it",
                panic_message(panic.as_ref())
            ),
        ),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A few worker threads for requests and checks; the main loop stays free for edits.
struct Pool {
    jobs: Sender<Job>,
}

impl Pool {
    fn new() -> Self {
        let (jobs, receiver) = crossbeam_channel::unbounded::<Job>();
        let threads = std::thread::available_parallelism()
            .map_or(2, usize::from)
            .clamp(2, 4);
        for i in 0..threads {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("cairn-lsp-worker-{i}"))
                .spawn(move || {
                    for job in receiver {
                        // Jobs catch their own panics; this keeps the worker alive if one
                        // slips through.
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                    }
                });
            if spawned.is_err() {
                break;
            }
        }
        Self { jobs }
    }

    fn spawn(&self, job: impl FnOnce() + Send + 'static) {
        let _ = self.jobs.send(Box::new(job));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_compiler::db::{ProjectInput, SourceFile, file_diagnostics};
    use salsa::Setter as _;
    use std::collections::BTreeMap;

    fn empty_snapshot() -> Snapshot {
        Snapshot {
            db: Database::default(),
            world: Arc::new(World::default()),
        }
    }

    #[test]
    fn a_panicking_handler_is_an_internal_error() {
        fn boom(_: &Snapshot, _: serde_json::Value) -> RequestResult<serde_json::Value> {
            panic!("boom")
        }
        let response = answer(
            RequestId::from(1),
            &empty_snapshot(),
            serde_json::json!({}),
            boom,
        );
        let error = response.response_result.expect_err("an error response");
        assert_eq!(error.code, ErrorCode::InternalError as i32);
        assert!(error.message.contains("boom"), "{}", error.message);
    }

    #[test]
    fn an_edit_cancels_a_running_request_with_content_modified() {
        let mut db = Database::default();
        let file = SourceFile::new(&db, "a.cairn".into(), "tag a\n".into());
        let project = ProjectInput::new(&db, vec![file], BTreeMap::new(), None);
        let snapshot = Snapshot {
            db: db.clone(),
            world: Arc::new(World::default()),
        };
        let (started_tx, started_rx) = crossbeam_channel::bounded::<()>(1);
        let worker = std::thread::spawn(move || {
            // A "long" request: queries the database until the edit cancels it.
            let spin = move |snapshot: &Snapshot, _| -> RequestResult<serde_json::Value> {
                let _ = started_tx.send(());
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                while std::time::Instant::now() < deadline {
                    file_diagnostics(&snapshot.db, project, file);
                    std::thread::yield_now();
                }
                Ok(serde_json::Value::Null)
            };
            let response = answer(RequestId::from(7), &snapshot, serde_json::Value::Null, spin);
            drop(snapshot);
            response
        });
        started_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the request started");
        // Blocks until the request has been cancelled and its snapshot dropped.
        file.set_text(&mut db).to("tag b\n".into());
        let response = worker.join().expect("the worker ends");
        let error = response.response_result.expect_err("an error response");
        assert_eq!(error.code, ErrorCode::ContentModified as i32);
    }
}
