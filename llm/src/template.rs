//! Owns the chat template: the Jinja template a GGUF carries in `tokenizer.chat_template`,
//! rendered with minijinja (the Rust port of the engine Hugging Face templates are written
//! for), with ChatML as the fallback when a file has none.

use candle_core::quantized::gguf_file::Content;
use minijinja::{context, Environment, ErrorKind};
use serde::Serialize;

use crate::model::metadata_string;
use crate::tokenizer::GgufVocab;
use crate::LlmError;

/// ChatML, the format of Qwen, SmolLM and many others; used when the GGUF has no template.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatMessage {
    /// "system", "user" or "assistant".
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.to_string(),
            content: content.into(),
        }
    }
}

/// A compiled chat template.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    /// True when the GGUF had no template and ChatML is used.
    pub is_fallback: bool,
}

const TEMPLATE_NAME: &str = "chat";

impl ChatTemplate {
    /// The template of `content`, or ChatML (with a warning) when there is none.
    pub fn from_gguf(content: &Content, vocab: &GgufVocab) -> Result<Self, LlmError> {
        let source = metadata_string(content, "tokenizer.chat_template");
        if source.is_none() {
            tracing::warn!("the GGUF has no tokenizer.chat_template; using ChatML");
        }
        let is_fallback = source.is_none();
        Self::new(
            source.unwrap_or_else(|| CHATML_TEMPLATE.to_string()),
            vocab.bos_token.clone().unwrap_or_default(),
            vocab.eos_token.clone().unwrap_or_default(),
            is_fallback,
        )
    }

    pub fn new(
        source: String,
        bos_token: String,
        eos_token: String,
        is_fallback: bool,
    ) -> Result<Self, LlmError> {
        let mut env = Environment::new();
        // HF templates call Python string methods (.strip(), .startswith(), …).
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |message: String| -> Result<String, _> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
        });
        env.add_template_owned(TEMPLATE_NAME, source)
            .map_err(|e| LlmError::Template(format!("{e:#}")))?;
        Ok(Self {
            env,
            bos_token,
            eos_token,
            is_fallback,
        })
    }

    /// The prompt text for `messages`, ending with the assistant's turn opener.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, LlmError> {
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| LlmError::Template(format!("{e:#}")))?;
        template
            .render(context! {
                messages => minijinja::value::Serde(messages),
                add_generation_prompt => true,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(|e| LlmError::Template(format!("{e:#}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The template Qwen2.5 instruct GGUFs carry (abridged to the non-tool branch).
    const QWEN_LIKE: &str = "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}{%- for message in messages %}{%- if (message.role == 'user') or (message.role == 'system' and not loop.first) or (message.role == 'assistant') %}{{- '<|im_start|>' + message.role + '\\n' + message.content.strip() + '<|im_end|>' + '\\n' }}{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

    #[test]
    fn renders_chatml_fallback() {
        let t = ChatTemplate::new(CHATML_TEMPLATE.into(), String::new(), String::new(), true)
            .expect("template");
        let text = t
            .render(&[
                ChatMessage::new("system", "Be brief."),
                ChatMessage::new("user", "Hi"),
            ])
            .expect("render");
        assert_eq!(
            text,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn renders_python_style_templates() {
        let t = ChatTemplate::new(QWEN_LIKE.into(), String::new(), String::new(), false)
            .expect("template");
        let text = t
            .render(&[ChatMessage::new("user", "  What?  ")])
            .expect("render");
        assert_eq!(
            text,
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn template_errors_are_reported_not_panics() {
        assert!(matches!(
            ChatTemplate::new("{% for %}".into(), String::new(), String::new(), false),
            Err(LlmError::Template(_))
        ));
        let t = ChatTemplate::new(
            "{{ raise_exception('roles must alternate') }}".into(),
            String::new(),
            String::new(),
            false,
        )
        .expect("template");
        let err = t.render(&[]).expect_err("must fail");
        assert!(err.to_string().contains("roles must alternate"), "{err}");
    }
}
