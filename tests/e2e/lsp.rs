//! `cairn lsp` as an editor drives it: JSON-RPC over standard I/O, every request the
//! server offers, non-ASCII text to prove UTF-16 positions, bad input, and a real
//! editor (headless Neovim) attached to an example project.

use crate::support::{cairn, project, repo_root};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// A minimal LSP client over the server's standard I/O.
struct Client {
    child: Child,
    stdin: ChildStdin,
    messages: Receiver<Value>,
    /// Notifications read while waiting for something else.
    inbox: Vec<Value>,
    next_id: i64,
}

impl Client {
    fn start(root: &Path) -> Client {
        let mut child = cairn()
            .arg("lsp")
            .current_dir(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cairn lsp starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, messages) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut length = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(n) = line.strip_prefix("Content-Length: ") {
                        length = n.parse::<usize>().ok();
                    }
                }
                let mut body = vec![0; length.expect("a Content-Length header")];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let value: Value = serde_json::from_slice(&body).expect("JSON from the server");
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        let mut client = Client {
            child,
            stdin,
            messages,
            inbox: Vec::new(),
            next_id: 0,
        };
        let init = client.request(
            "initialize",
            json!({
                "processId": null,
                "rootUri": uri(root),
                "capabilities": {},
                "workspaceFolders": [{ "uri": uri(root), "name": "shop" }],
            }),
        );
        assert_eq!(init["result"]["serverInfo"]["name"], "cairn", "{init}");
        assert_eq!(
            init["result"]["capabilities"]["textDocumentSync"]["change"], 2,
            "incremental sync: {init}"
        );
        client.notify("initialized", json!({}));
        client
    }

    fn send(&mut self, message: &Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("write");
        self.stdin.flush().expect("flush");
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// Sends a request and waits for its response (the whole message).
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(m) if m["id"] == json!(id) && m.get("method").is_none() => return m,
                Ok(m) => self.inbox.push(m),
                Err(RecvTimeoutError::Timeout) => panic!("no answer to `{method}` in {WAIT:?}"),
                Err(RecvTimeoutError::Disconnected) => panic!("the server died during `{method}`"),
            }
        }
    }

    /// The first notification (already read or still to come) that `wanted` accepts.
    fn notification(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.inbox.iter().position(&wanted) {
            return self.inbox.remove(i);
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(m) if wanted(&m) => return m,
                Ok(m) => self.inbox.push(m),
                Err(_) => panic!("no {what} in {WAIT:?}; got {:#?}", self.inbox),
            }
        }
    }

    /// The diagnostics published for `uri` at `version` (any version when `None`).
    fn diagnostics(&mut self, uri: &str, version: Option<i64>) -> Vec<Value> {
        let message = self.notification("diagnostics", |m| {
            m["method"] == "textDocument/publishDiagnostics"
                && m["params"]["uri"] == uri
                && version.is_none_or(|v| m["params"]["version"] == json!(v))
        });
        message["params"]["diagnostics"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn shutdown(mut self) {
        let response = self.request("shutdown", Value::Null);
        assert_eq!(response["result"], Value::Null, "{response}");
        assert!(response.get("error").is_none(), "{response}");
        self.notify("exit", Value::Null);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "exit status {status}");
                return;
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn uri(path: &Path) -> String {
    let mut s = String::from("file://");
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'.' | b'_' | b'~') {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// The LSP position (UTF-16 columns) of the `n`th (0-based) occurrence of `needle`.
fn position_of(text: &str, needle: &str, n: usize) -> Value {
    let offset = text
        .match_indices(needle)
        .nth(n)
        .unwrap_or_else(|| panic!("`{needle}` #{n} in the text"))
        .0;
    let before = &text[..offset];
    let line = before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let character: usize = before[line_start..].encode_utf16().count();
    json!({ "line": line, "character": character })
}

const SCHEMA: &str = "// Sklep „Żółw” 🐢: a Polish-Italian shop\n\
contact {\n  email email?\n  first_name string?\n}\n\n\
consent email_marketing for email\n\n\
/// Ordini completati, zamówienia 🧾\n\
event order_completed \"Zamówienie złożone 🛒\" { order_id string, total money, note string }\n\n\
template grazie email {\n  subject \"Grazie, {{ contact.first_name | default('Łucja') }}! 🎉\"\n  html \"<p>Dziękujemy 🙏 <a href=\\\"{{ unsubscribe_url }}\\\">wypisz</a></p>\"\n}\n";

const JOURNEYS: &str = "journey thanks {\n  when order_completed as zamowienie where note != \"żółć 🛒\" and totl > 10 EUR\n  audience consented(email_marketing)\n  send email grazi\n}\n";

#[test]
fn lsp_protocol_session() {
    let dir = project(&[
        ("cairn.toml", b"[project]\ncurrency = \"EUR\"\n"),
        ("schema.cairn", SCHEMA.as_bytes()),
        ("journeys.cairn", JOURNEYS.as_bytes()),
    ]);
    let root = dir.path().canonicalize().expect("canonical path");
    let schema_uri = uri(&root.join("schema.cairn"));
    let journeys_uri = uri(&root.join("journeys.cairn"));
    let mut client = Client::start(&root);

    // The workspace is loaded at start: a file not open gets its diagnostics too. The
    // template is unused while the journey misspells it.
    let schema_diagnostics = client.diagnostics(&schema_uri, None);
    assert_eq!(schema_diagnostics.len(), 1, "{schema_diagnostics:#?}");
    assert_eq!(schema_diagnostics[0]["code"], "W0006");
    assert_eq!(schema_diagnostics[0]["tags"], json!([1]), "unnecessary");
    assert_eq!(
        schema_diagnostics[0]["range"]["start"],
        position_of(SCHEMA, "grazie", 0)
    );

    client.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": journeys_uri, "languageId": "cairn", "version": 1, "text": JOURNEYS } }),
    );
    let diagnostics = client.diagnostics(&journeys_uri, Some(1));
    let codes: Vec<&str> = diagnostics
        .iter()
        .filter_map(|d| d["code"].as_str())
        .collect();
    assert_eq!(codes, vec!["E0111", "E0103"], "{diagnostics:#?}");
    // `totl` comes after `żółć 🛒` on its line: its column counts UTF-16 units.
    assert_eq!(
        diagnostics[0]["range"]["start"],
        position_of(JOURNEYS, "totl", 0)
    );
    assert_eq!(diagnostics[0]["severity"], 1);
    assert!(
        diagnostics[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("did you mean `total`?")),
        "{diagnostics:#?}"
    );

    // Hover: the type of an event field, a template's preview, a doc comment.
    let hover = client.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": journeys_uri }, "position": position_of(JOURNEYS, "note", 0) }),
    );
    let text = hover["result"]["contents"]["value"].as_str().unwrap_or("");
    assert!(text.contains("order_completed.note: string"), "{hover}");
    let hover = client.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": journeys_uri }, "position": position_of(JOURNEYS, "order_completed", 0) }),
    );
    let text = hover["result"]["contents"]["value"].as_str().unwrap_or("");
    assert!(text.contains("Zamówienie złożone 🛒"), "{hover}");
    assert!(text.contains("Ordini completati, zamówienia 🧾"), "{hover}");

    // Definition across files, with the range in UTF-16 columns.
    let definition = client.request(
        "textDocument/definition",
        json!({ "textDocument": { "uri": journeys_uri }, "position": position_of(JOURNEYS, "email_marketing", 0) }),
    );
    assert_eq!(definition["result"]["uri"], schema_uri, "{definition}");
    assert_eq!(
        definition["result"]["range"]["start"],
        position_of(SCHEMA, "email_marketing", 0)
    );

    // References of the binding's event field, declaration included.
    let references = client.request(
        "textDocument/references",
        json!({ "textDocument": { "uri": schema_uri }, "position": position_of(SCHEMA, "note", 0), "context": { "includeDeclaration": true } }),
    );
    let found = references["result"].as_array().cloned().unwrap_or_default();
    assert_eq!(found.len(), 2, "{references}");

    // Highlights of a name in its file: the declaration (a write) of the contact field.
    let highlights = client.request(
        "textDocument/documentHighlight",
        json!({ "textDocument": { "uri": schema_uri }, "position": position_of(SCHEMA, "first_name", 0) }),
    );
    assert_eq!(highlights["result"][0]["kind"], 3, "{highlights}");
    assert_eq!(
        highlights["result"][0]["range"]["start"],
        position_of(SCHEMA, "first_name", 0)
    );

    // An incremental edit after the emoji: fix `totl` and `grazi`.
    let totl = position_of(JOURNEYS, "totl", 0);
    let grazi = position_of(JOURNEYS, "grazi", 0);
    let end_of = |p: &Value, len: u64| json!({ "line": p["line"], "character": p["character"].as_u64().unwrap_or(0) + len });
    client.notify(
        "textDocument/didChange",
        json!({
            "textDocument": { "uri": journeys_uri, "version": 2 },
            "contentChanges": [
                { "range": { "start": grazi, "end": end_of(&grazi, 5) }, "text": "grazie" },
                { "range": { "start": totl, "end": end_of(&totl, 4) }, "text": "total" },
            ],
        }),
    );
    let diagnostics = client.diagnostics(&journeys_uri, Some(2));
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    let fixed = JOURNEYS.replace("totl", "total").replace("grazi", "grazie");

    // Completion by context.
    let completion = client.request(
        "textDocument/completion",
        json!({ "textDocument": { "uri": journeys_uri }, "position": end_of(&position_of(&fixed, "send email ", 0), 11) }),
    );
    let labels: Vec<&str> = completion["result"]
        .as_array()
        .map(|items| items.iter().filter_map(|i| i["label"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(labels, vec!["grazie"], "{completion}");

    // Rename a template across files.
    let rename = client.request(
        "textDocument/rename",
        json!({ "textDocument": { "uri": journeys_uri }, "position": position_of(&fixed, "grazie", 0), "newName": "dziekujemy" }),
    );
    let changes = &rename["result"]["changes"];
    assert_eq!(
        changes[&journeys_uri].as_array().map(Vec::len),
        Some(1),
        "{rename}"
    );
    assert_eq!(
        changes[&schema_uri].as_array().map(Vec::len),
        Some(1),
        "{rename}"
    );
    let bad = client.request(
        "textDocument/rename",
        json!({ "textDocument": { "uri": journeys_uri }, "position": position_of(&fixed, "grazie", 0), "newName": "not a name" }),
    );
    assert!(bad.get("error").is_some(), "{bad}");
    let prepare = client.request(
        "textDocument/prepareRename",
        json!({ "textDocument": { "uri": journeys_uri }, "position": position_of(&fixed, "zamowienie", 0) }),
    );
    assert_eq!(prepare["result"]["placeholder"], "zamowienie", "{prepare}");

    // Symbols.
    let symbols = client.request(
        "textDocument/documentSymbol",
        json!({ "textDocument": { "uri": schema_uri } }),
    );
    let names: Vec<&str> = symbols["result"]
        .as_array()
        .map(|s| s.iter().filter_map(|x| x["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        vec!["contact", "email_marketing", "order_completed", "grazie"]
    );
    let workspace = client.request("workspace/symbol", json!({ "query": "thks" }));
    assert_eq!(workspace["result"][0]["name"], "thanks", "{workspace}");

    // Semantic tokens and folding ranges.
    let tokens = client.request(
        "textDocument/semanticTokens/full",
        json!({ "textDocument": { "uri": schema_uri } }),
    );
    let data = tokens["result"]["data"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(data.len() > 20 && data.len().is_multiple_of(5), "{tokens}");
    let folding = client.request(
        "textDocument/foldingRange",
        json!({ "textDocument": { "uri": schema_uri } }),
    );
    let ranges = folding["result"].as_array().cloned().unwrap_or_default();
    assert!(
        ranges
            .iter()
            .any(|r| r["startLine"] == 1 && r["endLine"] == 3),
        "the contact block folds: {folding}"
    );

    // Formatting: a badly laid out file gets an edit, a broken one gets none.
    client.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": journeys_uri, "version": 3 }, "contentChanges": [{ "text": fixed.replace("  send", "      send") }] }),
    );
    let format = client.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": journeys_uri }, "options": { "tabSize": 2, "insertSpaces": true } }),
    );
    assert_eq!(format["result"][0]["newText"], fixed, "{format}");
    client.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": journeys_uri, "version": 4 }, "contentChanges": [{ "text": "journey {{{ 🐢" }] }),
    );
    let format = client.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": journeys_uri }, "options": { "tabSize": 2, "insertSpaces": true } }),
    );
    assert_eq!(format["result"], json!([]), "{format}");

    // Code actions: "did you mean", a missing timeout, a missing consent.
    let broken = "journey thanks {\n  when order_completed\n  audience true\n  send email grazi\n  wait for order_completed within 1d {\n    exit\n  }\n}\n";
    client.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": journeys_uri, "version": 5 }, "contentChanges": [{ "text": broken }] }),
    );
    let diagnostics = client.diagnostics(&journeys_uri, Some(5));
    let codes: Vec<&str> = diagnostics
        .iter()
        .filter_map(|d| d["code"].as_str())
        .collect();
    assert!(
        codes.contains(&"E0103") && codes.contains(&"E0504"),
        "{codes:?}"
    );
    let whole =
        json!({ "start": { "line": 0, "character": 0 }, "end": { "line": 9, "character": 0 } });
    let actions = client.request(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": journeys_uri }, "range": whole, "context": { "diagnostics": [] } }),
    );
    let titles: Vec<&str> = actions["result"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["title"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        titles.contains(&"Replace `grazi` with `grazie`"),
        "{titles:?}"
    );
    assert!(titles.contains(&"Add a `timeout` branch"), "{titles:?}");

    // Bad input: unknown documents, out-of-range positions, unknown methods, stale
    // versions, garbage and huge documents. Every one gets an answer.
    let unknown = client.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": "file:///nowhere/x.cairn" }, "position": { "line": 0, "character": 0 } }),
    );
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    let far = client.request(
        "textDocument/definition",
        json!({ "textDocument": { "uri": journeys_uri }, "position": { "line": 9999, "character": 9999 } }),
    );
    assert!(far.get("error").is_none(), "{far}");
    let method = client.request("cairn/noSuchThing", json!({}));
    assert_eq!(method["error"]["code"], -32601, "{method}");
    let malformed = client.request("textDocument/hover", json!({ "nonsense": true }));
    assert_eq!(malformed["error"]["code"], -32602, "{malformed}");
    client.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": journeys_uri, "version": 2 }, "contentChanges": [{ "text": "garbage" }] }),
    );
    let garbage =
        "}}}) ((( \u{0} \"\"\" 🐢🐢🐢 journey journey when when 99999999999999999999d ;;;\n";
    client.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": journeys_uri, "version": 6 }, "contentChanges": [{ "text": garbage }] }),
    );
    let diagnostics = client.diagnostics(&journeys_uri, Some(6));
    assert!(!diagnostics.is_empty());
    for method in [
        "textDocument/semanticTokens/full",
        "textDocument/foldingRange",
        "textDocument/documentSymbol",
    ] {
        let response = client.request(method, json!({ "textDocument": { "uri": journeys_uri } }));
        assert!(response.get("error").is_none(), "{method}: {response}");
    }
    let completion = client.request(
        "textDocument/completion",
        json!({ "textDocument": { "uri": journeys_uri }, "position": { "line": 0, "character": 20 } }),
    );
    assert!(completion.get("error").is_none(), "{completion}");
    let huge: String = (0..20_000)
        .map(|i| format!("tag t{i} \"Żółw {i} 🐢\"\n"))
        .collect();
    let started = Instant::now();
    client.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": journeys_uri, "version": 7 }, "contentChanges": [{ "text": huge }] }),
    );
    let diagnostics = client.diagnostics(&journeys_uri, Some(7));
    assert!(diagnostics.is_empty(), "{:?}", diagnostics.first());
    assert!(started.elapsed() < WAIT);
    let hover = client.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": journeys_uri }, "position": { "line": 19_999, "character": 5 } }),
    );
    assert!(
        hover["result"]["contents"]["value"]
            .as_str()
            .is_some_and(|t| t.contains("tag t19999")),
        "{hover}"
    );
    client.shutdown();
}

