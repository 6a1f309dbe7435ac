//! The server's features through the protocol, over an in-memory connection: quick
//! fixes, rename into templates, navigation of local names, versions and closing.
//! (`tests/e2e/lsp.rs` drives the real binary over standard I/O.)

use lsp_server::{Connection, Message, Notification, Request, RequestId};
use serde_json::{Value, json};
use std::time::Duration;

struct Session {
    client: Connection,
    next_id: i32,
    server: Option<std::thread::JoinHandle<Result<cairn_lsp::Exit, cairn_lsp::ServerError>>>,
    inbox: Vec<Notification>,
}

impl Session {
    fn start() -> Session {
        let (server, client) = Connection::memory();
        let handle = std::thread::spawn(move || cairn_lsp::run(server));
        let mut session = Session {
            client,
            next_id: 0,
            server: Some(handle),
            inbox: Vec::new(),
        };
        session
            .request(
                "initialize",
                json!({ "processId": null, "capabilities": {} }),
            )
            .expect("initialized");
        session.notify("initialized", json!({}));
        session
    }

    fn notify(&self, method: &str, params: Value) {
        self.client
            .sender
            .send(Message::Notification(Notification::new(
                method.to_string(),
                params,
            )))
            .expect("the server is listening");
    }

    fn request(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = RequestId::from(self.next_id);
        self.client
            .sender
            .send(Message::Request(Request::new(
                id.clone(),
                method.to_string(),
                params,
            )))
            .expect("the server is listening");
        loop {
            match self.client.receiver.recv_timeout(Duration::from_secs(30)) {
                Ok(Message::Response(r)) if r.id == id => {
                    return r
                        .response_result
                        .map_err(|e| json!({ "code": e.code, "message": e.message }));
                }
                Ok(Message::Notification(n)) => self.inbox.push(n),
                Ok(_) => {}
                Err(e) => panic!("no answer to `{method}`: {e}"),
            }
        }
    }

    fn notification(&mut self, wanted: impl Fn(&Notification) -> bool) -> Notification {
        if let Some(i) = self.inbox.iter().position(&wanted) {
            return self.inbox.remove(i);
        }
        loop {
            match self.client.receiver.recv_timeout(Duration::from_secs(30)) {
                Ok(Message::Notification(n)) if wanted(&n) => return n,
                Ok(Message::Notification(n)) => self.inbox.push(n),
                Ok(_) => {}
                Err(e) => panic!("no such notification: {e}; got {:?}", self.inbox),
            }
        }
    }

