//! Agent prompt configuration: checks a `metadata_schema` definition, validates metadata values
//! against it, renders `{{ name }}` placeholders in `system_prompt` and `starting_instructions`,
//! improves prompts deterministically when no LLM is configured, and makes sample outcome values for
//! the sandbox analyser.
//!
//! Everything here is pure: no IO and no clock reads (callers pass today's date where one is needed).

use chrono::NaiveDate;
use serde_json::{Map, Value};

/// Message of a required field that has neither a value nor a default.
const REQUIRED: &str = "required";
/// Message of a placeholder that has neither a value nor a default.
const NO_VALUE: &str = "no value for placeholder";
/// Prompts shorter than this (in characters) get a suggestion.
const MIN_PROMPT_CHARS: usize = 40;
/// Suggestion for an empty `system_prompt`.
const EMPTY_SYSTEM_PROMPT: &str = "Describe the agent's role, goal and tone in system_prompt.";

/// Call outcome / infield value types of the agent API.
pub const FIELD_TYPES: [&str; 5] = ["TEXT", "DATE", "BOOLEAN", "FIXED", "NUMBER"];

/// One problem with the metadata values.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MetadataError {
    /// The metadata field (or placeholder) name.
    pub field: String,
    /// What is wrong, e.g. "required" or "must be a number".
    pub message: String,
}

impl MetadataError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        MetadataError { field: field.to_string(), message: message.into() }
    }
}

/// The result of rendering.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Rendered {
    /// `system_prompt` with its placeholders replaced.
    pub rendered_system_prompt: String,
    /// `starting_instructions` with its placeholders replaced.
    pub rendered_starting_instructions: String,
    /// Validation errors and placeholders left without a value.
    pub errors: Vec<MetadataError>,
}

/// A deterministic local prompt improvement used when no LLM is configured.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Enhanced {
    /// The tidied system prompt, with a "Guidelines:" section when the config has guidelines.
    pub enhanced_system_prompt: String,
    /// The tidied starting instructions.
    pub enhanced_starting_instructions: String,
    /// Human-readable advice on the config.
    pub suggestions: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

/// The value type of a metadata field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    String,
    Number,
    Integer,
    Boolean,
    Date,
    Enum,
}

/// The `type` names of metadata fields, in the order error messages list them.
const KINDS: [(&str, Kind); 6] = [
    ("string", Kind::String),
    ("number", Kind::Number),
    ("integer", Kind::Integer),
    ("boolean", Kind::Boolean),
    ("date", Kind::Date),
    ("enum", Kind::Enum),
];

impl Kind {
    fn parse(name: &str) -> Option<Kind> {
        KINDS.iter().find(|entry| entry.0 == name).map(|entry| entry.1)
    }

    fn accepts(self, value: &Value) -> bool {
        match self {
            Kind::String | Kind::Enum => value.is_string(),
            Kind::Number => value.is_number(),
            Kind::Integer => is_integer(value),
            Kind::Boolean => value.is_boolean(),
            Kind::Date => value.as_str().is_some_and(is_date),
        }
    }

    fn expectation(self) -> &'static str {
        match self {
            Kind::String | Kind::Enum => "must be a string",
            Kind::Number => "must be a number",
            Kind::Integer => "must be an integer",
            Kind::Boolean => "must be a boolean",
            Kind::Date => "must be a date in YYYY-MM-DD format",
        }
    }
}

/// One usable item of a `metadata_schema`.
struct Field<'a> {
    name: &'a str,
    /// `None` when the item's `type` is unknown: its values are then not checked.
    kind: Option<Kind>,
    required: bool,
    /// The default, when not null.
    default: Option<&'a Value>,
    /// The allowed values, when a non-empty list is given.
    enum_values: Option<Vec<&'a str>>,
}

/// A leniently parsed schema: the usable fields and every problem found.
struct Parsed<'a> {
    fields: Vec<Field<'a>>,
    errors: Vec<String>,
}

/// Checks a metadata_schema definition itself (used when a config is created/updated).
///
/// Returns human-readable errors naming the item, e.g.
/// `metadata_schema[1].type: must be one of string, number, integer, boolean, date, enum`. A null or
/// absent schema is fine.
pub fn check_schema(schema: Option<&Value>) -> Vec<String> {
    parse_schema(schema).errors
}

fn parse_schema(schema: Option<&Value>) -> Parsed<'_> {
    let mut parsed = Parsed { fields: Vec::new(), errors: Vec::new() };
    let items = match schema {
        None | Some(Value::Null) => return parsed,
        Some(Value::Array(items)) => items,
        Some(_) => {
            parsed.errors.push("metadata_schema: must be an array".to_string());
            return parsed;
        }
    };
    for (index, item) in items.iter().enumerate() {
        let at = format!("metadata_schema[{index}]");
        let Some(object) = item.as_object() else {
            parsed.errors.push(format!("{at}: must be an object"));
            continue;
        };
        let Some(field) = parse_item(&at, object, &mut parsed.errors) else { continue };
        if parsed.fields.iter().any(|known| known.name == field.name) {
            parsed.errors.push(format!("{at}.name: duplicate name \"{}\"", field.name));
        } else {
            parsed.fields.push(field);
        }
    }
    parsed
}

