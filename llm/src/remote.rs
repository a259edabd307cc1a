//! Owns the remote generation backend: an OpenAI-compatible chat-completions server on the
//! company network (llama.cpp server, vLLM, Ollama), streamed over Server-Sent Events.
//! Requests go to the configured base URL and nowhere else.

use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc::UnboundedSender;

use crate::generate::{FinishReason, GenerationEvent, GenerationParams, GenerationStats};
use crate::template::ChatMessage;
use crate::LlmError;

/// Where the remote server is and which model it should use.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// e.g. `http://127.0.0.1:8000/v1`; `/chat/completions` is appended.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    /// Whole-request limit (connect + generation).
    pub timeout: Duration,
    /// When set, a copy of every request body sent is pushed here before it is sent, for
    /// callers that must record exactly what left the machine (escalation's audit record).
    pub sent_bodies: Option<Arc<Mutex<Vec<serde_json::Value>>>>,
}

#[derive(Debug, Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Delta,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: usize,
}

/// Checks the URL once, when the backend is configured.
pub fn validate(config: &RemoteConfig) -> Result<(), LlmError> {
    let url = config.base_url.trim();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(LlmError::Remote(format!(
            "openai_base_url {url:?} must start with http:// or https://"
        )));
    }
    if config.model.trim().is_empty() {
        return Err(LlmError::Remote("openai_model is empty".into()));
    }
    Ok(())
}

/// The chat-completions request body for `messages`: exactly what [`stream_chat`] sends.
pub fn request_body(
    config: &RemoteConfig,
    messages: &[ChatMessage],
    params: &GenerationParams,
) -> serde_json::Value {
    let mut body = json!({
        "model": config.model,
        "messages": messages,
        "stream": true,
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
    });
    if let Some(p) = params.top_p {
        body["top_p"] = json!(p);
    }
    if !params.stop.is_empty() {
        body["stop"] = json!(params.stop);
    }
    body
}

/// Streams one chat completion, sending text deltas and then `Done` (or `Failed`) to
/// `events`. Runs on its own thread; returns early when `cancel` is set or the receiver
/// is gone (the connection is dropped, which stops the server's generation).
pub fn stream_chat(
    config: &RemoteConfig,
    messages: &[ChatMessage],
    params: &GenerationParams,
    events: &UnboundedSender<GenerationEvent>,
    cancel: &Arc<AtomicBool>,
) -> Result<(), LlmError> {
    let started = Instant::now();
    let url = format!(
        "{}/chat/completions",
        config.base_url.trim().trim_end_matches('/')
    );
    let body = request_body(config, messages, params);
    if let Some(sent) = &config.sent_bodies {
        if let Ok(mut sent) = sent.lock() {
            sent.push(body.clone());
        }
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(config.timeout))
        .build()
        .into();
    let mut request = agent.post(&url).header("Accept", "text/event-stream");
    if let Some(key) = &config.api_key {
        request = request.header("Authorization", &format!("Bearer {key}"));
    }
    let response = request
        .send_json(&body)
        .map_err(|e| LlmError::Remote(format!("{url}: {e}")))?;
    let reader = BufReader::new(response.into_body().into_reader());
    let mut first_token_at = None;
    let mut generated = 0usize;
    let mut prompt_tokens = 0usize;
    let mut finish = FinishReason::Stop;
    for line in reader.lines() {
        if cancel.load(Ordering::Relaxed) || events.is_closed() {
            finish = FinishReason::Cancelled;
            break;
        }
        let line = line.map_err(|e| LlmError::Remote(format!("{url}: {e}")))?;
        let Some(data) = line.strip_prefix("data:").map(str::trim) else {
            continue; // comments, event names, blank separators
        };
        if data == "[DONE]" {
            break;
        }
        let chunk: Chunk = serde_json::from_str(data)
            .map_err(|e| LlmError::Remote(format!("{url}: unexpected stream data: {e}")))?;
        if let Some(usage) = chunk.usage {
            prompt_tokens = usage.prompt_tokens;
        }
        for choice in chunk.choices {
            if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                first_token_at.get_or_insert_with(Instant::now);
                generated += 1;
                if events.send(GenerationEvent::Text(text)).is_err() {
                    return Ok(());
                }
            }
            if choice.finish_reason.as_deref() == Some("length") {
                finish = FinishReason::Length;
            }
        }
    }
    let end = Instant::now();
    let ttft = first_token_at.unwrap_or(end).duration_since(started);
    let decode_s = end
        .duration_since(first_token_at.unwrap_or(end))
        .as_secs_f64();
    let _ = events.send(GenerationEvent::Done(GenerationStats {
        prompt_tokens,
        reused_prompt_tokens: 0,
        // Stream chunks, which servers send one per token.
        generated_tokens: generated,
        time_to_first_token_s: ttft.as_secs_f64(),
        prompt_tok_s: 0.0,
        decode_tok_s: if decode_s > 0.0 {
            generated.saturating_sub(1) as f64 / decode_s
        } else {
            0.0
        },
        total_s: end.duration_since(started).as_secs_f64(),
        queued_s: 0.0,
        finish_reason: finish,
    }));
    Ok(())
}
