//! Owns escalation: asking a larger model behind an OpenAI-compatible URL (`escalate_url`)
//! a question the small model answered. It is off unless an admin sets that URL, only
//! allowed where every retrieved passage comes from a collection the admin listed in
//! `escalate_collections`, only on a user's explicit request for that question (the
//! portal's confirmed action, `"escalate": true` on `/api/ask`, `lore ask --escalate`),
//! and only anonymised: the question, earlier turns and passages (text, title, heading,
//! path) go through one [`mask::Masker`] mapping, so the larger model sees `<EMAIL_1>`
//! where the documents say an address, and the answer shown has the values put back.
//!
//! The answer is made by the same pipeline as a local one ([`rag::answer_from`], with the
//! remote model through `lore_llm`'s OpenAI-compatible client), so it has the same
//! citations, abstention and grounding checks; its sources are the original passages and
//! it carries an [`Escalated`] marker. The request bodies sent are returned with it
//! ([`Escalation::sent`]) for the audit log.

pub mod mask;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lore_llm::{ChatMessage, Generator, RemoteConfig};
use serde::Serialize;

use crate::config::Config;
use crate::rag::{self, Abstention, Answer, AskOptions, Evidence, Quote, RagError, Source};
use crate::retrieval::Passage;
use lore_embed::Embedder;
use mask::{Mapping, MaskError, Masker};

/// What escalating can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EscalateError {
    #[error(
        "escalation to a larger model is not configured on this server: an admin sets \
         escalate_url (and escalate_collections) to allow it"
    )]
    Off,
    #[error(
        "this question cannot be escalated: its passages come from {}, which an admin has \
         not allowed to be sent to the larger model (escalate_collections)",
        quoted(.0)
    )]
    NotAllowed(Vec<String>),
    #[error("escalate_url: {0}")]
    Config(String),
    #[error("cannot anonymise the request: {0}")]
    Mask(#[from] MaskError),
    #[error(transparent)]
    Answer(#[from] RagError),
}

fn quoted(names: &[String]) -> String {
    let names: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    format!("the collection(s) {}", names.join(", "))
}

/// The marker of an escalated answer: which model wrote it, and how many distinct values
/// of each kind were hidden from it (never the values).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Escalated {
    pub model: String,
    /// e.g. `{"email": 1, "phone": 2}`.
    pub masked: BTreeMap<String, usize>,
}

/// Whether an answer may be escalated: the portal offers the action only when `available`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EscalationOffer {
    pub available: bool,
    /// Why not, when not available.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An escalated answer and exactly what was sent for it.
#[derive(Debug)]
pub struct Escalation {
    pub answer: Answer,
    /// The chat-completions request bodies sent to `escalate_url` (masked), in order: what
    /// the audit record of this answer holds.
    pub sent: Vec<serde_json::Value>,
}

/// The configured escalation target, its permissions and its masker.
#[derive(Debug, Clone)]
pub struct Escalator {
    remote: RemoteConfig,
    /// Collections whose passages may be sent; `*` allows all.
    collections: BTreeSet<String>,
    masker: Masker,
    context_tokens: usize,
}

impl Escalator {
    /// The escalator `config` describes, or `None` when `escalate_url` is unset (the
    /// default: nothing is ever escalated).
    pub fn from_config(config: &Config) -> Result<Option<Escalator>, EscalateError> {
        let Some(url) = config.escalate_url.as_deref().map(str::trim) else {
            return Ok(None);
        };
        let remote = RemoteConfig {
            base_url: url.to_string(),
            model: config
                .escalate_model
                .clone()
                .unwrap_or_else(|| "default".into()),
            api_key: config.escalate_api_key.clone(),
            timeout: Duration::from_secs(600),
            sent_bodies: None,
        };
        lore_llm::remote::validate(&remote).map_err(|e| EscalateError::Config(e.to_string()))?;
        Ok(Some(Escalator {
            remote,
            collections: config
                .escalate_collections
                .iter()
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect(),
            masker: Masker::new(&config.mask_names)?,
            context_tokens: config.context_tokens.max(512),
        }))
    }

    /// The model name requests ask for.
    pub fn model(&self) -> &str {
        &self.remote.model
    }

    fn allows(&self, collection: &str) -> bool {
        self.collections.contains("*") || self.collections.contains(collection)
    }

    /// Fails unless every passage's collection is allowed.
    pub fn check(&self, passages: &[Passage]) -> Result<(), EscalateError> {
        let refused: BTreeSet<&str> = passages
            .iter()
            .map(|p| p.collection.as_str())
            .filter(|c| !self.allows(c))
            .collect();
        if refused.is_empty() {
            Ok(())
        } else {
            Err(EscalateError::NotAllowed(
                refused.into_iter().map(String::from).collect(),
            ))
        }
    }