fn parse_item<'a>(at: &str, object: &'a Map<String, Value>, errors: &mut Vec<String>) -> Option<Field<'a>> {
    let name = parse_name(at, object.get("name"), errors);
    let kind = parse_kind(at, object.get("type"), errors);
    let required = parse_required(at, object.get("required"), errors);
    let enum_values = parse_enum_values(at, object.get("enum_values"), kind, errors);
    let default = object.get("default").filter(|value| !value.is_null());
    if let Some(kind) = kind
        && let Some(default) = default
        && let Err(message) = check_value(kind, enum_values.as_deref(), default)
    {
        errors.push(format!("{at}.default: {message}"));
    }
    Some(Field { name: name?, kind, required, default, enum_values })
}

fn parse_name<'a>(at: &str, value: Option<&'a Value>, errors: &mut Vec<String>) -> Option<&'a str> {
    let Some(name) = value.and_then(Value::as_str).filter(|name| !name.is_empty()) else {
        errors.push(format!("{at}.name: must be a non-empty string"));
        return None;
    };
    if !is_identifier(name) {
        errors.push(format!("{at}.name: must match [A-Za-z_][A-Za-z0-9_]*"));
    }
    Some(name)
}

fn parse_kind(at: &str, value: Option<&Value>, errors: &mut Vec<String>) -> Option<Kind> {
    match value {
        None | Some(Value::Null) => Some(Kind::String),
        Some(value) => {
            let kind = value.as_str().and_then(Kind::parse);
            if kind.is_none() {
                let names = KINDS.map(|entry| entry.0).join(", ");
                errors.push(format!("{at}.type: must be one of {names}"));
            }
            kind
        }
    }
}

fn parse_required(at: &str, value: Option<&Value>, errors: &mut Vec<String>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(required)) => *required,
        Some(_) => {
            errors.push(format!("{at}.required: must be a boolean"));
            false
        }
    }
}

fn parse_enum_values<'a>(
    at: &str,
    value: Option<&'a Value>,
    kind: Option<Kind>,
    errors: &mut Vec<String>,
) -> Option<Vec<&'a str>> {
    let values = match value {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => match items.iter().map(Value::as_str).collect::<Option<Vec<&str>>>() {
            Some(values) => Some(values),
            None => return malformed_enum_values(at, errors),
        },
        Some(_) => return malformed_enum_values(at, errors),
    };
    if kind == Some(Kind::Enum) && values.as_ref().is_none_or(Vec::is_empty) {
        errors.push(format!("{at}.enum_values: must be a non-empty array of strings for type enum"));
    }
    values.filter(|values| !values.is_empty())
}

fn malformed_enum_values<'a>(at: &str, errors: &mut Vec<String>) -> Option<Vec<&'a str>> {
    errors.push(format!("{at}.enum_values: must be null or an array of strings"));
    None
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/// Checks one non-null value against a field's type and allowed values.
fn check_value(kind: Kind, enum_values: Option<&[&str]>, value: &Value) -> Result<(), String> {
    if !kind.accepts(value) {
        return Err(kind.expectation().to_string());
    }
    match enum_values {
        Some(allowed) if !allowed.contains(&value_text(value).as_str()) => {
            Err(format!("must be one of: {}", allowed.join(", ")))
        }
        _ => Ok(()),
    }
}

fn is_integer(value: &Value) -> bool {
    value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.is_finite() && f.fract() == 0.0)
}

/// Whether `text` is a real calendar date written exactly as YYYY-MM-DD.
fn is_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| if i == 4 || i == 7 { *b == b'-' } else { b.is_ascii_digit() });
    if !shaped {
        return false;
    }
    match (text[0..4].parse::<i32>(), text[5..7].parse::<u32>(), text[8..10].parse::<u32>()) {
        (Ok(year), Ok(month), Ok(day)) => NaiveDate::from_ymd_opt(year, month, day).is_some(),
        _ => false,
    }
}

fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A value as it appears in a prompt: strings as-is, other JSON as JSON text.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The value given for `name`, a null value counting as absent.
fn present<'a>(values: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    values.get(name).filter(|value| !value.is_null())
}

/// Validates values against the schema.
///
/// Every required field without a value and without a non-null default is an error "required"; a
/// value of the wrong type is an error (e.g. "must be a number"); a value outside `enum_values` is an
/// error listing the allowed values. Keys not in the schema are ignored. A null value counts as
/// absent. Errors come in schema order.
pub fn validate(schema: Option<&Value>, values: &Map<String, Value>) -> Vec<MetadataError> {
    parse_schema(schema).fields.iter().filter_map(|field| field_error(field, values)).collect()
}

