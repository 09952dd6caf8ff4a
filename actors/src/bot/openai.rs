//! The OpenAI-compatible responder: chat completions at a configurable base
//! URL, with a timeout, a circuit breaker, and a bounded history. Whatever
//! goes wrong, the caller falls back to the rules. The API key goes only to
//! hosts of `bot.allowed_model_hosts`: the base URL can be changed over the
//! API, the hosts only in the configuration.

use crate::bot::knowledge::Answer;
use crate::hosts::HostList;
use crate::jobs::retry::Breaker;
use serde::Deserialize;
use serde_json::json;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use utalk_storage::model::{AuthorType, Message};

/// Messages of history sent with a question, at most.
pub const MAX_HISTORY: usize = 10;
/// Characters of one history message sent, at most.
pub const MAX_MESSAGE_CHARS: usize = 1_000;

/// What the model is told.
const SYSTEM_PROMPT: &str = "You are the customer-service assistant of a store, answering customers in chat. \
Answer briefly, in the customer's language (Spanish or English). If you cannot help, or the customer asks for a person, \
answer exactly ESCALATE.";

/// Why the model gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The breaker is open after repeated failures.
    #[error("the model is failing; circuit open")]
    CircuitOpen,
    /// No API key is configured.
    #[error("no API key is configured")]
    NoKey,
    /// The base URL's host is not in `bot.allowed_model_hosts`; the key was not sent.
    #[error("the model's base URL is refused, the API key was not sent: {0}")]
    HostNotAllowed(String),
    /// No answer in time.
    #[error("no answer within {0} ms")]
    Timeout(u128),
    /// The API failed.
    #[error("{0}")]
    Failed(String),
}

/// The responder.
pub struct OpenAi {
    client: reqwest::Client,
    api_key: Option<String>,
    allowed_hosts: HostList,
    timeout: Duration,
    breaker: Mutex<Breaker>,
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
}

/// The chat messages sent for `question` after `history` (oldest first): bounded in count and length.
pub fn request_messages(history: &[Message], question: &str) -> Vec<serde_json::Value> {
    let mut out = vec![json!({"role": "system", "content": SYSTEM_PROMPT})];
    // Private notes are staff's words about the customer: never the model's.
    let public: Vec<&Message> = history.iter().filter(|m| !m.private).collect();
    let start = public.len().saturating_sub(MAX_HISTORY);
    for m in &public[start..] {
        let Some(text) = m.text.as_deref() else { continue };
        let role = if m.author.kind == AuthorType::Customer { "user" } else { "assistant" };
        out.push(json!({"role": role, "content": text.chars().take(MAX_MESSAGE_CHARS).collect::<String>()}));
    }
    out.push(json!({"role": "user", "content": question.chars().take(MAX_MESSAGE_CHARS).collect::<String>()}));
    out
}

impl OpenAi {
    /// A responder with `api_key` (none: every call fails over to the rules),
    /// sending it to hosts of `allowed_hosts` only.
    pub fn new(client: reqwest::Client, api_key: Option<String>, allowed_hosts: HostList, timeout: Duration, breaker: Breaker) -> OpenAi {
        OpenAi { client, api_key, allowed_hosts, timeout, breaker: Mutex::new(breaker) }
    }

    /// The URL of the chat completions under `base_url`: where the key is sent.
    pub fn completions_url(base_url: &str) -> String {
        format!("{}/chat/completions", base_url.trim_end_matches('/'))
    }

    /// Asks the model at `base_url` for an answer to `question`.
    pub async fn answer(&self, base_url: &str, model: &str, history: &[Message], question: &str) -> Result<Answer, ModelError> {
        let key = self.api_key.as_deref().ok_or(ModelError::NoKey)?;
        // Settings stored before the list existed (or under a wider one) may name
        // another host: the key is never sent there. Checked on the URL actually
        // requested, parsed as the HTTP client parses it.
        let url = Self::completions_url(base_url);
        self.allowed_hosts.check_url(&url).map_err(|e| ModelError::HostNotAllowed(e.to_string()))?;
        if !self.breaker.lock().map(|mut b| b.allow(Instant::now())).unwrap_or(true) {
            return Err(ModelError::CircuitOpen);
        }
        let result = self.call(key, &url, model, history, question).await;
        if let Ok(mut b) = self.breaker.lock() {
            match &result {
                Ok(_) => b.success(),
                Err(_) => b.failure(Instant::now()),
            }
        }
        result
    }

