//! A scripted editing session against the language server on a generated 10k-line
//! workspace: keystrokes into a journey (with the syntax errors half-typed text has),
//! then completion. Prints p50/p95 of "keystroke to diagnostics published" and of
//! completion, and the peak memory of the process.
//!
//! Run in release: `cargo bench -p cairn-lsp --bench session` (`-- LINES SEED` to change
//! the workspace). Not a timed test: CI never runs it.

use lsp_server::{Connection, Message, Notification, Request, RequestId};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const KEYSTROKES: &str = "\n  wait 2d\n  tag add x";

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let lines: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let dir = std::env::temp_dir().join(format!("cairn-lsp-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {e}", dir.display());
        return;
    }
    let files = cairn_grammar::synth::project(lines, seed);
    let total_lines: usize = files.iter().map(|(_, t)| t.lines().count()).sum();
    for (name, text) in &files {
        if let Err(e) = std::fs::write(dir.join(name), text) {
            eprintln!("cannot write {name}: {e}");
            return;
        }
    }
    println!(
        "workspace: {} files, {total_lines} lines (synth::project({lines}, {seed}))",
        files.len()
    );

    let (server, client) = Connection::memory();
    let server_thread = std::thread::spawn(move || cairn_lsp::run(server));
    let mut session = Session { client, next_id: 0 };
    let root_uri = format!("file://{}", dir.display());
    let started = Instant::now();
    session.request(
        "initialize",
        json!({ "processId": null, "rootUri": root_uri, "capabilities": {} }),
    );
    session.notify("initialized", json!({}));
    let mut published = 0;
    while published < files.len() {
        if session
            .next_notification("textDocument/publishDiagnostics")
            .is_some()
        {
            published += 1;
        } else {
            break;
        }
    }
    println!(
        "initial load and check of every file: {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );

    // The biggest journeys file, at the end of its first `send email` line.
    let Some((name, text)) = files
        .iter()
        .filter(|(n, t)| n.starts_with("journeys") && t.contains("send email "))
        .max_by_key(|(_, t)| t.len())
    else {
        eprintln!("the generated workspace has no journeys");
        return;
    };
    let uri = format!("file://{}", dir.join(name).display());
    let mut text = text.clone();
    session.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "cairn", "version": 1, "text": text } }),
    );
    session.diagnostics_for(&uri, 1);
    let send_at = text.find("send email ").unwrap_or(0) + "send email ".len();
    let line_end = text[send_at..]
        .find('\n')
        .map_or(text.len(), |i| send_at + i);
    let completion_position = position(&text, send_at);

    let mut diagnostics = Vec::new();
    let mut completion = Vec::new();
    let mut version = 1;
    let mut cursor = line_end;
    // Type the keystrokes one character at a time, then delete them again, three times.
    for _round in 0..3 {
        let mut typed = Vec::new();
        for c in KEYSTROKES.chars() {
            let at = position(&text, cursor);
            text.insert(cursor, c);
            typed.push(cursor);
            cursor += c.len_utf8();
            version += 1;
            diagnostics.push(session.keystroke(&uri, version, at.clone(), at, &c.to_string()));
            completion.push(session.completion(&uri, completion_position.clone()));
        }
        while let Some(at) = typed.pop() {
            let start = position(&text, at);
            let end = position(&text, cursor);
            text.replace_range(at..cursor, "");
            cursor = at;
            version += 1;
            diagnostics.push(session.keystroke(&uri, version, start, end, ""));
            completion.push(session.completion(&uri, completion_position.clone()));
        }
    }
    report("diagnostics after a keystroke", &mut diagnostics);
    report("completion", &mut completion);
    println!("peak memory (VmHWM): {}", peak_memory());

    session.request("shutdown", Value::Null);
    session.notify("exit", Value::Null);
    drop(session);
    let _ = server_thread.join();
    let _ = std::fs::remove_dir_all(&dir);
}

struct Session {
    client: Connection,
    next_id: i32,
}

impl Session {
    fn notify(&self, method: &str, params: Value) {
        let _ = self
            .client
            .sender
            .send(Message::Notification(Notification::new(
                method.to_string(),
                params,
            )));
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = RequestId::from(self.next_id);
        let _ = self.client.sender.send(Message::Request(Request::new(
            id.clone(),
            method.to_string(),
            params,
        )));
        loop {
            match self.client.receiver.recv_timeout(Duration::from_secs(60)) {
                Ok(Message::Response(r)) if r.id == id => {
                    return r.response_result.unwrap_or(Value::Null);
                }
                Ok(_) => {}
                Err(_) => return Value::Null,
            }
        }
    }

    fn next_notification(&self, method: &str) -> Option<Value> {
        loop {
            match self.client.receiver.recv_timeout(Duration::from_secs(60)) {
                Ok(Message::Notification(n)) if n.method == method => return Some(n.params),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    fn diagnostics_for(&self, uri: &str, version: i32) {
        while let Some(params) = self.next_notification("textDocument/publishDiagnostics") {
            if params["uri"] == uri && params["version"] == json!(version) {
                return;
            }
        }
    }

    /// Sends one edit; the time until its diagnostics are published.
    fn keystroke(&self, uri: &str, version: i32, start: Value, end: Value, text: &str) -> Duration {
        let started = Instant::now();
        self.notify(
            "textDocument/didChange",
            json!({
                "textDocument": { "uri": uri, "version": version },
                "contentChanges": [{ "range": { "start": start, "end": end }, "text": text }],
            }),
        );
        self.diagnostics_for(uri, version);
        started.elapsed()
    }

    fn completion(&mut self, uri: &str, at: Value) -> Duration {
        let started = Instant::now();
        let result = self.request(
            "textDocument/completion",
            json!({ "textDocument": { "uri": uri }, "position": at }),
        );
        let elapsed = started.elapsed();
        if result.as_array().is_none_or(Vec::is_empty) {
            eprintln!("warning: an empty completion: {result}");
        }
        elapsed
    }
}

/// The LSP position of a byte offset (UTF-16 columns).
fn position(text: &str, offset: usize) -> Value {
    let before = &text[..offset];
    let line = before.matches('\n').count();
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    json!({ "line": line, "character": before[start..].encode_utf16().count() })
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{what}: n={} p50={:.2} ms p95={:.2} ms max={:.2} ms",
        samples.len(),
        at(0.5),
        at(0.95),
        at(1.0)
    );
}

fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}
