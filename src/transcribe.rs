//! Transcription behind the actors' `Transcriber` port. Only the sandbox transcriber exists so far:
//! it reads the script chunk of a sandbox recording and returns a deterministic conversation, a
//! summary and a `call_outcome`, or fails the way a speech-to-text provider answering 401 does.
//! Real providers (OpenAI-compatible, Deepgram) and LLM analysis are later work.

use async_trait::async_trait;
use dialplane_actors::CallRecord;
use dialplane_actors::ports::{Recording, Transcriber, Transcript, TranscriptionError, Turn};

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
        Ok(Transcript { language, history, summary: summary.to_string(), call_outcome: call_outcome.to_string() })
    }
}