fn field_error(field: &Field<'_>, values: &Map<String, Value>) -> Option<MetadataError> {
    let message = match present(values, field.name) {
        None if field.required && field.default.is_none() => REQUIRED.to_string(),
        None => return None,
        Some(value) => check_value(field.kind?, field.enum_values.as_deref(), value).err()?,
    };
    Some(MetadataError::new(field.name, message))
}

// ---------------------------------------------------------------------------------------------
// Placeholders and rendering
// ---------------------------------------------------------------------------------------------

/// A piece of prompt text.
enum Segment<'a> {
    Text(&'a str),
    /// `raw` is the whole `{{ name }}`, `name` the trimmed identifier inside.
    Placeholder {
        raw: &'a str,
        name: &'a str,
    },
}

/// Splits `text` into plain text and `{{ name }}` placeholders. Braces around anything but an
/// identifier, and an unterminated `{{`, stay text.
fn segments(text: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        let name = after[..close].trim();
        if is_identifier(name) {
            push_text(&mut out, &rest[..open]);
            out.push(Segment::Placeholder { raw: &rest[open..open + close + 4], name });
            rest = &after[close + 2..];
        } else {
            push_text(&mut out, &rest[..open + 1]);
            rest = &rest[open + 1..];
        }
    }
    push_text(&mut out, rest);
    out
}

fn push_text<'a>(out: &mut Vec<Segment<'a>>, text: &'a str) {
    if !text.is_empty() {
        out.push(Segment::Text(text));
    }
}

/// Returns the placeholder names used in a text, in order of first appearance, without duplicates.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for segment in segments(text) {
        if let Segment::Placeholder { name, .. } = segment
            && !names.iter().any(|known| known == name)
        {
            names.push(name.to_string());
        }
    }
    names
}

/// A string field of the config, `""` when missing or not a string.
fn text_field<'a>(config: &'a Value, key: &str) -> &'a str {
    config.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Renders `system_prompt` and `starting_instructions` of an agent config.
///
/// Every `{{ name }}` placeholder (whitespace inside the braces allowed) is replaced with its value
/// (strings as-is, other JSON as JSON text), else the schema's non-null default. A placeholder with
/// neither stays as written and gets an error: "required" when the schema marks it required, else
/// "no value for placeholder". The errors of [`validate`] come first; no field+message pair appears
/// twice. An unterminated `{{` stays text.
pub fn render(config: &Value, values: &Map<String, Value>) -> Rendered {
    let schema = config.get("metadata_schema");
    let fields = parse_schema(schema).fields;
    let mut errors = validate(schema, values);
    let rendered_system_prompt = render_text(text_field(config, "system_prompt"), &fields, values, &mut errors);
    let rendered_starting_instructions =
        render_text(text_field(config, "starting_instructions"), &fields, values, &mut errors);
    Rendered { rendered_system_prompt, rendered_starting_instructions, errors }
}

fn render_text(
    text: &str,
    fields: &[Field<'_>],
    values: &Map<String, Value>,
    errors: &mut Vec<MetadataError>,
) -> String {
    let mut out = String::with_capacity(text.len());
    for segment in segments(text) {
        match segment {
            Segment::Text(text) => out.push_str(text),
            Segment::Placeholder { raw, name } => match resolve(name, fields, values) {
                Some(value) => out.push_str(&value_text(value)),
                None => {
                    out.push_str(raw);
                    push_unique(errors, missing_placeholder(name, fields));
                }
            },
        }
    }
    out
}

/// The value of placeholder `name`: the given value, else the schema default.
fn resolve<'a>(name: &str, fields: &[Field<'a>], values: &'a Map<String, Value>) -> Option<&'a Value> {
    present(values, name).or_else(|| find_field(fields, name).and_then(|field| field.default))
}

fn missing_placeholder(name: &str, fields: &[Field<'_>]) -> MetadataError {
    let required = find_field(fields, name).is_some_and(|field| field.required);
    MetadataError::new(name, if required { REQUIRED } else { NO_VALUE })
}

fn find_field<'f, 'a>(fields: &'f [Field<'a>], name: &str) -> Option<&'f Field<'a>> {
    fields.iter().find(|field| field.name == name)
}

fn push_unique(errors: &mut Vec<MetadataError>, error: MetadataError) {
    if !errors.contains(&error) {
        errors.push(error);
    }
}

// ---------------------------------------------------------------------------------------------
// Local enhancement
// ---------------------------------------------------------------------------------------------

