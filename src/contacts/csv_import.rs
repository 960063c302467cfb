//! Streaming CSV import of contacts: the file is fed in chunks as it arrives (a push parser, so
//! memory stays bounded by the longest row, not the file), a UTF-8 BOM and CRLF line ends are
//! accepted, the header maps columns (`phone`, `name`, `timezone`; every other column becomes a
//! variable), numbers are normalised to E.164, duplicates are merged, and every data row ends up
//! either accepted or rejected with its row number and reason.

use std::collections::HashSet;

use csv_core::{ReadRecordResult, Reader};
use serde_json::{Map, Value};

use super::phone;

/// A contact read from a row.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportedContact {
    /// 1 for the first data row (the header is row 0).
    pub row: usize,
    pub phone: String,
    pub name: Option<String>,
    /// The row's own IANA timezone, if it gives one.
    pub timezone: Option<String>,
    pub variables: Map<String, Value>,
}

/// What became of one data row.
#[derive(Clone, Debug, PartialEq)]
pub enum RowOutcome {
    Accepted(ImportedContact),
    /// The same number as an earlier row of the file: the caller merges it into that contact.
    Merged(ImportedContact),
    Rejected {
        row: usize,
        reason: String,
    },
}

/// Which column holds what.
#[derive(Debug, Default)]
struct Columns {
    names: Vec<String>,
    phone: Option<usize>,
    name: Option<usize>,
    timezone: Option<usize>,
}

/// A push parser of a contacts CSV file.
pub struct CsvImporter {
    reader: Reader,
    default_country: String,
    /// Bytes of the record being read, and where its fields end.
    output: Vec<u8>,
    ends: Vec<usize>,
    used: usize,
    fields: usize,
    /// The first bytes, held back until a BOM can be told apart.
    head: Vec<u8>,
    started: bool,
    columns: Option<Columns>,
    rows: usize,
    seen: HashSet<String>,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";
/// Longest row accepted, so one malformed row cannot take all memory.
const MAX_ROW_BYTES: usize = 64 * 1024;
/// Most columns a row may have (empty fields take no bytes, so bytes alone do not bound a row).
const MAX_FIELDS: usize = 1024;

impl CsvImporter {
    /// Starts an import whose national numbers belong to `default_country` (an ISO code).
    pub fn new(default_country: &str) -> Self {
        CsvImporter {
            reader: Reader::new(),
            default_country: default_country.to_string(),
            output: vec![0; 1024],
            ends: vec![0; 32],
            used: 0,
            fields: 0,
            head: Vec::new(),
            started: false,
            columns: None,
            rows: 0,
            seen: HashSet::new(),
        }
    }

    /// Data rows seen so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Parses the next chunk of the file; outcomes of the rows it completes go to `out`.
    /// Fails when the header has no phone column or a row is too long.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<RowOutcome>) -> Result<(), String> {
        if !self.started {
            self.head.extend_from_slice(chunk);
            if self.head.len() < BOM.len() {
                return Ok(());
            }
            self.started = true;
            let head = std::mem::take(&mut self.head);
            let body = head.strip_prefix(BOM).unwrap_or(&head);
            return self.parse(body, out);
        }
        self.parse(chunk, out)
    }

    /// Ends the file: the last row may have no line end.
    pub fn finish(mut self, out: &mut Vec<RowOutcome>) -> Result<usize, String> {
        if !self.started {
            self.started = true;
            let head = std::mem::take(&mut self.head);
            let body = head.strip_prefix(BOM).unwrap_or(&head).to_vec();
            self.parse(&body, out)?;
        }
        self.parse(&[], out)?;
        if self.columns.is_none() {
            return Err("the file is empty: it needs a header row with a phone column".to_string());
        }
        Ok(self.rows)
    }

    fn parse(&mut self, mut input: &[u8], out: &mut Vec<RowOutcome>) -> Result<(), String> {
        loop {
            let (result, read, written, ended) =
                self.reader.read_record(input, &mut self.output[self.used..], &mut self.ends[self.fields..]);
            input = &input[read..];
            // The reader counts field ends from the start of the record, across calls.
            self.used += written;
            self.fields += ended;
            match result {
                ReadRecordResult::InputEmpty => return Ok(()),
                ReadRecordResult::OutputFull => {
                    if self.output.len() >= MAX_ROW_BYTES {
                        return Err(format!("row {} is longer than {MAX_ROW_BYTES} bytes", self.rows + 1));
                    }
                    self.output.resize(self.output.len() * 2, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    if self.ends.len() >= MAX_FIELDS {
                        return Err(format!("row {} has more than {MAX_FIELDS} columns", self.rows + 1));
                    }
                    self.ends.resize(self.ends.len() * 2, 0)
                }
                ReadRecordResult::Record => {
                    self.record(out)?;
                    self.used = 0;
                    self.fields = 0;
                }
                ReadRecordResult::End => return Ok(()),
            }
        }
    }

    fn field(&self, i: usize) -> Result<&str, usize> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        std::str::from_utf8(&self.output[start..self.ends[i]]).map_err(|_| i)
    }