    fn diagnostics(&mut self, uri: &str, version: i64) -> Vec<Value> {
        let n = self.notification(|n| {
            n.method == "textDocument/publishDiagnostics"
                && n.params["uri"] == uri
                && n.params["version"] == json!(version)
        });
        n.params["diagnostics"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn open(&mut self, uri: &str, text: &str) -> Vec<Value> {
        self.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": "cairn", "version": 1, "text": text } }),
        );
        self.diagnostics(uri, 1)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.request("shutdown", Value::Null);
        self.notify("exit", Value::Null);
        if let Some(handle) = self.server.take() {
            let result = handle.join().expect("the server thread ends");
            assert!(
                matches!(result, Ok(cairn_lsp::Exit::AfterShutdown)),
                "{result:?}"
            );
        }
    }
}

fn at(text: &str, needle: &str) -> Value {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` in the text"));
    let before = &text[..offset];
    let line = before.matches('\n').count();
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    json!({ "line": line, "character": before[start..].encode_utf16().count() })
}

const DIR: &str = "file:///nonexistent-cairn-test";

const SHOP: &str = "contact {\n  email email?\n  phone phone?\n  first_name string?\n}\n\
consent email_marketing for email\n\
consent sms_marketing for sms\n\
event order_completed { total money }\n\
segment named \"Kontakty z imieniem 🙂\" { contact.first_name is set }\n\
template hello email transactional {\n  subject \"Ciao {{ contact.first_name }} 🍝\"\n  html \"<p>{{ order.total }}</p>\"\n}\n\
template ping sms { text \"Hej {{ contact.first_name }}\" }\n";

const JOURNEY: &str = "journey thanks {\n  when order_completed as order\n  audience contact.first_name is set\n\n  \
first: send email hello\n  send sms ping\n  wait for order_completed within 2d {\n    exit\n  } timeout {\n    retry first at most 1 times\n  }\n}\n\n\
test \"ordini\" {\n  contact ana { email: \"ana@example.com\" }\n  at 2026-03-01T10:00Z ana sends order_completed { total: 5 EUR }\n  expect send email hello to ana\n}\n";

#[test]
fn quick_fix_adds_the_missing_consent_to_the_audience() {
    let mut s = Session::start();
    let shop = format!("{DIR}/shop.cairn");
    let journeys = format!("{DIR}/journeys.cairn");
    s.open(&shop, SHOP);
    let diagnostics = s.open(&journeys, JOURNEY);
    let w0004 = diagnostics
        .iter()
        .find(|d| d["code"] == "W0004")
        .unwrap_or_else(|| panic!("a W0004 in {diagnostics:#?}"));
    let actions = s
        .request(
            "textDocument/codeAction",
            json!({ "textDocument": { "uri": journeys }, "range": w0004["range"], "context": { "diagnostics": [] } }),
        )
        .expect("code actions");
    let action = actions
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|x| x["title"] == "Add `consented(sms_marketing)` to the audience")
        })
        .unwrap_or_else(|| panic!("the consent fix in {actions:#}"));
    let edit = &action["edit"]["changes"][&journeys][0];
    assert_eq!(
        edit["newText"],
        "contact.first_name is set and consented(sms_marketing)"
    );
    assert_eq!(
        edit["range"]["start"],
        at(JOURNEY, "contact.first_name is set")
    );
}

#[test]
fn renaming_a_contact_field_renames_it_in_templates() {
    let mut s = Session::start();
    let shop = format!("{DIR}/shop.cairn");
    s.open(&shop, SHOP);
    let edit = s
        .request(
            "textDocument/rename",
            json!({ "textDocument": { "uri": shop }, "position": at(SHOP, "first_name"), "newName": "given_name" }),
        )
        .expect("a rename");
    let edits = edit["changes"][&shop]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // The declaration, the segment, and the two templates' text.
    assert_eq!(edits.len(), 4, "{edit:#}");
    let ciao = SHOP.find("Ciao {{ contact.first_name").unwrap_or(0) + "Ciao {{ contact.".len();
    let expected = at(SHOP, &SHOP[ciao..]);
    assert!(
        edits.iter().any(|e| e["range"]["start"] == expected),
        "{edit:#}"
    );
    let clash = s.request(
        "textDocument/rename",
        json!({ "textDocument": { "uri": shop }, "position": at(SHOP, "first_name"), "newName": "phone" }),
    );
    assert!(clash.is_err(), "{clash:?}");
    let builtin = s.request(
        "textDocument/prepareRename",
        json!({ "textDocument": { "uri": shop }, "position": at(SHOP, "order_completed") }),
    );
    assert!(builtin.is_ok(), "a declared event renames: {builtin:?}");
}

#[test]
fn local_names_resolve_to_their_declarations() {
    let mut s = Session::start();
    let shop = format!("{DIR}/shop.cairn");
    let journeys = format!("{DIR}/journeys.cairn");
    s.open(&shop, SHOP);
    s.open(&journeys, JOURNEY);
    let definition = |s: &mut Session, needle: &str| {
        s.request(
            "textDocument/definition",
            json!({ "textDocument": { "uri": journeys }, "position": at(JOURNEY, needle) }),
        )
        .expect("a definition")
    };
    // `retry first` goes to the label.
    let retry = definition(&mut s, "first at most");
    assert_eq!(retry["range"]["start"], at(JOURNEY, "first:"));
    // The test contact `ana` in `expect ... to ana` goes to `contact ana`.
    let ana = definition(&mut s, "ana\n}");
    assert_eq!(ana["range"]["start"], at(JOURNEY, "ana {"));
    // A template sent from the journey goes to the other file.
    let hello = definition(&mut s, "hello\n  send sms");
    assert_eq!(hello["uri"], shop);
    // The binding's hover names its event; a segment's shows its description.
    let hover = s
        .request(
            "textDocument/hover",
            json!({ "textDocument": { "uri": journeys }, "position": at(JOURNEY, "order\n") }),
        )
        .expect("a hover");
    let text = hover["contents"]["value"].as_str().unwrap_or("");
    assert!(text.contains("order: event order_completed"), "{text}");
    let hover = s
        .request(
            "textDocument/hover",
            json!({ "textDocument": { "uri": shop }, "position": at(SHOP, "named") }),
        )
        .expect("a hover");
    let text = hover["contents"]["value"].as_str().unwrap_or("");
    assert!(text.contains("Kontakty z imieniem 🙂"), "{text}");
    assert!(text.contains("contact.first_name is set"), "{text}");
    let hover = s
        .request(
            "textDocument/hover",
            json!({ "textDocument": { "uri": journeys }, "position": at(JOURNEY, "ping") }),
        )
        .expect("a hover");
    let text = hover["contents"]["value"].as_str().unwrap_or("");
    assert!(text.contains("template ping sms"), "{text}");
    assert!(text.contains("Hej {{ contact.first_name }}"), "{text}");
    let references = s
        .request(
            "textDocument/references",
            json!({ "textDocument": { "uri": journeys }, "position": at(JOURNEY, "hello"), "context": { "includeDeclaration": false } }),
        )
        .expect("references");
    assert_eq!(
        references.as_array().map(Vec::len),
        Some(2),
        "{references:#}"
    );
}

#[test]
fn stale_versions_are_refused_and_closing_clears_unsaved_files() {
    let mut s = Session::start();
    let uri = "untitled:Untitled-1";
    s.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "cairn", "version": 5, "text": "tag a\n" } }),
    );
    assert!(s.diagnostics(uri, 5).is_empty());
    s.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": uri, "version": 4 }, "contentChanges": [{ "text": "journey {" }] }),
    );
    let log = s.notification(|n| n.method == "window/logMessage");
    assert!(
        log.params["message"]
            .as_str()
            .is_some_and(|m| m.contains("version 5 is already applied")),
        "{log:?}"
    );
    // The document is still `tag a`: an edit at version 6 applies to it.
    s.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": uri, "version": 6 }, "contentChanges": [{
            "range": { "start": { "line": 0, "character": 4 }, "end": { "line": 0, "character": 5 } },
            "text": "b c",
        }] }),
    );
    let diagnostics = s.diagnostics(uri, 6);
    assert_eq!(
        diagnostics.len(),
        1,
        "`tag b c` is a syntax error: {diagnostics:#?}"
    );
    s.notify(
        "textDocument/didClose",
        json!({ "textDocument": { "uri": uri } }),
    );
    let cleared =
        s.notification(|n| n.method == "textDocument/publishDiagnostics" && n.params["uri"] == uri);
    assert_eq!(cleared.params["diagnostics"], json!([]));
    let gone = s.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": uri }, "position": { "line": 0, "character": 0 } }),
    );
    assert!(gone.is_err(), "{gone:?}");
}

#[test]
fn secondary_labels_become_related_information() {
    let mut s = Session::start();
    let uri = format!("{DIR}/labels.cairn");
    let text = "event e\njourney j {\n  when e\n  audience true\n  a: wait 1d\n  a: wait 2d\n}\n";
    let diagnostics = s.open(&uri, text);
    let duplicate = diagnostics
        .iter()
        .find(|d| d["code"] == "E0122")
        .unwrap_or_else(|| panic!("a duplicate label in {diagnostics:#?}"));
    assert_eq!(
        duplicate["range"]["start"],
        json!({ "line": 5, "character": 2 })
    );
    let related = &duplicate["relatedInformation"][0];
    assert_eq!(related["message"], "first one");
    assert_eq!(related["location"]["uri"], uri);
    assert_eq!(
        related["location"]["range"]["start"],
        json!({ "line": 4, "character": 2 })
    );
}

#[test]
fn semantic_tokens_count_utf16_units() {
    let mut s = Session::start();
    let uri = format!("{DIR}/tokens.cairn");
    s.open(&uri, "tag a \"ż🛒\" // 🐢\ntag b\n");
    let tokens = s
        .request(
            "textDocument/semanticTokens/full",
            json!({ "textDocument": { "uri": uri } }),
        )
        .expect("tokens");
    let data: Vec<u64> = tokens["data"]
        .as_array()
        .map(|d| d.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    // (delta line, delta start, length, type, modifiers) per token: `tag`, `a`, the
    // string (5 units: quote, ż, two for 🛒, quote), the comment (5 units), `tag`, `b`.
    assert_eq!(
        data,
        vec![
            0, 0, 3, 0, 0, //
            0, 4, 1, 10, 1, //
            0, 2, 5, 2, 0, //
            0, 6, 5, 1, 0, //
            1, 0, 3, 0, 0, //
            0, 4, 1, 10, 1,
        ]
    );
}

#[test]
fn renaming_an_event_field_renames_it_where_templates_read_it() {
    let mut s = Session::start();
    let shop = format!("{DIR}/shop.cairn");
    let journeys = format!("{DIR}/journeys.cairn");
    s.open(&shop, SHOP);
    s.open(&journeys, JOURNEY);
    let edit = s
        .request(
            "textDocument/rename",
            json!({ "textDocument": { "uri": shop }, "position": at(SHOP, "total money"), "newName": "amount" }),
        )
        .expect("a rename");
    // In the shop: the declaration and `{{ order.total }}` of the template the journey
    // sends with `order` bound to the event; in the journeys: the test's payload key.
    let in_shop = edit["changes"][&shop]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let in_journeys = edit["changes"][&journeys]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!((in_shop.len(), in_journeys.len()), (2, 1), "{edit:#}");
    let template = SHOP.find("order.total").unwrap_or(0) + "order.".len();
    assert!(
        in_shop
            .iter()
            .any(|e| e["range"]["start"] == at(SHOP, &SHOP[template..])),
        "{edit:#}"
    );
}

#[test]
fn an_added_workspace_folder_is_loaded_and_checked() {
    let dir = std::env::temp_dir().join(format!("cairn-lsp-folder-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    std::fs::write(dir.join("a.cairn"), "segment s { unknown_thing }\n").expect("a file");
    let mut s = Session::start();
    let folder = format!("file://{}", dir.display());
    s.notify(
        "workspace/didChangeWorkspaceFolders",
        json!({ "event": { "added": [{ "uri": folder, "name": "scratch" }], "removed": [] } }),
    );
    let file = format!("{folder}/a.cairn");
    let published = s
        .notification(|n| n.method == "textDocument/publishDiagnostics" && n.params["uri"] == file);
    let _ = std::fs::remove_dir_all(&dir);
    let codes: Vec<&str> = published.params["diagnostics"]
        .as_array()
        .map(|d| d.iter().filter_map(|x| x["code"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(codes, vec!["W0006", "E0111"], "{published:?}");
    assert_eq!(
        published.params["version"],
        Value::Null,
        "not open in the editor"
    );
}

/// Every example project: no diagnostics, and well-formed tokens, folding ranges and
/// outlines for every file.
#[test]
fn examples_are_clean_and_their_tokens_well_formed() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let examples = examples.canonicalize().expect("the examples folder");
    let mut s = Session::start();
    let mut files = 0;
    for project in std::fs::read_dir(&examples).expect("examples").flatten() {
        let mut paths: Vec<_> = std::fs::read_dir(project.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "cairn"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).expect("an example file");
            let uri = format!("file://{}", path.display());
            let diagnostics = s.open(&uri, &text);
            assert!(diagnostics.is_empty(), "{uri}: {diagnostics:#?}");
            let lines: Vec<&str> = text.split('\n').collect();
            let tokens = s
                .request(
                    "textDocument/semanticTokens/full",
                    json!({ "textDocument": { "uri": uri } }),
                )
                .expect("tokens");
            let data: Vec<u64> = tokens["data"]
                .as_array()
                .map(|d| d.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            assert!(!data.is_empty() && data.len().is_multiple_of(5), "{uri}");
            let (mut line, mut start, mut end_of_last) = (0u64, 0u64, 0u64);
            for token in data.chunks(5) {
                if token[0] > 0 {
                    line += token[0];
                    start = token[1];
                    end_of_last = 0;
                } else {
                    start += token[1];
                }
                assert!(
                    start >= end_of_last,
                    "{uri}: overlapping tokens on line {line}"
                );
                end_of_last = start + token[2];
                let width = lines
                    .get(usize::try_from(line).unwrap_or(usize::MAX))
                    .map_or(0, |l| l.encode_utf16().count());
                assert!(
                    end_of_last <= u64::try_from(width).unwrap_or(0),
                    "{uri}: a token past the end of line {line}"
                );
                assert!(token[2] > 0 && token[3] < 14, "{uri}: {token:?}");
            }
            let folding = s
                .request(
                    "textDocument/foldingRange",
                    json!({ "textDocument": { "uri": uri } }),
                )
                .expect("folding");
            for range in folding.as_array().into_iter().flatten() {
                let (a, b) = (range["startLine"].as_u64(), range["endLine"].as_u64());
                assert!(
                    a < b && b.is_some_and(|b| b < lines.len() as u64),
                    "{uri}: {range}"
                );
            }
            let symbols = s
                .request(
                    "textDocument/documentSymbol",
                    json!({ "textDocument": { "uri": uri } }),
                )
                .expect("symbols");
            assert!(symbols.as_array().is_some_and(|s| !s.is_empty()), "{uri}");
            files += 1;
        }
    }
    assert!(files >= 40, "only {files} example files");
}