/// Improves an agent config's prompts deterministically, without an LLM.
///
/// Both texts are trimmed, runs of spaces and blank lines collapsed, the first letter capitalised
/// and terminal punctuation (`.`, `!` or `?`) ensured. The system prompt gets a "Guidelines:" section
/// listing the config's `guidelines` (as "- item" lines) that are not already in it. Suggestions cover
/// an empty system prompt, undeclared placeholders, unused schema fields, prompts shorter than 40
/// characters and missing examples. Idempotent: enhancing an enhanced config gives the same texts.
pub fn enhance_locally(config: &Value) -> Enhanced {
    let system = text_field(config, "system_prompt");
    let starting = text_field(config, "starting_instructions");
    Enhanced {
        enhanced_system_prompt: with_guidelines(tidy(system), &guideline_items(config)),
        enhanced_starting_instructions: tidy(starting),
        suggestions: suggestions(config, system, starting),
    }
}

/// Trims, collapses whitespace and blank lines, capitalises and punctuates a prompt.
fn tidy(text: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = collapse_spaces(line);
        if line.is_empty() && lines.last().is_none_or(String::is_empty) {
            continue;
        }
        lines.push(line);
    }
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    let mut text = capitalise(&lines.join("\n"));
    punctuate(&mut text);
    text
}

fn collapse_spaces(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Upper-cases the first character when it is a lower-case letter.
fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) if first.is_lowercase() => first.to_uppercase().chain(chars).collect(),
        _ => text.to_string(),
    }
}

fn is_terminal(c: char) -> bool {
    matches!(c, '.' | '!' | '?')
}

/// Ends a non-empty text with `.` unless it already ends with `.`, `!` or `?`; a trailing `,`, `;`
/// or `:` is replaced.
fn punctuate(text: &mut String) {
    if text.is_empty() || text.ends_with(is_terminal) {
        return;
    }
    let kept = text.trim_end_matches([',', ';', ':']).trim_end().len();
    text.truncate(kept);
    text.push('.');
}

/// The config's guidelines as tidy one-line sentences, blank ones dropped.
fn guideline_items(config: &Value) -> Vec<String> {
    let Some(items) = config.get("guidelines").and_then(Value::as_array) else { return Vec::new() };
    items
        .iter()
        .filter_map(Value::as_str)
        .map(|item| tidy(&collapse_spaces(item)))
        .filter(|item| !guideline_key(item).is_empty())
        .collect()
}

/// What a guideline is matched on: lower case, without terminal punctuation.
fn guideline_key(item: &str) -> String {
    item.trim_end_matches(is_terminal).to_lowercase()
}

/// Appends the guidelines not already in `text` as "- item" lines under "Guidelines:", extending a
/// trailing "Guidelines:" paragraph when there is one.
fn with_guidelines(mut text: String, guidelines: &[String]) -> String {
    let lower = text.to_lowercase();
    let mut missing: Vec<&String> = Vec::new();
    for item in guidelines {
        let key = guideline_key(item);
        if !lower.contains(&key) && !missing.iter().any(|known| guideline_key(known) == key) {
            missing.push(item);
        }
    }
    if missing.is_empty() {
        return text;
    }
    if !ends_with_guidelines_section(&text) {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str("Guidelines:");
    }
    for item in missing {
        text.push_str("\n- ");
        text.push_str(item);
    }
    text
}

fn ends_with_guidelines_section(text: &str) -> bool {
    text.rsplit("\n\n").next().and_then(|paragraph| paragraph.lines().next()) == Some("Guidelines:")
}

fn braced(name: &str) -> String {
    ["{{", name, "}}"].concat()
}

fn suggestions(config: &Value, system: &str, starting: &str) -> Vec<String> {
    let mut out = Vec::new();
    if system.trim().is_empty() {
        out.push(EMPTY_SYSTEM_PROMPT.to_string());
    }
    let fields = parse_schema(config.get("metadata_schema")).fields;
    let mut used = placeholders(system);
    for name in placeholders(starting) {
        if !used.contains(&name) {
            used.push(name);
        }
    }
    for name in used.iter().filter(|name| find_field(&fields, name).is_none()) {
        out.push(format!("Declare {} in metadata_schema", braced(name)));
    }
    for field in fields.iter().filter(|field| !used.iter().any(|name| name == field.name)) {
        out.push(format!(
            "metadata_schema field {} is not used in system_prompt or starting_instructions; use {} or remove it.",
            field.name,
            braced(field.name)
        ));
    }
    if !system.trim().is_empty() && is_short(system) {
        out.push("system_prompt is shorter than 40 characters; add the agent's role, goal, audience and tone.".into());
    }
    if is_short(starting) {
        out.push(
            "starting_instructions is shorter than 40 characters; say how to open the call and what to ask first."
                .into(),
        );
    }
    if config.get("examples").and_then(Value::as_array).is_none_or(Vec::is_empty) {
        out.push("Add a few example conversations to examples to show the expected style.".into());
    }
    out
}

fn is_short(text: &str) -> bool {
    text.trim().chars().count() < MIN_PROMPT_CHARS
}