    fn record(&mut self, out: &mut Vec<RowOutcome>) -> Result<(), String> {
        let mut values = Vec::with_capacity(self.fields);
        for i in 0..self.fields {
            match self.field(i) {
                Ok(value) => values.push(value.trim().to_string()),
                Err(_) if self.columns.is_none() => return Err("the header is not valid UTF-8".to_string()),
                Err(column) => {
                    self.rows += 1;
                    out.push(RowOutcome::Rejected {
                        row: self.rows,
                        reason: format!("column {} is not valid UTF-8", column + 1),
                    });
                    return Ok(());
                }
            }
        }
        let Some(columns) = self.columns.take() else {
            self.columns = Some(header(values)?);
            return Ok(());
        };
        if values.iter().all(String::is_empty) {
            self.columns = Some(columns);
            return Ok(()); // blank line
        }
        self.rows += 1;
        let outcome = self.row(&columns, values);
        self.columns = Some(columns);
        if let RowOutcome::Accepted(contact) = &outcome
            && !self.seen.insert(contact.phone.clone())
        {
            out.push(RowOutcome::Merged(contact.clone()));
            return Ok(());
        }
        out.push(outcome);
        Ok(())
    }

    fn row(&self, columns: &Columns, values: Vec<String>) -> RowOutcome {
        let row = self.rows;
        if values.len() != columns.names.len() {
            return RowOutcome::Rejected {
                row,
                reason: format!("expected {} columns, found {}", columns.names.len(), values.len()),
            };
        }
        let phone_raw = columns.phone.map(|i| values[i].as_str()).unwrap_or_default();
        let phone = match phone::normalise(phone_raw, &self.default_country) {
            Ok(phone) => phone,
            Err(e) => return RowOutcome::Rejected { row, reason: e.to_string() },
        };
        let timezone = match columns.timezone.map(|i| values[i].as_str()).filter(|t| !t.is_empty()) {
            Some(name) => match name.parse::<chrono_tz::Tz>() {
                Ok(tz) => Some(tz.name().to_string()),
                Err(_) => return RowOutcome::Rejected { row, reason: format!("unknown timezone {name:?}") },
            },
            // Inferred from the number only when the contact is created, so a re-import never
            // replaces a timezone someone set.
            None => None,
        };
        let name = columns.name.map(|i| values[i].clone()).filter(|n| !n.is_empty());
        let variables = columns
            .names
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != columns.phone && Some(*i) != columns.name && Some(*i) != columns.timezone)
            .filter(|(i, _)| !values[*i].is_empty())
            .map(|(i, key)| (key.clone(), Value::String(values[i].clone())))
            .collect();
        RowOutcome::Accepted(ImportedContact { row, phone, name, timezone, variables })
    }
}