    async fn call(&self, key: &str, url: &str, model: &str, history: &[Message], question: &str) -> Result<Answer, ModelError> {
        let result = self.call_once(key, url, model, history, question).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(ModelError::Timeout(_)) => "timeout",
            Err(_) => "error",
        };
        metrics::counter!("model_requests_total", "outcome" => outcome).increment(1);
        result
    }

    async fn call_once(&self, key: &str, url: &str, model: &str, history: &[Message], question: &str) -> Result<Answer, ModelError> {
        let body = json!({"model": model, "messages": request_messages(history, question), "temperature": 0.3, "max_tokens": 300});
        let res = self.client.post(url).bearer_auth(key).json(&body).timeout(self.timeout).send().await.map_err(|e| {
            if e.is_timeout() {
                ModelError::Timeout(self.timeout.as_millis())
            } else {
                ModelError::Failed(format!("request failed: {e}"))
            }
        })?;
        let status = res.status();
        if !status.is_success() {
            return Err(ModelError::Failed(format!("HTTP {}", status.as_u16())));
        }
        let c: Completion = res.json().await.map_err(|e| {
            if e.is_timeout() {
                ModelError::Timeout(self.timeout.as_millis())
            } else {
                ModelError::Failed(format!("unreadable answer: {e}"))
            }
        })?;
        let text = c.choices.into_iter().next().and_then(|c| c.message.content).map(|t| t.trim().to_string()).unwrap_or_default();
        if text.is_empty() {
            return Err(ModelError::Failed("empty answer".into()));
        }
        if text.trim_matches(|c: char| !c.is_alphanumeric()) == "ESCALATE" {
            return Ok(Answer { text, intent: "model_escalate".into(), confidence: 0.0 });
        }
        Ok(Answer { text, intent: "model".into(), confidence: 0.8 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utalk_storage::model::{Author, Direction, MessageStatus};
    use utalk_storage::Timestamp;
    use uuid::Uuid;

    #[test]
    fn history_is_bounded_in_count_and_length() {
        let history: Vec<Message> = (0..30)
            .map(|i| Message {
                id: Uuid::new_v4(),
                conversation_id: Uuid::nil(),
                seq: i + 1,
                direction: Direction::Inbound,
                author: Author { kind: if i % 2 == 0 { AuthorType::Customer } else { AuthorType::Bot }, id: None },
                text: Some("x".repeat(5_000)),
                media_id: None,
                status: MessageStatus::Received,
                provider_id: None,
                created_at: Timestamp(0),
                media: Vec::new(),
                error_code: None,
                error_message: None,
                status_updated_at: None,
                // Every third message a note: none may reach the model.
                private: i % 3 == 2,
                template: None,
            })
            .collect();
        let msgs = request_messages(&history, "hola");
        assert!(msgs.len() > 2);
        let public: Vec<Message> = history.iter().filter(|m| !m.private).cloned().collect();
        let mut with_a_secret = public.clone();
        if let Some(last) = with_a_secret.last_mut() {
            let mut note = last.clone();
            note.private = true;
            note.text = Some("the customer owes us money".into());
            with_a_secret.push(note);
        }
        assert_eq!(request_messages(&with_a_secret, "hola"), request_messages(&public, "hola"), "a note changes nothing sent");
        assert_eq!(msgs.len(), 1 + MAX_HISTORY + 1);
        assert!(msgs.iter().all(|m| m["content"].as_str().map_or(0, |s| s.chars().count()) <= SYSTEM_PROMPT.len().max(MAX_MESSAGE_CHARS)));
        assert_eq!(msgs.last().map(|m| m["role"].clone()), Some(json!("user")));
    }
}
