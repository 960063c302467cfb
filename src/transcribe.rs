//! Transcription behind the actors' `Transcriber` port. Only the sandbox transcriber exists so far:
//! it reads the script chunk of a sandbox recording and returns a deterministic conversation, a
//! summary, a `call_outcome` and, for an agent call, one value per visible call outcome of the
//! agent's config; or it fails the way a speech-to-text provider answering 401 does.
//! Real providers (OpenAI-compatible, Deepgram) and LLM analysis are later work.

use async_trait::async_trait;
use dialplane_actors::CallRecord;
use dialplane_actors::ports::{Recording, Transcriber, Transcript, TranscriptionError, Turn};
use serde_json::{Map, Value};

use crate::agents::prompt;
use crate::carriers::sandbox_network::read_script;

/// The error text a 401 from the speech-to-text provider leaves on a transcript.
pub const SANDBOX_UNAUTHORIZED: &str =
    "Client error '401 Unauthorized' for url 'https://stt.sandbox.dialplane.invalid/v1/audio/transcribe/diarize'";

/// Deterministic transcripts of sandbox recordings.
#[derive(Default)]
pub struct SandboxTranscriber;

#[async_trait]
impl Transcriber for SandboxTranscriber {
    async fn transcribe(&self, call: &CallRecord, recording: &Recording) -> Result<Transcript, TranscriptionError> {
        let script = read_script(&recording.bytes).ok_or_else(|| TranscriptionError {
            message: "unsupported audio: not a sandbox recording".to_string(),
            retryable: false,
        })?;
        if script["stt"] == "unauthorized" {
            return Err(TranscriptionError { message: SANDBOX_UNAUTHORIZED.to_string(), retryable: false });
        }
        let talk_s = script["talk_s"].as_u64().unwrap_or(30) as f32;
        let language = call.transcript_language.clone().unwrap_or_else(|| "hi-en".to_string());
        let interested = talk_s >= 45.0;
        let lines: [(&str, &str); 4] = [
            ("agent", "Hello, this is a call from Dialplane. Is this a good time to talk?"),
            ("customer", "Yes, go ahead."),
            ("agent", "I wanted to tell you about our new plan. Would you like the details?"),
            ("customer", if interested { "Yes, please send me the details." } else { "Not right now, thank you." }),
        ];
        let history = lines
            .iter()
            .enumerate()
            .map(|(i, (role, text))| Turn {
                role: role.to_string(),
                text: text.to_string(),
                start_s: talk_s * i as f32 / lines.len() as f32,
            })
            .collect();
        let (summary, call_outcome) = if interested {
            ("The agent introduced the new plan and the customer asked for the details.", "Interested")
        } else {
            ("The agent introduced the new plan and the customer declined for now.", "Not Interested")
        };
        let outcomes = analyse_outcomes(&call.agent_config, interested, summary);
        Ok(Transcript {
            language,
            history,
            summary: summary.to_string(),
            call_outcome: call_outcome.to_string(),
            outcomes,
        })
    }
}

/// The sandbox analyser's value for each visible call outcome of an agent call's config, typed as
/// declared: BOOLEAN is whether the customer was interested, FIXED the first choice when interested
/// and the last otherwise, TEXT the summary, DATE today, NUMBER a sample number.
fn analyse_outcomes(agent_config: &Value, interested: bool, summary: &str) -> Map<String, Value> {
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let mut values = Map::new();
    for outcome in agent_config["call_outcomes"].as_array().into_iter().flatten() {
        if outcome["is_visible"] == Value::Bool(false) {
            continue;
        }
        let Some(name) = outcome["outcome_name"].as_str() else { continue };
        let field_type = outcome["outcome_type"].as_str().unwrap_or("TEXT");
        let choices: Option<Vec<String>> = outcome["outcome_enum"]
            .as_array()
            .map(|c| c.iter().filter_map(|v| v.as_str().map(str::to_string)).collect());
        let value = match (field_type, choices.as_deref()) {
            ("BOOLEAN", _) => Value::Bool(interested),
            ("FIXED", Some([first, .., last])) => Value::String(if interested { first } else { last }.clone()),
            ("TEXT", _) => Value::String(summary.to_string()),
            _ => prompt::sample_value(name, field_type, choices.as_deref(), &today),
        };
        values.insert(name.to_string(), value);
    }
    values
}