/// Reads the header: the phone column is required; names are compared case-insensitively.
fn header(names: Vec<String>) -> Result<Columns, String> {
    let find = |aliases: &[&str]| names.iter().position(|n| aliases.iter().any(|a| n.eq_ignore_ascii_case(a)));
    let phone = find(&["phone", "phone_number", "number", "mobile", "customer_number"])
        .ok_or_else(|| "the header has no phone column (phone, phone_number, number or mobile)".to_string())?;
    let mut seen = HashSet::new();
    if let Some(duplicate) = names.iter().find(|n| !n.is_empty() && !seen.insert(n.to_ascii_lowercase())) {
        return Err(format!("the header names column {duplicate:?} twice"));
    }
    Ok(Columns {
        phone: Some(phone),
        name: find(&["name", "full_name", "customer_name"]),
        timezone: find(&["timezone", "tz", "time_zone"]),
        names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import(bytes: &[u8], chunk: usize) -> Result<(Vec<RowOutcome>, usize), String> {
        let mut importer = CsvImporter::new("IN");
        let mut out = Vec::new();
        for piece in bytes.chunks(chunk.max(1)) {
            importer.feed(piece, &mut out)?;
        }
        let rows = importer.finish(&mut out)?;
        Ok((out, rows))
    }

    const FILE: &[u8] = b"\xEF\xBB\xBFPhone,Name,City,timezone\r\n\
        98765 43210,Rahul,Mumbai,\r\n\
        +1 (415) 555-0100,\"Smith, Jane\",\"San \"\"Fran\"\"\",\r\n\
        12345,Bad,Nowhere,\r\n\
        +919876543210,Rahul again,Pune,\r\n\
        +442079460958,Tom,London,Mars/Base\r\n\
        \r\n\
        +6591234567,Ann,Singapore,Asia/Singapore\r\n\
        +971501234567,Too,many,columns,here\r\n\
        +61212345678,Last,Sydney,";

    #[test]
    fn every_row_is_accepted_merged_or_rejected_with_its_reason_whatever_the_chunking() {
        for chunk in [1, 2, 3, 7, 64, 4096] {
            let (out, rows) = import(FILE, chunk).unwrap();
            assert_eq!(rows, 8, "chunk {chunk}");
            assert_eq!(out.len(), rows, "accepted + merged + rejected = rows (chunk {chunk})");
            let accepted: Vec<&ImportedContact> =
                out.iter().filter_map(|o| if let RowOutcome::Accepted(c) = o { Some(c) } else { None }).collect();
            let phones: Vec<&str> = accepted.iter().map(|c| c.phone.as_str()).collect();
            assert_eq!(phones, ["+919876543210", "+14155550100", "+6591234567", "+61212345678"], "chunk {chunk}");
            assert_eq!(accepted[0].name.as_deref(), Some("Rahul"));
            assert_eq!(accepted[0].timezone, None, "left to the store to infer on creation");
            assert_eq!(accepted[0].variables["City"], "Mumbai");
            assert_eq!(accepted[1].name.as_deref(), Some("Smith, Jane"));
            assert_eq!(accepted[1].variables["City"], "San \"Fran\"");
            assert_eq!(accepted[2].timezone.as_deref(), Some("Asia/Singapore"), "a given timezone is kept");
            let rejected: Vec<(usize, &str)> = out
                .iter()
                .filter_map(|o| {
                    if let RowOutcome::Rejected { row, reason } = o { Some((*row, reason.as_str())) } else { None }
                })
                .collect();
            assert_eq!(rejected.len(), 3, "{rejected:?}");
            assert_eq!(rejected[0].0, 3);
            assert!(rejected[0].1.contains("E.164"));
            assert_eq!(rejected[1], (5, "unknown timezone \"Mars/Base\""));
            assert_eq!(rejected[2], (7, "expected 4 columns, found 5"));
            assert!(matches!(&out[3], RowOutcome::Merged(c) if c.row == 4 && c.phone == "+919876543210"));
        }
    }

    #[test]
    fn a_row_of_endless_empty_fields_is_refused() {
        let mut importer = CsvImporter::new("IN");
        let mut out = Vec::new();
        importer.feed(b"phone\n", &mut out).unwrap();
        let error = importer.feed(&vec![b','; 100_000], &mut out).unwrap_err();
        assert!(error.contains("columns"), "{error}");
    }

    #[test]
    fn a_file_needs_a_phone_column() {
        assert!(import(b"name,city\nRahul,Mumbai\n", 4096).unwrap_err().contains("phone column"));
        assert!(import(b"", 4096).unwrap_err().contains("empty"));
        assert!(import(b"phone,Phone\n1,2\n", 4096).unwrap_err().contains("twice"));
        let (out, rows) = import(b"phone\n", 4096).unwrap();
        assert_eq!((out.len(), rows), (0, 0));
    }

    #[test]
    fn a_large_file_streams_in_bounded_memory() {
        let mut importer = CsvImporter::new("IN");
        let mut out = Vec::new();
        importer.feed(b"phone,name\n", &mut out).unwrap();
        for n in 0..100_000u64 {
            importer.feed(format!("9{:09},Contact {n}\n", n).as_bytes(), &mut out).unwrap();
            out.clear(); // a caller stores each batch and drops it
        }
        assert!(importer.output.len() <= 1024, "the row buffer never grew");
        assert_eq!(importer.finish(&mut out).unwrap(), 100_000);
    }
}
