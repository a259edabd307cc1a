//! Owns generation: the model lives on its own thread, fed by a bounded queue; each request
//! carries a sender for its events (text deltas, then the final statistics). Text is sent
//! only when the decoded output has grown by whole characters, stop strings are held back
//! until they are ruled out, and a request whose receiver is dropped (or cancelled) stops.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::model::{LanguageModel, ModelInfo};
use crate::remote::RemoteConfig;
use crate::template::ChatMessage;
use crate::LlmError;

/// How to decode. The default is greedy (deterministic) with a mild repeat penalty over the
/// generated tokens only, so small models do not loop while copying from the passages stays
/// free.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationParams {
    pub max_tokens: usize,
    /// 0 means greedy.
    pub temperature: f64,
    pub top_p: Option<f64>,
    /// 1.0 disables it.
    pub repeat_penalty: f32,
    /// How many of the latest generated tokens the penalty looks at.
    pub repeat_last_n: usize,
    /// Generation ends before any of these strings; they are not part of the output.
    pub stop: Vec<String>,
    pub seed: u64,
    /// Tokens that may not start the output: the first token cannot begin with any of
    /// these strings (leading spaces ignored). Answering uses `["["]` so a small model
    /// starts with words, not with a bare citation or a copied passage header.
    #[serde(default)]
    pub banned_prefixes: Vec<String>,
}

