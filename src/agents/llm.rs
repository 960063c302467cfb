//! Prompt enhancement through an OpenAI-compatible chat completions API (`POST {base}/chat/completions`
//! with a JSON-schema response format), validated on our side; without a configured LLM, or when
//! it fails, the deterministic local enhancement of [`super::prompt`] answers instead and says so.

use std::time::Duration;

use serde_json::{Value, json};

use super::prompt::{self, Enhanced};

/// Where the LLM is.
#[derive(Clone)]
pub struct LlmConfig {
    /// e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
}

impl std::fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = self.api_key.as_ref().map(|_| "<redacted>");
        f.debug_struct("LlmConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &key)
            .finish()
    }
}

/// An enhancement and where it came from.
pub struct Enhancement {
    pub enhanced: Enhanced,
    /// `llm`, `local`, or `local_fallback` (the LLM failed; `error` says how).
    pub source: &'static str,
    pub error: Option<String>,
}

const INSTRUCTIONS: &str = "You improve the prompts of a telephone voice agent. Keep every {{placeholder}} exactly as \
written, keep the language of the input, make the system prompt state the agent's role, goal, tone and rules clearly, \
and make the starting instructions a short, natural opening. Answer with JSON only.";

fn response_schema() -> Value {
    json!({
        "type": "json_schema",
        "json_schema": {
            "name": "enhanced_prompts",
            "strict": true,
            "schema": {
                "type": "object",
                "additionalProperties": false,
                "required": ["enhanced_system_prompt", "enhanced_starting_instructions", "suggestions"],
                "properties": {
                    "enhanced_system_prompt": { "type": "string" },
                    "enhanced_starting_instructions": { "type": "string" },
                    "suggestions": { "type": "array", "items": { "type": "string" } }
                }
            }
        }
    })
}

/// Enhances a config's prompts with the LLM when one is configured, else locally.
pub async fn enhance(http: &reqwest::Client, llm: Option<&LlmConfig>, config: &Value) -> Enhancement {
    let Some(llm) = llm else {
        return Enhancement { enhanced: prompt::enhance_locally(config), source: "local", error: None };
    };
    match ask(http, llm, config).await {
        Ok(enhanced) => Enhancement { enhanced, source: "llm", error: None },
        Err(error) => {
            tracing::warn!(error = %error, "prompt enhancement by the LLM failed; enhanced locally");
            Enhancement { enhanced: prompt::enhance_locally(config), source: "local_fallback", error: Some(error) }
        }
    }
}

async fn ask(http: &reqwest::Client, llm: &LlmConfig, config: &Value) -> Result<Enhanced, String> {
    let input = json!({
        "system_prompt": config["system_prompt"],
        "starting_instructions": config["starting_instructions"],
        "metadata_schema": config["metadata_schema"],
        "guidelines": config["guidelines"],
        "examples": config["examples"],
    });
    let body = json!({
        "model": llm.model,
        "temperature": 0,
        "messages": [
            { "role": "system", "content": INSTRUCTIONS },
            { "role": "user", "content": input.to_string() }
        ],
        "response_format": response_schema(),
    });
    let mut request = http
        .post(format!("{}/chat/completions", llm.base_url.trim_end_matches('/')))
        .timeout(Duration::from_secs(60))
        .json(&body);
    if let Some(key) = &llm.api_key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.map_err(|e| format!("LLM unreachable: {}", e.without_url()))?;
    let status = response.status();
    let answer: Value = response.json().await.map_err(|e| format!("LLM answered {status} with no JSON: {e}"))?;
    if !status.is_success() {
        let message = answer["error"]["message"].as_str().unwrap_or("no message");
        return Err(format!("LLM answered {status}: {message}"));
    }
    let choice = &answer["choices"][0];
    if let Some(refusal) = choice["message"]["refusal"].as_str() {
        return Err(format!("LLM refused: {refusal}"));
    }
    match choice["finish_reason"].as_str() {
        Some("stop") | None => {}
        Some(other) => return Err(format!("LLM stopped early: {other}")),
    }
    let content = choice["message"]["content"].as_str().ok_or("LLM answer has no content")?;
    let parsed: Value = serde_json::from_str(content).map_err(|e| format!("LLM content is not JSON: {e}"))?;
    let text = |key: &str| parsed[key].as_str().map(str::to_string).ok_or(format!("LLM content lacks {key}"));
    let suggestions = parsed["suggestions"]
        .as_array()
        .ok_or("LLM content lacks suggestions")?
        .iter()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect();
    Ok(Enhanced {
        enhanced_system_prompt: text("enhanced_system_prompt")?,
        enhanced_starting_instructions: text("enhanced_starting_instructions")?,
        suggestions,
    })
}