    /// Whether `answer` (a local one) may be escalated.
    pub fn offer(&self, answer: &Answer) -> EscalationOffer {
        let passages: Vec<Passage> = answer.sources.iter().map(|s| s.passage.clone()).collect();
        let reason = if passages.is_empty() {
            Some("no passages were found to send".to_string())
        } else if answer.abstention == Some(Abstention::WeakEvidence) {
            Some(
                "no passage is close enough to the question: the larger model would read the \
                 same passages"
                    .to_string(),
            )
        } else {
            self.check(&passages).err().map(|e| e.to_string())
        };
        EscalationOffer {
            available: reason.is_none(),
            reason,
        }
    }

    /// Answers `question` with the larger model from `retrieved` (best first, the passages
    /// a local answer would use): checks the collections, masks the question, `history`
    /// and passages with one mapping, has the larger model answer through the same
    /// pipeline as a local answer (whole passages; `evidence` only lends its scored
    /// question to pick the quote), and maps the values back into what is shown.
    pub fn escalate(
        &self,
        embedder: &Embedder,
        question: &str,
        history: &[ChatMessage],
        retrieved: Vec<Passage>,
        evidence: &Evidence,
        options: &AskOptions,
    ) -> Result<Escalation, EscalateError> {
        self.check(&retrieved)?;
        let mut mapping = Mapping::default();
        let masked_question = self.masker.mask(question.trim(), &mut mapping)?;
        let masked_history = history
            .iter()
            .map(|m| {
                Ok(ChatMessage::new(
                    &m.role,
                    self.masker.mask(&m.content, &mut mapping)?,
                ))
            })
            .collect::<Result<Vec<_>, MaskError>>()?;
        let masked: Vec<Passage> = retrieved
            .iter()
            .map(|p| self.mask_passage(p, &mut mapping))
            .collect::<Result<_, _>>()?;
        let whole = Evidence {
            question: evidence.question.clone(),
            sentences: Vec::new(),
            excerpts: rag::evidence::whole_passages(&masked, options.evidence.passages),
        };
        let sent = Arc::new(Mutex::new(Vec::new()));
        let remote = RemoteConfig {
            sent_bodies: Some(Arc::clone(&sent)),
            ..self.remote.clone()
        };
        let generator =
            Generator::remote(remote, self.context_tokens, 1).map_err(RagError::Model)?;
        let answer = rag::answer_from(
            embedder,
            &generator,
            &masked_question,
            &masked_history,
            masked,
            &whole,
            options,
            |_| ControlFlow::Continue(()),
        )?;
        let answer = unmasked(answer, question.trim(), &retrieved, &mapping, self.model());
        let sent = std::mem::take(&mut *sent.lock().unwrap_or_else(|e| e.into_inner()));
        tracing::info!(
            model = self.model(),
            masked = ?mapping.counts(),
            requests = sent.len(),
            "escalated to the larger model"
        );
        Ok(Escalation { answer, sent })
    }

    fn mask_passage(&self, p: &Passage, mapping: &mut Mapping) -> Result<Passage, MaskError> {
        Ok(Passage {
            text: self.masker.mask(&p.text, mapping)?,
            title: self.masker.mask(&p.title, mapping)?,
            doc: self.masker.mask(&p.doc, mapping)?,
            heading: p
                .heading
                .as_deref()
                .map(|h| self.masker.mask(h, mapping))
                .transpose()?,
            ..p.clone()
        })
    }
}