// ---------------------------------------------------------------------------------------------
// Sandbox samples
// ---------------------------------------------------------------------------------------------

/// Returns a deterministic sample value of an outcome of `field_type` (one of [`FIELD_TYPES`], case
/// ignored) for a sandbox analyser: TEXT → a short string mentioning `name`, NUMBER → 0, BOOLEAN →
/// true, DATE → `date` (YYYY-MM-DD, given by the caller), FIXED → the first enum value (null if none).
/// Unknown types give null.
pub fn sample_value(name: &str, field_type: &str, enum_values: Option<&[String]>, date: &str) -> Value {
    match field_type.to_ascii_uppercase().as_str() {
        "TEXT" => Value::String(format!("Sample {name}")),
        "NUMBER" => Value::from(0),
        "BOOLEAN" => Value::Bool(true),
        "DATE" => Value::String(date.to_string()),
        "FIXED" => enum_values.and_then(|values| values.first()).map_or(Value::Null, |first| first.clone().into()),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const DATE_MSG: &str = "must be a date in YYYY-MM-DD format";

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("a JSON object")
    }

    fn errors(list: &[(&str, &str)]) -> Vec<MetadataError> {
        list.iter().map(|(field, message)| MetadataError::new(field, *message)).collect()
    }

    #[test]
    fn check_schema_accepts_absent_empty_and_valid_schemas() {
        let valid = json!([
            {"name": "customer_name", "type": "string", "required": true, "description": "Customer name",
             "default": null, "enum_values": null},
            {"name": "age", "type": "integer", "default": 30},
            {"name": "plan", "type": "enum", "enum_values": ["basic", "pro"], "default": "pro"},
            {"name": "_due", "type": "date", "default": "2024-12-31"},
            {"name": "ok", "type": "boolean", "required": false, "default": true},
            {"name": "score", "type": "number", "default": 1.5},
            {"name": "colour", "enum_values": ["red"]},
            {"name": "note"}
        ]);
        for schema in [None, Some(&Value::Null), Some(&json!([])), Some(&valid)] {
            assert_eq!(check_schema(schema), Vec::<String>::new(), "{schema:?}");
        }
    }

    #[test]
    fn check_schema_reports_each_problem() {
        const MALFORMED_ENUM: &str = "metadata_schema[0].enum_values: must be null or an array of strings";
        let cases = [
            (json!({"name": "a"}), "metadata_schema: must be an array"),
            (json!([1]), "metadata_schema[0]: must be an object"),
            (json!([{"name": ""}]), "metadata_schema[0].name: must be a non-empty string"),
            (json!([{"type": "string"}]), "metadata_schema[0].name: must be a non-empty string"),
            (json!([{"name": 5}]), "metadata_schema[0].name: must be a non-empty string"),
            (json!([{"name": "1abc"}]), "metadata_schema[0].name: must match [A-Za-z_][A-Za-z0-9_]*"),
            (json!([{"name": "a b"}]), "metadata_schema[0].name: must match [A-Za-z_][A-Za-z0-9_]*"),
            (json!([{"name": "a"}, {"name": "a"}]), "metadata_schema[1].name: duplicate name \"a\""),
            (
                json!([{"name": "a"}, {"name": "b", "type": "text"}]),
                "metadata_schema[1].type: must be one of string, number, integer, boolean, date, enum",
            ),
            (json!([{"name": "a", "required": "yes"}]), "metadata_schema[0].required: must be a boolean"),
            (
                json!([{"name": "a", "type": "enum"}]),
                "metadata_schema[0].enum_values: must be a non-empty array of strings for type enum",
            ),
            (
                json!([{"name": "a", "type": "enum", "enum_values": []}]),
                "metadata_schema[0].enum_values: must be a non-empty array of strings for type enum",
            ),
            (json!([{"name": "a", "enum_values": [1]}]), MALFORMED_ENUM),
            (json!([{"name": "a", "enum_values": "x"}]), MALFORMED_ENUM),
            (json!([{"name": "a", "type": "number", "default": "x"}]), "metadata_schema[0].default: must be a number"),
            (
                json!([{"name": "a", "type": "integer", "default": 0.5}]),
                "metadata_schema[0].default: must be an integer",
            ),
            (
                json!([{"name": "a", "type": "date", "default": "2024-02-30"}]),
                "metadata_schema[0].default: must be a date in YYYY-MM-DD format",
            ),
            (
                json!([{"name": "a", "type": "enum", "enum_values": ["x"], "default": "y"}]),
                "metadata_schema[0].default: must be one of: x",
            ),
        ];
        for (schema, expected) in cases {
            assert_eq!(check_schema(Some(&schema)), vec![expected.to_string()], "{schema}");
        }
    }

    #[test]
    fn check_schema_reports_several_items() {
        let schema = json!([{"name": "ok"}, 7, {"name": "x", "type": "bool", "required": 1}]);
        assert_eq!(
            check_schema(Some(&schema)),
            vec![
                "metadata_schema[1]: must be an object",
                "metadata_schema[2].type: must be one of string, number, integer, boolean, date, enum",
                "metadata_schema[2].required: must be a boolean",
            ]
        );
    }

    fn validation_schema() -> Value {
        json!([
            {"name": "s", "type": "string"},
            {"name": "n", "type": "number"},
            {"name": "i", "type": "integer"},
            {"name": "b", "type": "boolean"},
            {"name": "d", "type": "date"},
            {"name": "e", "type": "enum", "enum_values": ["a", "b"]},
            {"name": "r", "required": true},
            {"name": "rd", "required": true, "default": "x"},
            {"name": "c", "type": "string", "enum_values": ["red", "blue"]},
            {"name": "k", "type": "integer", "enum_values": ["1", "2"]}
        ])
    }

    #[test]
    fn validate_checks_types_enums_and_required() {
        let schema = validation_schema();
        let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
            (json!({"r": "ok"}), vec![]),
            (json!({"r": "ok", "extra": {"x": 1}}), vec![]),
            (json!({"r": "ok", "rd": null}), vec![]),
            (json!({"r": "ok", "s": 1}), vec![("s", "must be a string")]),
            (json!({"r": "ok", "n": "1"}), vec![("n", "must be a number")]),
            (json!({"r": "ok", "n": 1.5}), vec![]),
            (json!({"r": "ok", "i": 1.5}), vec![("i", "must be an integer")]),
            (json!({"r": "ok", "i": "2"}), vec![("i", "must be an integer")]),
            (json!({"r": "ok", "i": -2}), vec![]),
            (json!({"r": "ok", "i": 2.0}), vec![]),
            (json!({"r": "ok", "b": "true"}), vec![("b", "must be a boolean")]),
            (json!({"r": "ok", "b": false}), vec![]),
            (json!({"r": "ok", "d": "2024-02-29"}), vec![]),
            (json!({"r": "ok", "d": "2023-02-29"}), vec![("d", DATE_MSG)]),
            (json!({"r": "ok", "d": "2024-2-9"}), vec![("d", DATE_MSG)]),
            (json!({"r": "ok", "d": "2024-02-29T10:00"}), vec![("d", DATE_MSG)]),
            (json!({"r": "ok", "d": "+024-02-29"}), vec![("d", DATE_MSG)]),
            (json!({"r": "ok", "d": 20240229}), vec![("d", DATE_MSG)]),
            (json!({"r": "ok", "e": "a"}), vec![]),
            (json!({"r": "ok", "e": "c"}), vec![("e", "must be one of: a, b")]),
            (json!({"r": "ok", "e": 1}), vec![("e", "must be a string")]),
            (json!({"r": "ok", "c": "green"}), vec![("c", "must be one of: red, blue")]),
            (json!({"r": "ok", "k": 2}), vec![]),
            (json!({"r": "ok", "k": 3}), vec![("k", "must be one of: 1, 2")]),
            (json!({}), vec![("r", "required")]),
            (json!({"r": null}), vec![("r", "required")]),
            (json!({"s": 1, "n": "x"}), vec![("s", "must be a string"), ("n", "must be a number"), ("r", "required")]),
        ];
        for (values, expected) in cases {
            assert_eq!(validate(Some(&schema), &object(values.clone())), errors(&expected), "{values}");
        }
    }

    #[test]
    fn validate_without_schema_accepts_anything() {
        let values = object(json!({"a": 1, "b": null}));
        assert!(validate(None, &values).is_empty());
        assert!(validate(Some(&Value::Null), &values).is_empty());
        assert!(validate(Some(&json!("not a schema")), &values).is_empty());
    }

    fn render_config() -> Value {
        json!({
            "system_prompt":
                "You help {{ company }} with {{product}}. Age {{age}}, VIP {{vip}}, score {{score}}. {{company}}",
            "starting_instructions": "Greet {{  customer_name  }}{{unknown}}.",
            "metadata_schema": [
                {"name": "company", "default": "Acme"},
                {"name": "customer_name", "required": true},
                {"name": "age", "type": "integer"},
                {"name": "vip", "type": "boolean"},
                {"name": "score", "type": "number"},
                {"name": "product"}
            ]
        })
    }

    #[test]
    fn render_replaces_values_and_defaults() {
        let values =
            object(json!({"product": "Widgets", "age": 42, "vip": false, "score": 1.5, "customer_name": "Ann"}));
        let rendered = render(&render_config(), &values);
        assert_eq!(rendered.rendered_system_prompt, "You help Acme with Widgets. Age 42, VIP false, score 1.5. Acme");
        assert_eq!(rendered.rendered_starting_instructions, "Greet Ann{{unknown}}.");
        assert_eq!(rendered.errors, errors(&[("unknown", "no value for placeholder")]));
    }

    #[test]
    fn render_value_overrides_default_and_reports_bad_types() {
        let values = object(json!({"company": "Globex", "product": "x", "age": "old", "vip": true, "score": 0,
                                   "customer_name": "Bo", "unknown": "?"}));
        let rendered = render(&render_config(), &values);
        assert_eq!(rendered.rendered_system_prompt, "You help Globex with x. Age old, VIP true, score 0. Globex");
        assert_eq!(rendered.rendered_starting_instructions, "Greet Bo?.");
        assert_eq!(rendered.errors, errors(&[("age", "must be an integer")]));
    }

    #[test]
    fn render_leaves_missing_placeholders_and_reports_once() {
        let rendered = render(&render_config(), &object(json!({"product": null})));
        assert_eq!(
            rendered.rendered_system_prompt,
            "You help Acme with {{product}}. Age {{age}}, VIP {{vip}}, score {{score}}. Acme"
        );
        assert_eq!(rendered.rendered_starting_instructions, "Greet {{  customer_name  }}{{unknown}}.");
        assert_eq!(
            rendered.errors,
            errors(&[
                ("customer_name", "required"),
                ("product", "no value for placeholder"),
                ("age", "no value for placeholder"),
                ("vip", "no value for placeholder"),
                ("score", "no value for placeholder"),
                ("unknown", "no value for placeholder"),
            ])
        );
    }

    #[test]
    fn render_reports_a_required_placeholder_once() {
        // A null default does not count, so validate and the placeholder both say "required": reported once.
        let schema = json!([{"name": "x", "required": true, "default": null}]);
        let config = json!({"system_prompt": "Hi {{x}} {{x}}", "metadata_schema": schema});
        let rendered = render(&config, &Map::new());
        assert_eq!(rendered.rendered_system_prompt, "Hi {{x}} {{x}}");
        assert_eq!(rendered.errors, errors(&[("x", "required")]));
    }

    #[test]
    fn render_handles_missing_texts_and_odd_braces() {
        let empty = render(&json!({}), &Map::new());
        assert_eq!((empty.rendered_system_prompt.as_str(), empty.rendered_starting_instructions.as_str()), ("", ""));
        assert!(empty.errors.is_empty());

        let values = object(json!({"a": "A", "z": "Z"}));
        let cases = [
            ("Hello {{a", "Hello {{a"),
            ("x {{ a }} {{", "x A {{"),
            ("{{a}}}} {{", "A}} {{"),
            ("{{{z}}}", "{Z}"),
            ("{{}} {{ }} {{a b}} {{a.b}}", "{{}} {{ }} {{a b}} {{a.b}}"),
            ("{{\n a \n}}é{{z}}", "AéZ"),
            ("no placeholders", "no placeholders"),
        ];
        for (text, expected) in cases {
            let rendered = render(&json!({"system_prompt": text}), &values);
            assert_eq!(rendered.rendered_system_prompt, expected, "{text:?}");
            assert!(rendered.errors.is_empty(), "{text:?}");
        }
    }

    #[test]
    fn placeholders_are_ordered_and_deduplicated() {
        let cases: [(&str, &[&str]); 6] = [
            ("", &[]),
            ("{{b}} {{ a }} {{b}} {{a}}", &["b", "a"]),
            ("{{x}} {{y", &["x"]),
            ("{{ not valid }} {{x.y}} {{{z}}}", &["z"]),
            ("{{_private1}} {{9lives}}", &["_private1"]),
            ("{{ a }}{{a}}{{A}}", &["a", "A"]),
        ];
        for (text, expected) in cases {
            assert_eq!(placeholders(text), expected, "{text:?}");
        }
    }

    fn enhance_config() -> Value {
        json!({
            "system_prompt": "  you are a   helpful agent for {{company}}\n\n\n\n  be   friendly  ",
            "starting_instructions": "greet {{customer_name}}",
            "metadata_schema": [{"name": "customer_name"}, {"name": "order_id"}],
            "guidelines": ["be concise", "  Never  share secrets  ", "Be concise", "", 5],
            "examples": []
        })
    }

    #[test]
    fn enhance_tidies_texts_and_appends_guidelines() {
        let enhanced = enhance_locally(&enhance_config());
        let expected = "You are a helpful agent for {{company}}\n\nbe friendly.\n\n\
                        Guidelines:\n- Be concise.\n- Never share secrets.";
        assert_eq!(enhanced.enhanced_system_prompt, expected);
        assert_eq!(enhanced.enhanced_starting_instructions, "Greet {{customer_name}}.");
    }

    #[test]
    fn enhance_text_rules() {
        let cases = [
            (json!({"system_prompt": "Why?\n\n\n  ok  "}), "Why?\n\nok."),
            (json!({"system_prompt": "hello ,  "}), "Hello."),
            (json!({"system_prompt": "Rules:"}), "Rules."),
            (json!({"system_prompt": "Stop!"}), "Stop!"),
            (json!({"system_prompt": "élan\tvital"}), "Élan vital."),
            (json!({"system_prompt": "{{company}} agent"}), "{{company}} agent."),
            (json!({"system_prompt": "Be concise. Help.", "guidelines": ["be concise"]}), "Be concise. Help."),
            (json!({"system_prompt": "", "guidelines": ["smile"]}), "Guidelines:\n- Smile."),
            (json!({"system_prompt": "Hi", "guidelines": ["  ", "...", "Go!"]}), "Hi.\n\nGuidelines:\n- Go!"),
            (
                json!({"system_prompt": "Help.\n\nGuidelines:\n- Be concise.", "guidelines": ["Be concise", "smile"]}),
                "Help.\n\nGuidelines:\n- Be concise.\n- Smile.",
            ),
            (json!({"system_prompt": "   \n  "}), ""),
        ];
        for (config, expected) in cases {
            assert_eq!(enhance_locally(&config).enhanced_system_prompt, expected, "{config}");
        }
    }

    #[test]
    fn enhance_is_idempotent() {
        let configs = [
            enhance_config(),
            json!({"system_prompt": "Rules:", "starting_instructions": "  hello ,  ", "guidelines": ["x:"]}),
            json!({"system_prompt": "", "guidelines": ["smile", "SMILE."]}),
            json!({"system_prompt": "élan vital\r\n\r\n\r\nsecond  line", "guidelines": ["  ", 5, "Be brief!"]}),
            json!({"system_prompt": "Help.\n\nGuidelines:\n- Be concise.", "guidelines": ["Be concise", "a\n\nb"]}),
            json!({}),
        ];
        for config in configs {
            let first = enhance_locally(&config);
            let mut again = config.clone();
            if let Some(object) = again.as_object_mut() {
                object.insert("system_prompt".into(), Value::String(first.enhanced_system_prompt.clone()));
                let starting = first.enhanced_starting_instructions.clone();
                object.insert("starting_instructions".into(), Value::String(starting));
            }
            let second = enhance_locally(&again);
            assert_eq!(second.enhanced_system_prompt, first.enhanced_system_prompt, "{config}");
            assert_eq!(second.enhanced_starting_instructions, first.enhanced_starting_instructions, "{config}");
        }
    }

    #[test]
    fn enhance_suggests_improvements() {
        let suggestions = enhance_locally(&enhance_config()).suggestions;
        assert_eq!(suggestions.len(), 4, "{suggestions:?}");
        assert_eq!(suggestions[0], "Declare {{company}} in metadata_schema");
        assert!(suggestions[1].contains("order_id"), "{suggestions:?}");
        assert!(suggestions[2].starts_with("starting_instructions is shorter than 40"), "{suggestions:?}");
        assert!(suggestions[3].contains("examples"), "{suggestions:?}");

        let empty = enhance_locally(&json!({})).suggestions;
        assert_eq!(empty[0], EMPTY_SYSTEM_PROMPT);
        assert_eq!(empty.len(), 3, "{empty:?}");

        let short = enhance_locally(&json!({"system_prompt": "Be nice."})).suggestions;
        assert!(short.iter().any(|s| s.starts_with("system_prompt is shorter than 40")), "{short:?}");
    }

    #[test]
    fn enhance_has_no_suggestions_for_a_complete_config() {
        let config = json!({
            "system_prompt": "You are a friendly support agent for {{company}}. Answer billing questions.",
            "starting_instructions": "Greet {{ name }} by name and ask how you can help today.",
            "metadata_schema": [{"name": "company"}, {"name": "name"}],
            "examples": [{"user": "hi", "agent": "Hello!"}]
        });
        assert_eq!(enhance_locally(&config).suggestions, Vec::<String>::new());
    }

    #[test]
    fn sample_values_per_type() {
        let choices = ["yes".to_string(), "no".to_string()];
        let none: [String; 0] = [];
        let cases = [
            ("NUMBER", None, json!(0)),
            ("number", None, json!(0)),
            ("BOOLEAN", None, json!(true)),
            ("DATE", None, json!("2024-05-01")),
            ("FIXED", Some(&choices[..]), json!("yes")),
            ("FIXED", Some(&none[..]), Value::Null),
            ("FIXED", None, Value::Null),
            ("OTHER", None, Value::Null),
        ];
        for (field_type, enum_values, expected) in cases {
            assert_eq!(sample_value("reason", field_type, enum_values, "2024-05-01"), expected, "{field_type}");
        }
        let text = sample_value("reason", "TEXT", None, "2024-05-01");
        assert!(text.as_str().is_some_and(|s| s.contains("reason")), "{text}");
        for field_type in FIELD_TYPES {
            let value = sample_value("x", field_type, Some(&choices[..]), "2024-05-01");
            assert!(!value.is_null(), "{field_type}");
        }
    }
}