impl Default for GenerationParams {
    fn default() -> Self {
        Self {
            max_tokens: 384,
            temperature: 0.0,
            top_p: None,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            stop: Vec::new(),
            seed: 299_792_458,
            banned_prefixes: Vec::new(),
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// End-of-turn token or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
    Cancelled,
}

/// Timing and counts of one generation.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GenerationStats {
    pub prompt_tokens: usize,
    /// Leading prompt tokens whose keys and values were kept from the previous request
    /// (the same system prompt, earlier turns of a chat), so they were not run again.
    pub reused_prompt_tokens: usize,
    pub generated_tokens: usize,
    /// Time from the start of the request (prompt processing included) to the first token.
    pub time_to_first_token_s: f64,
    pub prompt_tok_s: f64,
    pub decode_tok_s: f64,
    pub total_s: f64,
    /// Time the request waited in the queue before the model took it.
    pub queued_s: f64,
    pub finish_reason: FinishReason,
}

/// What a request's receiver sees, in order: `Text` deltas, then `Done` or `Failed`.
#[derive(Debug, Clone)]
pub enum GenerationEvent {
    Text(String),
    Done(GenerationStats),
    Failed(String),
}

struct Job {
    prompt: Prompt,
    params: GenerationParams,
    events: UnboundedSender<GenerationEvent>,
    cancel: Arc<AtomicBool>,
    submitted: Instant,
}

enum Prompt {
    Chat(Vec<ChatMessage>),
    Text(String),
}

/// A running request. Dropping it cancels the generation.
pub struct GenerationHandle {
    pub events: UnboundedReceiver<GenerationEvent>,
    cancel: Arc<AtomicBool>,
}

impl GenerationHandle {
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Blocks until the end, passing each text delta to `on_text` (for the CLI; async callers
    /// read `events` directly). Returns the whole text and the statistics.
    pub fn collect_blocking(
        self,
        mut on_text: impl FnMut(&str),
    ) -> Result<(String, GenerationStats), LlmError> {
        self.collect_until(|delta| {
            on_text(delta);
            ControlFlow::Continue(())
        })
    }

    /// Like [`Self::collect_blocking`], but `on_text` may break: generation is cancelled
    /// and the result is [`LlmError::Stopped`] (e.g. the client of a stream went away).
    pub fn collect_until(
        mut self,
        mut on_text: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<(String, GenerationStats), LlmError> {
        let mut text = String::new();
        while let Some(event) = self.events.blocking_recv() {
            match event {
                GenerationEvent::Text(delta) => {
                    if on_text(&delta).is_break() {
                        return Err(LlmError::Stopped);
                    }
                    text.push_str(&delta);
                }
                GenerationEvent::Done(stats) => return Ok((text, stats)),
                GenerationEvent::Failed(reason) => return Err(LlmError::Generation(reason)),
            }
        }
        Err(LlmError::Stopped)
    }
}

impl Drop for GenerationHandle {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// Where generation happens: the local model thread, or a remote OpenAI-compatible server.
#[derive(Clone)]
enum Backend {
    Local {
        jobs: SyncSender<Job>,
        tokenizer: Box<tokenizers::Tokenizer>,
        template: Arc<crate::template::ChatTemplate>,
    },
    Remote(Arc<RemoteConfig>),
}

/// Handle to the model. Cheap to clone; a local model's thread ends when every clone is
/// gone.
#[derive(Clone)]
pub struct Generator {
    backend: Backend,
    /// Requests accepted and not finished (local: waiting for the thread; remote: running).
    queued: Arc<AtomicUsize>,
    queue_capacity: usize,
    info: ModelInfo,
}

impl Generator {
    /// Moves `model` onto its own thread. At most `queue_capacity` requests wait for it;
    /// more are refused with [`LlmError::Busy`].
    pub fn spawn(model: LanguageModel, queue_capacity: usize) -> Result<Self, LlmError> {
        let queue_capacity = queue_capacity.max(1);
        let (jobs, receiver) = sync_channel::<Job>(queue_capacity);
        let queued = Arc::new(AtomicUsize::new(0));
        let info = model.info.clone();
        let tokenizer = Box::new(model.vocab.tokenizer.clone());
        let template = Arc::clone(&model.template);
        let thread_queued = Arc::clone(&queued);
        std::thread::Builder::new()
            .name("lore-llm".into())
            .spawn(move || {
                let mut worker = Worker {
                    model,
                    cached: Vec::new(),
                };
                while let Ok(job) = receiver.recv() {
                    thread_queued.fetch_sub(1, Ordering::Relaxed);
                    worker.run(job);
                }
            })
            .map_err(|e| LlmError::Generation(format!("cannot start the model thread: {e}")))?;
        Ok(Self {
            backend: Backend::Local {
                jobs,
                tokenizer,
                template,
            },
            queued,
            queue_capacity,
            info,
        })
    }

    /// A generator that streams from a remote OpenAI-compatible server. `context_length`
    /// is the prompt + answer budget the prompt builder keeps to.
    pub fn remote(
        config: RemoteConfig,
        context_length: usize,
        max_concurrent: usize,
    ) -> Result<Self, LlmError> {
        crate::remote::validate(&config)?;
        let info = ModelInfo {
            name: config.model.clone(),
            path: std::path::PathBuf::from(&config.base_url),
            architecture: "openai".into(),
            context_length,
        };
        Ok(Self {
            backend: Backend::Remote(Arc::new(config)),
            queued: Arc::new(AtomicUsize::new(0)),
            queue_capacity: max_concurrent.max(1),
            info,
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Requests accepted and not yet taken by the model (local) or still running (remote).
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Number of tokens `text` takes as ordinary text (control-token spellings in it are not
    /// control tokens). A remote model's tokenizer is unknown here, so its count is a
    /// generous estimate (one token per 3 bytes).
    pub fn count_tokens(&self, text: &str) -> Result<usize, LlmError> {
        match &self.backend {
            Backend::Local { tokenizer, .. } => {
                Ok(crate::tokenizer::encode_text(tokenizer, text)?.len())
            }
            Backend::Remote(_) => Ok(text.len().div_ceil(3)),
        }
    }

    /// Number of tokens the prompt for `messages` takes, exactly as [`Self::chat`] will
    /// encode it (for a remote model, an estimate from a ChatML rendering).
    pub fn count_chat_tokens(&self, messages: &[ChatMessage]) -> Result<usize, LlmError> {
        match &self.backend {
            Backend::Local {
                tokenizer,
                template,
                ..
            } => Ok(crate::tokenizer::encode_prompt(
                tokenizer,
                &template.render_segments(messages)?,
            )?
            .len()),
            Backend::Remote(_) => Ok(messages
                .iter()
                .map(|m| format!("<|im_start|>{}\n{}<|im_end|>\n", m.role, m.content))
                .map(|turn| turn.len().div_ceil(3))
                .sum()),
        }
    }

    /// Queues a chat for generation.
    pub fn chat(
        &self,
        messages: Vec<ChatMessage>,
        params: GenerationParams,
    ) -> Result<GenerationHandle, LlmError> {
        self.submit(Prompt::Chat(messages), params)
    }

    /// Queues raw prompt text (already templated) for generation; a remote model gets it
    /// as one user message.
    pub fn complete(
        &self,
        prompt: String,
        params: GenerationParams,
    ) -> Result<GenerationHandle, LlmError> {
        self.submit(Prompt::Text(prompt), params)
    }

    fn submit(
        &self,
        prompt: Prompt,
        params: GenerationParams,
    ) -> Result<GenerationHandle, LlmError> {
        let (events, receiver) = unbounded_channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let handle = GenerationHandle {
            events: receiver,
            cancel: Arc::clone(&cancel),
        };
        match &self.backend {
            Backend::Local { jobs, .. } => {
                let job = Job {
                    prompt,
                    params,
                    events,
                    cancel,
                    submitted: Instant::now(),
                };
                self.queued.fetch_add(1, Ordering::Relaxed);
                match jobs.try_send(job) {
                    Ok(()) => Ok(handle),
                    Err(TrySendError::Full(_)) => {
                        self.queued.fetch_sub(1, Ordering::Relaxed);
                        Err(LlmError::Busy {
                            queued: self.queue_capacity,
                        })
                    }
                    Err(TrySendError::Disconnected(_)) => {
                        self.queued.fetch_sub(1, Ordering::Relaxed);
                        Err(LlmError::Stopped)
                    }
                }
            }
            Backend::Remote(config) => {
                if self.queued.fetch_add(1, Ordering::Relaxed) >= self.queue_capacity {
                    self.queued.fetch_sub(1, Ordering::Relaxed);
                    return Err(LlmError::Busy {
                        queued: self.queue_capacity,
                    });
                }
                let messages = match prompt {
                    Prompt::Chat(messages) => messages,
                    Prompt::Text(text) => vec![ChatMessage::new("user", text)],
                };
                let config = Arc::clone(config);
                let running = Arc::clone(&self.queued);
                let spawned = std::thread::Builder::new()
                    .name("lore-remote".into())
                    .spawn(move || {
                        let result = crate::remote::stream_chat(
                            &config, &messages, &params, &events, &cancel,
                        );
                        if let Err(e) = result {
                            tracing::warn!(error = %e, "remote generation failed");
                            let _ = events.send(GenerationEvent::Failed(e.to_string()));
                        }
                        running.fetch_sub(1, Ordering::Relaxed);
                    });
                if let Err(e) = spawned {
                    self.queued.fetch_sub(1, Ordering::Relaxed);
                    return Err(LlmError::Generation(format!("cannot start a thread: {e}")));
                }
                Ok(handle)
            }
        }
    }
}

struct Worker {
    model: LanguageModel,
    /// The tokens whose keys and values the model's cache holds, in order.
    cached: Vec<u32>,
}

impl Worker {
    /// Ids of the vocabulary entries whose text (leading whitespace ignored) starts with
    /// one of `prefixes`.
    fn tokens_starting_with(&self, prefixes: &[String]) -> Vec<u32> {
        let tokenizer = &self.model.vocab.tokenizer;
        (0..tokenizer.get_vocab_size(true) as u32)
            .filter(|&id| {
                tokenizer.decode(&[id], true).is_ok_and(|text| {
                    let text = text.trim_start();
                    prefixes
                        .iter()
                        .any(|p| !p.is_empty() && text.starts_with(p.as_str()))
                })
            })
            .collect()
    }

    /// How many leading tokens of `prompt` are kept from the cached sequence, the cache
    /// rewound to them; the last prompt token always runs again, for its logits.
    fn reuse_prefix(&mut self, prompt: &[u32]) -> usize {
        let common = self
            .cached
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count()
            .min(prompt.len().saturating_sub(1));
        if common > 0 && self.model.rewind(common) {
            common
        } else {
            0
        }
    }

    fn run(&mut self, job: Job) {
        let events = job.events.clone();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.generate(job)));
        let failure = match result {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "the model panicked during generation".to_string(),
        };
        tracing::error!(reason = %failure, "generation failed");
        let _ = events.send(GenerationEvent::Failed(failure));
    }

    fn generate(&mut self, job: Job) -> Result<(), LlmError> {
        let started = Instant::now();
        let queued_s = started.duration_since(job.submitted).as_secs_f64();
        if job.cancel.load(Ordering::Relaxed) || job.events.is_closed() {
            return Ok(());
        }
        let tokenizer = &self.model.vocab.tokenizer;
        let prompt = match &job.prompt {
            // Message contents are text, whatever control-token spellings they hold.
            Prompt::Chat(messages) => crate::tokenizer::encode_prompt(
                tokenizer,
                &self.model.template.render_segments(messages)?,
            )?,
            // Already templated by the caller, markup included.
            Prompt::Text(text) => tokenizer
                .encode(text.as_str(), false)
                .map_err(|e| LlmError::Tokenizer(e.to_string()))?
                .get_ids()
                .to_vec(),
        };
        if prompt.is_empty() {
            return Err(LlmError::Generation("the prompt is empty".into()));
        }
        let limit = self.model.info.context_length;
        if prompt.len() >= limit {
            return Err(LlmError::ContextOverflow {
                tokens: prompt.len(),
                limit,
            });
        }
        let params = &job.params;
        let max_tokens = params.max_tokens.min(limit - prompt.len());
        let sampling = if params.temperature <= 0.0 {
            Sampling::ArgMax
        } else {
            match params.top_p {
                Some(p) if p > 0.0 && p < 1.0 => Sampling::TopP {
                    p,
                    temperature: params.temperature,
                },
                _ => Sampling::All {
                    temperature: params.temperature,
                },
            }
        };
        let mut sampler = LogitsProcessor::from_sampling(params.seed, sampling);
        let mut output = TextStream::new(&params.stop);
        let mut generated: Vec<u32> = Vec::new();
        let reused = self.reuse_prefix(&prompt);
        // Emptied until this sequence is complete: after a failure the next request starts
        // from a fresh cache.
        self.cached.clear();
        let mut logits = self.model.forward(&prompt[reused..], reused)?;
        let mut fed = prompt.clone();
        let prompt_done = Instant::now();
        let mut first_token_at = None;
        let mut finish = FinishReason::Length;
        while generated.len() < max_tokens {
            if job.cancel.load(Ordering::Relaxed) {
                finish = FinishReason::Cancelled;
                break;
            }
            let next = self.sample(&mut sampler, &mut logits, &generated, params)?;
            if first_token_at.is_none() {
                first_token_at = Some(Instant::now());
            }
            if self.model.vocab.is_end_of_turn(next) {
                finish = FinishReason::Stop;
                break;
            }
            generated.push(next);
            let text = self
                .model
                .vocab
                .tokenizer
                .decode(&generated, true)
                .map_err(|e| LlmError::Tokenizer(e.to_string()))?;
            let (delta, stopped) = output.push(&text);
            if !delta.is_empty() && job.events.send(GenerationEvent::Text(delta)).is_err() {
                finish = FinishReason::Cancelled;
                break;
            }
            if stopped {
                finish = FinishReason::Stop;
                break;
            }
            if generated.len() >= max_tokens {
                break;
            }
            logits = self
                .model
                .forward(&[next], prompt.len() + generated.len() - 1)?;
            fed.push(next);
        }
        self.cached = fed;
        if finish != FinishReason::Cancelled {
            let rest = output.finish();
            if !rest.is_empty() {
                let _ = job.events.send(GenerationEvent::Text(rest));
            }
        }
        let end = Instant::now();
        let prompt_s = prompt_done.duration_since(started).as_secs_f64();
        let decode_s = end
            .duration_since(first_token_at.unwrap_or(prompt_done))
            .as_secs_f64();
        let stats = GenerationStats {
            prompt_tokens: prompt.len(),
            reused_prompt_tokens: reused,
            generated_tokens: generated.len(),
            time_to_first_token_s: first_token_at
                .unwrap_or(end)
                .duration_since(started)
                .as_secs_f64(),
            prompt_tok_s: rate(prompt.len() - reused, prompt_s),
            // The first token comes from the prompt pass; the rest are decode steps.
            decode_tok_s: rate(generated.len().saturating_sub(1), decode_s),
            total_s: end.duration_since(started).as_secs_f64(),
            queued_s,
            finish_reason: finish,
        };
        tracing::debug!(?stats, "generation finished");
        let _ = job.events.send(GenerationEvent::Done(stats));
        Ok(())
    }

    fn sample(
        &self,
        sampler: &mut LogitsProcessor,
        logits: &mut [f32],
        generated: &[u32],
        params: &GenerationParams,
    ) -> Result<u32, LlmError> {
        if generated.is_empty() && !params.banned_prefixes.is_empty() {
            for id in self.tokens_starting_with(&params.banned_prefixes) {
                if let Some(logit) = logits.get_mut(id as usize) {
                    *logit = f32::NEG_INFINITY;
                }
            }
        }
        if params.repeat_penalty != 1.0 && !generated.is_empty() {
            let start = generated.len().saturating_sub(params.repeat_last_n);
            apply_repeat_penalty(logits, params.repeat_penalty, &generated[start..]);
        }
        let tensor = Tensor::new(&*logits, &Device::Cpu)?;
        Ok(sampler.sample(&tensor)?)
    }
}

fn rate(count: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// The CTRL-paper penalty llama.cpp and candle use: positive logits divided, negative
/// multiplied, once per distinct token.
fn apply_repeat_penalty(logits: &mut [f32], penalty: f32, context: &[u32]) {
    let mut seen = std::collections::HashSet::new();
    for &token in context {
        if !seen.insert(token) {
            continue;
        }
        if let Some(logit) = logits.get_mut(token as usize) {
            if *logit >= 0.0 {
                *logit /= penalty;
            } else {
                *logit *= penalty;
            }
        }
    }
}

/// Turns the growing decoded text into deltas: nothing is emitted while the text ends in a
/// partial UTF-8 sequence (U+FFFD from a split multi-byte character) or in what may be the
/// start of a stop string.
struct TextStream {
    stop: Vec<String>,
    emitted: usize,
    text: String,
}

impl TextStream {
    fn new(stop: &[String]) -> Self {
        Self {
            stop: stop.iter().filter(|s| !s.is_empty()).cloned().collect(),
            emitted: 0,
            text: String::new(),
        }
    }

    /// Takes the whole decoded text so far; returns the new safe delta and whether a stop
    /// string was reached.
    fn push(&mut self, text: &str) -> (String, bool) {
        self.text = text.to_string();
        if let Some(at) = self
            .stop
            .iter()
            .filter_map(|s| self.text.find(s.as_str()))
            .min()
        {
            self.text.truncate(at);
            let delta = self.take_until(self.text.len());
            return (delta, true);
        }
        if self.text.ends_with('\u{FFFD}') {
            return (String::new(), false);
        }
        let mut safe = self.text.len();
        for stop in &self.stop {
            for (i, _) in stop.char_indices().skip(1) {
                if self.text.ends_with(&stop[..i]) {
                    safe = safe.min(self.text.len() - i);
                }
            }
        }
        (self.take_until(safe), false)
    }

    fn take_until(&mut self, end: usize) -> String {
        if end <= self.emitted || !self.text.is_char_boundary(end) {
            return String::new();
        }
        let Some(delta) = self.text.get(self.emitted..end) else {
            return String::new();
        };
        let delta = delta.to_string();
        self.emitted = end;
        delta
    }

    /// What was held back, at the end of generation (minus a trailing broken character).
    fn finish(&mut self) -> String {
        let end = self.text.trim_end_matches('\u{FFFD}').len();
        self.take_until(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_stream_emits_only_whole_characters() {
        let mut s = TextStream::new(&[]);
        assert_eq!(s.push("caf"), ("caf".into(), false));
        assert_eq!(s.push("caf\u{FFFD}"), (String::new(), false));
        assert_eq!(s.push("café"), ("é".into(), false));
        assert_eq!(s.finish(), "");
    }

    #[test]
    fn text_stream_holds_back_possible_stop_strings() {
        let mut s = TextStream::new(&["\nQuestion:".to_string()]);
        assert_eq!(s.push("Answer"), ("Answer".into(), false));
        assert_eq!(s.push("Answer\nQue"), (String::new(), false));
        // Not a stop after all: released.
        assert_eq!(s.push("Answer\nQueue"), ("\nQueue".into(), false));
        assert_eq!(s.push("Answer\nQueue\nQuestion: x"), (String::new(), true));
        assert_eq!(s.finish(), "");
    }

    #[test]
    fn text_stream_finish_releases_held_text() {
        let mut s = TextStream::new(&["STOP".to_string()]);
        assert_eq!(s.push("go ST"), ("go ".into(), false));
        assert_eq!(s.finish(), "ST");
    }

    fn tiny_generator() -> Generator {
        tiny_generator_queueing(2)
    }

    /// The tiny model on its thread, at most `queue_capacity` requests waiting for it.
    fn tiny_generator_queueing(queue_capacity: usize) -> Generator {
        let path = crate::test_models::model_path(crate::test_models::TINY);
        let model = LanguageModel::load(&path).expect("tiny model loads");
        Generator::spawn(model, queue_capacity).expect("spawn")
    }

    fn ask(generator: &Generator, max_tokens: usize) -> GenerationHandle {
        let params = GenerationParams {
            max_tokens,
            ..GenerationParams::default()
        };
        generator
            .chat(
                vec![ChatMessage::new(
                    "user",
                    "Write a long story about a lighthouse keeper.",
                )],
                params,
            )
            .expect("queued")
    }

    #[test]
    #[cfg_attr(
        not(feature = "real-data"),
        ignore = "needs the real models: scripts/test runs it"
    )]
    fn greedy_generation_streams_and_is_deterministic() {
        let generator = tiny_generator();
        let mut deltas = 0;
        let (first, stats) = ask(&generator, 24)
            .collect_blocking(|_| deltas += 1)
            .expect("generates");
        assert!(deltas > 1, "text must arrive in pieces");
        assert_eq!(stats.generated_tokens, 24);
        assert_eq!(stats.finish_reason, FinishReason::Length);
        assert!(stats.time_to_first_token_s > 0.0 && stats.decode_tok_s > 0.0);
        let (second, _) = ask(&generator, 24).collect_blocking(|_| {}).expect("again");
        assert_eq!(first, second);
    }

    /// A request that starts like the previous one (the same system prompt) continues from
    /// the cached keys and values, and answers exactly as a model that ran it all does.
    #[test]
    #[cfg_attr(
        not(feature = "real-data"),
        ignore = "needs the real models: scripts/test runs it"
    )]
    fn a_shared_prompt_prefix_is_reused_without_changing_the_answer() {
        let chat = |question: &str| {
            vec![
                ChatMessage::new(
                    "system",
                    "You answer questions about the lighthouse logbook. Answer in one sentence.",
                ),
                ChatMessage::new("user", question),
            ]
        };
        let params = GenerationParams {
            max_tokens: 16,
            ..GenerationParams::default()
        };
        let run = |generator: &Generator, question: &str| {
            generator
                .chat(chat(question), params.clone())
                .expect("queued")
                .collect_blocking(|_| {})
                .expect("generates")
        };
        let warm = tiny_generator();
        let (_, first) = run(&warm, "Who keeps the lighthouse?");
        assert_eq!(first.reused_prompt_tokens, 0);
        let (text, second) = run(&warm, "When is the lamp lit each evening?");
        assert!(
            second.reused_prompt_tokens > 10 && second.reused_prompt_tokens < second.prompt_tokens,
            "{second:?}"
        );
        let (fresh_text, fresh) = run(&tiny_generator(), "When is the lamp lit each evening?");
        assert_eq!(fresh.reused_prompt_tokens, 0);
        assert_eq!(text, fresh_text);
    }

    #[test]
    #[cfg_attr(
        not(feature = "real-data"),
        ignore = "needs the real models: scripts/test runs it"
    )]
    fn cancelling_stops_generation_and_frees_the_model() {
        let generator = tiny_generator();
        let mut handle = ask(&generator, 500);
        // Wait for the first text, then cancel.
        match handle.events.blocking_recv() {
            Some(GenerationEvent::Text(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
        handle.cancel();
        let stats = loop {
            match handle.events.blocking_recv() {
                Some(GenerationEvent::Done(stats)) => break stats,
                Some(GenerationEvent::Text(_)) => continue,
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(stats.finish_reason, FinishReason::Cancelled);
        assert!(stats.generated_tokens < 500);
        // A dropped handle cancels too, and the model takes the next request.
        drop(ask(&generator, 500));
        let (_, stats) = ask(&generator, 4).collect_blocking(|_| {}).expect("next");
        assert_eq!(stats.generated_tokens, 4);
    }

    /// The queue holds the capacity it was given: that many requests wait behind the running
    /// one, the next is refused as busy.
    #[test]
    #[cfg_attr(
        not(feature = "real-data"),
        ignore = "needs the real models: scripts/test runs it"
    )]
    fn a_full_queue_is_refused() {
        for capacity in [1, 3] {
            let generator = tiny_generator_queueing(capacity);
            let running = ask(&generator, 200);
            // Until the model thread has taken the running request, it occupies a slot too.
            while generator.queue_depth() > 0 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let hi = || {
                generator.chat(
                    vec![ChatMessage::new("user", "hi")],
                    GenerationParams::default(),
                )
            };
            let queued: Vec<_> = (0..capacity).map(|_| hi().expect("a free slot")).collect();
            assert_eq!(generator.queue_depth(), capacity);
            match hi() {
                Err(LlmError::Busy { queued }) => assert_eq!(queued, capacity),
                other => panic!("capacity {capacity}: expected Busy, got {:?}", other.err()),
            }
            drop(queued);
            drop(running);
        }
    }

    #[test]
    fn repeat_penalty_pushes_logits_down_once_per_token() {
        let mut logits = vec![2.0, -2.0, 1.0];
        apply_repeat_penalty(&mut logits, 2.0, &[0, 1, 0]);
        assert_eq!(logits, vec![1.0, -4.0, 1.0]);
    }
}