/// The answer as shown: values mapped back, the original passages as sources, the quote
/// located in its original passage.
fn unmasked(
    mut answer: Answer,
    question: &str,
    retrieved: &[Passage],
    mapping: &Mapping,
    model: &str,
) -> Answer {
    // Masked passages keep their document id and offsets, which find the originals.
    let original = |p: &Passage| {
        retrieved
            .iter()
            .find(|o| o.doc_id == p.doc_id && o.char_start == p.char_start)
            .cloned()
    };
    let restore = |sources: Vec<Source>| -> Vec<Source> {
        sources
            .into_iter()
            .filter_map(|s| {
                Some(Source {
                    n: s.n,
                    passage: original(&s.passage)?,
                })
            })
            .collect()
    };
    answer.question = question.to_string();
    answer.answer = mapping.unmask(&answer.answer);
    answer.unsupported = answer
        .unsupported
        .iter()
        .map(|u| mapping.unmask(u))
        .collect();
    answer.sources = restore(std::mem::take(&mut answer.sources));
    answer.citations = restore(std::mem::take(&mut answer.citations));
    answer.quote = answer.quote.take().and_then(|q| {
        let source = answer.sources.iter().find(|s| s.n == q.n)?;
        let text = mapping.unmask(&q.text);
        let at = source.passage.text.find(&text)?;
        let chars_before = source.passage.text[..at].chars().count() as u64;
        Some(Quote {
            char_start: source.passage.char_start + chars_before,
            char_end: source.passage.char_start + chars_before + text.chars().count() as u64,
            text,
            doc: source.passage.doc.clone(),
            ..q
        })
    });
    answer.escalated = Some(Escalated {
        model: model.to_string(),
        masked: mapping.counts(),
    });
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigLayer;

    fn config(layer: ConfigLayer) -> Config {
        Config::load(Some(std::path::Path::new("/dev/null")), layer).expect("config")
    }

    fn passage(collection: &str, text: &str, char_start: u64) -> Passage {
        Passage {
            rank: 1,
            score: 1.0,
            similarity: Some(0.9),
            doc: "contacts.md".into(),
            doc_id: "d1".into(),
            page: None,
            page_end: None,
            heading: Some("Helpdesk".into()),
            title: "Contacts".into(),
            collection: collection.into(),
            char_start,
            char_end: char_start + text.chars().count() as u64,
            text: text.into(),
        }
    }

    fn escalator(collections: &[&str]) -> Escalator {
        Escalator::from_config(&config(ConfigLayer {
            escalate_url: Some("http://127.0.0.1:9/v1".into()),
            escalate_collections: Some(collections.iter().map(|c| c.to_string()).collect()),
            mask_names: Some(vec!["Ngozi Okonkwo".into()]),
            ..Default::default()
        }))
        .expect("valid")
        .expect("configured")
    }

    #[test]
    fn off_unless_a_url_is_set_and_only_for_listed_collections() {
        assert!(Escalator::from_config(&config(ConfigLayer::default()))
            .expect("valid")
            .is_none());
        let bad = Escalator::from_config(&config(ConfigLayer {
            escalate_url: Some("ftp://x".into()),
            ..Default::default()
        }));
        assert!(matches!(bad, Err(EscalateError::Config(_))), "{bad:?}");
        // A URL alone allows nothing.
        let none = escalator(&[]);
        let err = none
            .check(&[passage("hr", "x", 0)])
            .expect_err("no collection allowed");
        assert!(err.to_string().contains("\"hr\""), "{err}");
        let some = escalator(&["it"]);
        assert!(some.check(&[passage("it", "x", 0)]).is_ok());
        let err = some
            .check(&[passage("it", "x", 0), passage("hr", "y", 5)])
            .expect_err("hr is not allowed");
        assert!(matches!(&err, EscalateError::NotAllowed(c) if c == &["hr".to_string()]));
        assert!(escalator(&["*"]).check(&[passage("hr", "x", 0)]).is_ok());
    }

    #[test]
    fn the_shown_answer_has_values_sources_and_quote_restored() {
        let e = escalator(&["it"]);
        let original = passage(
            "it",
            "Intro. Ngozi Okonkwo answers on +49 30 1234567 and at vpn@corp.example.",
            100,
        );
        let mut mapping = Mapping::default();
        let masked_question = e
            .masker
            .mask("How do I reach Ngozi Okonkwo?", &mut mapping)
            .expect("mask");
        let masked = e.mask_passage(&original, &mut mapping).expect("mask");
        assert_eq!(masked_question, "How do I reach <NAME_1>?");
        assert_eq!(
            masked.text,
            "Intro. <NAME_1> answers on <PHONE_1> and at <EMAIL_1>."
        );
        let source = Source {
            n: 1,
            passage: masked.clone(),
        };
        let answer = Answer {
            question: masked_question,
            answer: "Call PHONE_1 or write to <EMAIL_1> [1].".into(),
            abstained: false,
            abstention: None,
            cited: vec![1],
            citations: vec![source.clone()],
            sources: vec![source],
            generation: None,
            retrieval_s: 0.0,
            unsupported: Vec::new(),
            quote: Some(Quote {
                text: "<NAME_1> answers on <PHONE_1> and at <EMAIL_1>.".into(),
                n: 1,
                doc: masked.doc.clone(),
                doc_id: "d1".into(),
                page: None,
                char_start: 107,
                char_end: 150,
            }),
            escalated: None,
            escalation: None,
        };
        let shown = unmasked(
            answer,
            "How do I reach Ngozi Okonkwo?",
            std::slice::from_ref(&original),
            &mapping,
            "big",
        );
        assert_eq!(
            shown.answer,
            "Call +49 30 1234567 or write to vpn@corp.example [1]."
        );
        assert_eq!(shown.question, "How do I reach Ngozi Okonkwo?");
        assert_eq!(shown.sources[0].passage.text, original.text);
        assert_eq!(shown.citations[0].passage.text, original.text);
        let quote = shown.quote.expect("quote");
        assert_eq!(
            quote.text,
            "Ngozi Okonkwo answers on +49 30 1234567 and at vpn@corp.example."
        );
        assert_eq!((quote.char_start, quote.char_end), (107, 171));
        let marker = shown.escalated.expect("marked");
        assert_eq!(marker.model, "big");
        assert_eq!(
            marker.masked,
            BTreeMap::from([
                ("email".to_string(), 1),
                ("name".to_string(), 1),
                ("phone".to_string(), 1)
            ])
        );
    }
}