#[test]
fn lsp_requests_before_initialize_are_refused() {
    let dir = project(&[("a.cairn", b"tag a\n")]);
    let mut child = cairn()
        .arg("lsp")
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cairn lsp starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": "textDocument/hover", "params": {} })
        .to_string();
    write!(stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("write");
    let exit = json!({ "jsonrpc": "2.0", "method": "exit" }).to_string();
    write!(stdin, "Content-Length: {}\r\n\r\n{exit}", exit.len()).expect("write");
    drop(stdin);
    let output = child.wait_with_output().expect("the server exits");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("-32002"), "{stdout}");
    // `exit` without `shutdown`: exit code 1, as the protocol asks.
    assert_eq!(output.status.code(), Some(1));
}

/// Headless Neovim attaches `cairn lsp` to an example file with a mistake, and reads
/// back the diagnostic and a go-to-definition result.
#[test]
fn lsp_in_neovim() {
    let nvim = std::process::Command::new("nvim").arg("--version").output();
    if nvim.as_ref().map_or(true, |o| !o.status.success()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "nvim is missing, and CI must run the editor test: `apt-get install -y neovim`"
        );
        eprintln!("nvim is not installed: the Neovim end-to-end test did not run");
        return;
    }
    let example = repo_root().join("examples/car-service");
    let dir = tempfile::tempdir().expect("a temporary directory");
    for entry in walk(&example) {
        let relative = entry.strip_prefix(&example).expect("inside the example");
        let target = dir.path().join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::copy(&entry, &target).expect("copy the example");
    }
    let root = dir.path().canonicalize().expect("canonical path");
    let journeys = root.join("journeys.cairn");
    let original = std::fs::read_to_string(&journeys).expect("the example's journeys");
    // The mistake: a misspelt template name.
    let broken = original.replacen("send email tyre_discount", "send email tyre_discont", 1);
    assert_ne!(broken, original);
    std::fs::write(&journeys, &broken).expect("write the mistake");
    let out = root.join("nvim-result.txt");
    let script = root.join("script.lua");
    std::fs::write(&script, NVIM_SCRIPT).expect("write the script");
    let status = std::process::Command::new("nvim")
        .args(["--headless", "-u", "NONE", "-i", "NONE", "-S"])
        .arg(&script)
        .arg(&journeys)
        .current_dir(&root)
        .env("CAIRN_BIN", env!("CARGO_BIN_EXE_cairn"))
        .env("CAIRN_ROOT", &root)
        .env("CAIRN_OUT", &out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("nvim runs");
    let result = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        status.success(),
        "nvim failed ({status}); it wrote: {result}"
    );
    assert!(
        result.contains("diagnostic E0103 unknown template `tyre_discont`"),
        "{result}"
    );
    assert!(result.contains("did you mean `tyre_discount`?"), "{result}");
    // `remind` in `retry remind` goes to the label on the `send email service_reminder`
    // line (both 0-based, as Neovim reports them).
    let label_line = broken
        .lines()
        .position(|l| l.trim_start().starts_with("remind:"))
        .expect("the label");
    assert!(
        result.contains(&format!("definition journeys.cairn:{label_line}:2")),
        "{result}"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the example").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Neovim 0.7 (Debian's): `vim.lsp.start_client`, then poll for the diagnostic and ask
/// for a definition synchronously; every result goes to `$CAIRN_OUT`.
const NVIM_SCRIPT: &str = r#"
local out = assert(io.open(os.getenv('CAIRN_OUT'), 'w'))
local function say(line) out:write(line, '\n'); out:flush() end
local function finish(code) out:close(); vim.cmd(code == 0 and 'qall!' or 'cquit!') end

local ok, err = pcall(function()
  local root = os.getenv('CAIRN_ROOT')
  local client_id = vim.lsp.start_client({
    name = 'cairn',
    cmd = { os.getenv('CAIRN_BIN'), 'lsp' },
    root_dir = root,
    workspace_folders = { { uri = vim.uri_from_fname(root), name = 'example' } },
  })
  assert(client_id, 'the client started')
  local buf = vim.api.nvim_get_current_buf()
  vim.bo[buf].filetype = 'cairn'
  vim.lsp.buf_attach_client(buf, client_id)

  local found = vim.wait(20000, function()
    for _, d in ipairs(vim.diagnostic.get(buf)) do
      if d.code == 'E0103' then return true end
    end
    return false
  end, 50)
  assert(found, 'no E0103 diagnostic arrived')
  for _, d in ipairs(vim.diagnostic.get(buf)) do
    say(string.format('diagnostic %s %s', d.code, d.message))
  end

  local line
  for i, text in ipairs(vim.api.nvim_buf_get_lines(buf, 0, -1, false)) do
    if text:find('retry remind', 1, true) then line = i - 1 end
  end
  assert(line, 'the retry line')
  local col = vim.api.nvim_buf_get_lines(buf, line, line + 1, false)[1]:find('remind', 1, true)
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
    position = { line = line, character = col },
  }
  local responses = vim.lsp.buf_request_sync(buf, 'textDocument/definition', params, 20000)
  assert(responses, 'no definition response')
  for _, response in pairs(responses) do
    assert(not response.err, vim.inspect(response.err))
    local result = response.result
    if result and result.uri == nil then result = result[1] end
    assert(result, 'an empty definition')
    local file = vim.fn.fnamemodify(vim.uri_to_fname(result.uri), ':t')
    say(string.format('definition %s:%d:%d', file, result.range.start.line, result.range.start.character))
  end
end)
if not ok then say('error: ' .. tostring(err)); finish(1) else finish(0) end
"#;
