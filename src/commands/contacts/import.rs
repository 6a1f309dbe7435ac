//! `cairn contacts import FILE`: contacts with their traits and consents, from JSON
//! lines or CSV, into a running daemon through its admin API.
//!
//! The file is read twice, a chunk of [`CHUNK`] contacts per request: first every
//! chunk is checked by the daemon against the deployed plan (a dry run), then, when
//! no row is bad (or with `--skip-invalid`), every chunk is imported, each in one
//! transaction. The file is never held in memory whole.

use super::connect;
use crate::Outcome;
use crate::cli::{ImportArgs, ImportFormat};
use crate::commands::CommandResult;
use crate::render;
use cairn_runtime::admin::ImportReport;
use cairn_runtime::client::AdminClient;
use cairn_runtime::store::import::{ImportCounts, ImportError};
use serde_json::{Map, Value as Json, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::Path;

/// Contacts per request (and per transaction).
const CHUNK: usize = 1_000;
/// A chunk is sent early when its rows reach this many bytes of JSON.
const CHUNK_BYTES: usize = 1_000_000;
/// Bad rows printed before the rest are only counted.
const SHOWN_ERRORS: usize = 100;

pub fn run(args: &ImportArgs) -> CommandResult {
    let format =
        args.format
            .unwrap_or_else(|| match args.file.extension().and_then(|e| e.to_str()) {
                Some(ext) if ext.eq_ignore_ascii_case("csv") => ImportFormat::Csv,
                _ => ImportFormat::Jsonl,
            });
    let (_, client) = connect(
        "cairn contacts import",
        args.daemon.server.as_deref(),
        args.daemon.token.as_deref(),
    )?;
    let file = args.file.display().to_string();

    let checked = pass(&client, &args.file, format, Pass::Check, args.skip_invalid)?;
    show_errors(&file, &checked.errors);
    let bad = checked.counts.rejected;
    if bad > 0 && !args.skip_invalid {
        eprintln!(
            "{bad} of {} rows of `{file}` do not fit the deployed plan; nothing was imported \
             (pass `--skip-invalid` to import the others)",
            checked.rows
        );
        return Ok(Outcome::Failed);
    }
    if args.dry_run {
        render::out(&format!(
            "checked {} rows of `{file}`: {} (nothing was imported: --dry-run)\n",
            checked.rows,
            summary(&checked.counts, true)
        ));
        return Ok(Outcome::Ok);
    }

    let imported = pass(&client, &args.file, format, Pass::Import, args.skip_invalid)?;
    // Rows refused on the second pass only: the plan or the contacts changed between.
    let late: Vec<ImportError> = imported
        .errors
        .iter()
        .filter(|e| !checked.errors.contains(e))
        .cloned()
        .collect();
    show_errors(&file, &late);
    if let Some((first, last)) = imported.refused {
        eprintln!(
            "lines {first} to {last} of `{file}` were refused; the rows before them are \
             imported ({}): fix the file and import it again (rows already imported are \
             unchanged)",
            summary(&imported.counts, false)
        );
        return Ok(Outcome::Failed);
    }
    render::out(&format!(
        "imported {} rows of `{file}`: {}\n",
        imported.rows,
        summary(&imported.counts, false)
    ));
    Ok(Outcome::Ok)
}

fn summary(counts: &ImportCounts, would: bool) -> String {
    let (created, updated) = if would {
        ("would create", "would update")
    } else {
        ("created", "updated")
    };
    format!(
        "{created} {}, {updated} {}, {} unchanged, {} rejected",
        counts.created, counts.updated, counts.unchanged, counts.rejected
    )
}

fn show_errors(file: &str, errors: &[ImportError]) {
    for e in errors.iter().take(SHOWN_ERRORS) {
        eprintln!("{file}: line {}: {}", e.line, e.message);
    }
    if errors.len() > SHOWN_ERRORS {
        eprintln!(
            "{file}: … and {} more problems",
            errors.len() - SHOWN_ERRORS
        );
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Check,
    Import,
}

#[derive(Default)]
struct Passed {
    counts: ImportCounts,
    errors: Vec<ImportError>,
    rows: u64,
    /// The lines of the chunk the daemon refused, which ended the pass.
    refused: Option<(u64, u64)>,
}

/// Reads the whole file and sends it a chunk at a time.
fn pass(
    client: &AdminClient,
    path: &Path,
    format: ImportFormat,
    kind: Pass,
    skip_invalid: bool,
) -> miette::Result<Passed> {
    let file = std::fs::File::open(path)
        .map_err(|e| miette::miette!("cannot read `{}`: {e}", path.display()))?;
    let bar = progress_bar(
        file.metadata().map(|m| m.len()).unwrap_or(0),
        match kind {
            Pass::Check => "checking",
            Pass::Import => "importing",
        },
    );
    let reader: Box<dyn Read> = match &bar {
        Some(bar) => Box::new(bar.wrap_read(file)),
        None => Box::new(file),
    };
    let mut rows = Rows::new(BufReader::new(reader), format)
        .map_err(|e| miette::miette!("`{}`: {e}", path.display()))?;
    let mut passed = Passed::default();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut chunk: Vec<Json> = Vec::with_capacity(CHUNK);
    let mut bytes = 0;
    let send = |chunk: &mut Vec<Json>, passed: &mut Passed| -> miette::Result<bool> {
        if chunk.is_empty() {
            return Ok(true);
        }
        let report: ImportReport = client
            .import_contacts(chunk, kind == Pass::Check, skip_invalid)
            .map_err(|e| miette::miette!("{e}"))?;
        passed.counts.add(&report.counts);
        passed.errors.extend(report.errors);
        if kind == Pass::Import && !report.applied {
            let line = |row: Option<&Json>| row.and_then(|r| r["line"].as_u64()).unwrap_or(0);
            passed.refused = Some((line(chunk.first()), line(chunk.last())));
            return Ok(false);
        }
        chunk.clear();
        Ok(true)
    };
    while let Some(row) = rows.next_row() {
        passed.rows += 1;
        let row = row.and_then(|(line, row)| {
            let id = row.get("id").map(|id| match id {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            });
            if let Some(id) = id {
                if let Some(first) = seen.get(&id) {
                    return Err(ImportError {
                        line,
                        message: format!("contact `{id}` is already on line {first}"),
                    });
                }
                seen.insert(id, line);
            }
            Ok(row)
        });
        match row {
            Ok(row) => {
                bytes += row.to_string().len();
                chunk.push(row);
            }
            Err(e) => {
                passed.counts.rejected += 1;
                passed.errors.push(e);
            }
        }
        if (chunk.len() >= CHUNK || bytes >= CHUNK_BYTES) && !send(&mut chunk, &mut passed)? {
            return Ok(finish(passed, bar));
        }
        if chunk.is_empty() {
            bytes = 0;
        }
    }
    send(&mut chunk, &mut passed)?;
    Ok(finish(passed, bar))
}

fn finish(mut passed: Passed, bar: Option<indicatif::ProgressBar>) -> Passed {
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    passed.errors.sort_by_key(|e| e.line);
    passed
}

/// A progress line on stderr, for files large enough to wait for, when someone
/// watches.
fn progress_bar(total: u64, label: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() || total < 1_000_000 {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(&format!(
        "{label} {{bar:30}} {{bytes}}/{{total_bytes}} ({{eta}} left)"
    ))
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    Some(bar)
}

/// What a CSV column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    Id,
    Trait(String),
    /// `consent:NAME`: `true` or `false` (`yes`/`no`, `1`/`0`).
    Consent(String),
    /// `consent:NAME:at`
    ConsentAt(String),
    /// `consent:NAME:source`
    ConsentSource(String),
}

impl Column {
    fn parse(name: &str) -> Result<Column, String> {
        let name = name.trim();
        if name == "id" {
            return Ok(Column::Id);
        }
        let Some(rest) = name.strip_prefix("consent:") else {
            return if name.is_empty() {
                Err("a column has no name".into())
            } else {
                Ok(Column::Trait(name.to_string()))
            };
        };
        let column = match rest.split_once(':') {
            None => Column::Consent(rest.to_string()),
            Some((consent, "at")) => Column::ConsentAt(consent.to_string()),
            Some((consent, "source")) => Column::ConsentSource(consent.to_string()),
            Some(_) => {
                return Err(format!(
                    "column `{name}`: expected `consent:NAME`, `consent:NAME:at` or `consent:NAME:source`"
                ));
            }
        };
        match &column {
            Column::Consent(c) | Column::ConsentAt(c) | Column::ConsentSource(c)
                if c.is_empty() =>
            {
                Err(format!("column `{name}` names no consent"))
            }
            _ => Ok(column),
        }
    }
}

/// The rows of an import file, each as the JSON row the daemon reads, with its line.
struct Rows<R> {
    reader: R,
    format: ImportFormat,
    /// CSV only.
    columns: Vec<Column>,
    /// The line the reader is at (1-based, of the next line to read).
    line: u64,
}

type RowResult = Result<(u64, Json), ImportError>;

impl<R: BufRead> Rows<R> {
    fn new(reader: R, format: ImportFormat) -> Result<Rows<R>, String> {
        let mut rows = Rows {
            reader,
            format,
            columns: Vec::new(),
            line: 1,
        };
        if format == ImportFormat::Csv {
            let header = match rows.record() {
                Ok(Some((_, header))) => header,
                Ok(None) => return Err("the file is empty: a CSV file needs a header row".into()),
                Err(e) => return Err(e.message),
            };
            for (i, name) in header.iter().enumerate() {
                let name = if i == 0 {
                    name.trim_start_matches('\u{feff}')
                } else {
                    name
                };
                let column = Column::parse(name).map_err(|e| format!("line 1: {e}"))?;
                if rows.columns.contains(&column) {
                    return Err(format!("line 1: column `{}` appears twice", name.trim()));
                }
                rows.columns.push(column);
            }
            if !rows.columns.contains(&Column::Id) {
                return Err("line 1: the header has no `id` column".into());
            }
        }
        Ok(rows)
    }

    fn next_row(&mut self) -> Option<RowResult> {
        match self.format {
            ImportFormat::Jsonl => self.json_line(),
            ImportFormat::Csv => match self.record() {
                Ok(None) => None,
                Ok(Some((line, cells))) => Some(self.csv_row(line, cells)),
                Err(e) => Some(Err(e)),
            },
        }
    }

    fn read_line(&mut self, text: &mut String) -> Result<usize, ImportError> {
        let line = self.line;
        let n = self.reader.read_line(text).map_err(|e| ImportError {
            line,
            message: format!("cannot read the file: {e}"),
        })?;
        self.line += 1;
        Ok(n)
    }

    fn json_line(&mut self) -> Option<RowResult> {
        loop {
            let line = self.line;
            let mut text = String::new();
            match self.read_line(&mut text) {
                Ok(0) => return None,
                Err(e) => return Some(Err(e)),
                Ok(_) if text.trim().is_empty() => continue,
                Ok(_) => {}
            }
            let row = match serde_json::from_str::<Json>(&text) {
                Ok(Json::Object(mut row)) => {
                    row.insert("line".into(), json!(line));
                    Ok((line, Json::Object(row)))
                }
                Ok(_) => Err(ImportError {
                    line,
                    message: "a row must be a JSON object: `{\"id\", \"traits\", \"consents\"}`"
                        .into(),
                }),
                Err(e) => Err(ImportError {
                    line,
                    message: format!("not JSON: {e}"),
                }),
            };
            return Some(row);
        }
    }

    /// One CSV record (RFC 4180: quoted cells may hold commas, quotes doubled, and
    /// line breaks), with the line it starts on; `None` at the end. Blank lines are
    /// skipped.
    fn record(&mut self) -> Result<Option<(u64, Vec<String>)>, ImportError> {
        loop {
            let start = self.line;
            let mut text = String::new();
            if self.read_line(&mut text)? == 0 {
                return Ok(None);
            }
            if text.trim().is_empty() {
                continue;
            }
            let mut cells = Vec::new();
            let mut cell = String::new();
            let mut quoted = false;
            let mut chars: Vec<char> = text.chars().collect();
            let mut i = 0;
            loop {
                if i == chars.len() {
                    if !quoted {
                        break;
                    }
                    // A line break inside quotes: the cell goes on on the next line.
                    let mut more = String::new();
                    if self.read_line(&mut more)? == 0 {
                        return Err(ImportError {
                            line: start,
                            message: "a quoted cell is never closed".into(),
                        });
                    }
                    chars = more.chars().collect();
                    i = 0;
                    continue;
                }
                let c = chars[i];
                i += 1;
                match (quoted, c) {
                    (true, '"') if chars.get(i) == Some(&'"') => {
                        cell.push('"');
                        i += 1;
                    }
                    (true, '"') => quoted = false,
                    (true, c) => cell.push(c),
                    (false, '"') if cell.is_empty() => quoted = true,
                    (false, ',') => cells.push(std::mem::take(&mut cell)),
                    (false, '\r' | '\n') => {}
                    (false, c) => cell.push(c),
                }
            }
            cells.push(cell);
            return Ok(Some((start, cells)));
        }
    }

    fn csv_row(&self, line: u64, cells: Vec<String>) -> RowResult {
        let located = |message: String| ImportError { line, message };
        if cells.len() != self.columns.len() {
            return Err(located(format!(
                "{} cells, but the header has {} columns",
                cells.len(),
                self.columns.len()
            )));
        }
        let mut row = Map::new();
        row.insert("line".into(), json!(line));
        let mut traits = Map::new();
        let mut consents: Map<String, Json> = Map::new();
        let consent = |consents: &mut Map<String, Json>, name: &str| -> Map<String, Json> {
            match consents.remove(name) {
                Some(Json::Object(c)) => c,
                _ => Map::new(),
            }
        };
        for (column, cell) in self.columns.iter().zip(cells) {
            if cell.is_empty() {
                continue;
            }
            match column {
                Column::Id => {
                    row.insert("id".into(), Json::String(cell));
                }
                Column::Trait(name) => {
                    // Lists and records are written as JSON in their cell.
                    let value = match cell.trim_start().chars().next() {
                        Some('[' | '{') => serde_json::from_str(&cell)
                            .map_err(|e| located(format!("column `{name}` is not JSON: {e}")))?,
                        _ => Json::String(cell),
                    };
                    traits.insert(name.clone(), value);
                }
                Column::Consent(name) => {
                    let granted = match cell.trim().to_ascii_lowercase().as_str() {
                        "true" | "yes" | "1" => true,
                        "false" | "no" | "0" => false,
                        _ => {
                            return Err(located(format!(
                                "column `consent:{name}` is `{cell}`: expected `true` or `false`"
                            )));
                        }
                    };
                    let mut c = consent(&mut consents, name);
                    c.insert("granted".into(), json!(granted));
                    consents.insert(name.clone(), Json::Object(c));
                }
                Column::ConsentAt(name) | Column::ConsentSource(name) => {
                    let key = if matches!(column, Column::ConsentAt(_)) {
                        "at"
                    } else {
                        "source"
                    };
                    let mut c = consent(&mut consents, name);
                    c.insert(key.into(), Json::String(cell));
                    consents.insert(name.clone(), Json::Object(c));
                }
            }
        }
        for (name, c) in &consents {
            if c.get("granted").is_none() {
                return Err(located(format!(
                    "consent `{name}` has a time or a source but no `consent:{name}` value"
                )));
            }
        }
        row.insert("traits".into(), Json::Object(traits));
        row.insert("consents".into(), Json::Object(consents));
        Ok((line, Json::Object(row)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str, format: ImportFormat) -> Vec<RowResult> {
        let mut rows = Rows::new(text.as_bytes(), format).expect("header");
        std::iter::from_fn(|| rows.next_row()).collect()
    }

    #[test]
    fn csv_rows_become_traits_and_consents_with_their_lines() {
        let text = "id,email,consent:news,consent:news:at,consent:news:source,tags\n\
                    ana,ana@example.com,true,2026-01-05T10:00:00Z,shop,\"[\"\"a\"\",\"\"b\"\"]\"\n\
                    \n\
                    ben,\"ben@example.com\",,,,\n\
                    cy,\"a\nb\",no,,,\n\
                    dee,x,maybe,,,\n\
                    eve,,,2026-01-05T10:00:00Z,,\n";
        let read = rows(text, ImportFormat::Csv);
        let ok = |i: usize| read[i].clone().expect("a row");
        assert_eq!(
            ok(0),
            (
                2,
                json!({"line": 2, "id": "ana", "traits": {"email": "ana@example.com", "tags": ["a", "b"]},
                       "consents": {"news": {"granted": true, "at": "2026-01-05T10:00:00Z", "source": "shop"}}})
            )
        );
        assert_eq!(ok(1).0, 4, "blank lines are skipped but counted");
        assert_eq!(ok(1).1["consents"], json!({}));
        assert_eq!(ok(2).1["traits"]["email"], json!("a\nb"));
        assert_eq!(ok(2).1["consents"]["news"], json!({"granted": false}));
        let dee = read[3].clone().expect_err("a bad consent");
        assert_eq!(dee.line, 7);
        assert!(
            dee.message.contains("`consent:news` is `maybe`"),
            "{}",
            dee.message
        );
        assert!(read[4].is_err(), "a time without a value");
    }

    #[test]
    fn a_bad_header_or_line_is_located() {
        assert!(Rows::new("email\n".as_bytes(), ImportFormat::Csv).is_err());
        assert!(Rows::new("id,consent:\n".as_bytes(), ImportFormat::Csv).is_err());
        let read = rows("{\"id\": \"ana\"}\nnot json\n[1]\n", ImportFormat::Jsonl);
        assert_eq!(
            read[0].clone().expect("ana").1,
            json!({"id": "ana", "line": 1})
        );
        assert_eq!(read[1].clone().expect_err("bad").line, 2);
        assert_eq!(read[2].clone().expect_err("bad").line, 3);
    }
}
