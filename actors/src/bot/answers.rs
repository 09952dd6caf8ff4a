//! The bot: answers every customer message first, off the conversation
//! actor's path, unless the conversation is escalated.
//!
//! Conversation actors hand each durable customer message to a bounded
//! queue; a pool of workers decides: hand over to people (an escalation
//! keyword, an explicit request, too many bot turns, low confidence when
//! `autoEscalate`), or answer from the rules or the model (which falls back
//! to the rules). The answer is appended through the conversation actor as
//! a bot message, which the actor refuses once the conversation is
//! escalated: no bot answer can follow an escalation, whatever raced it.
//! Every decision is a bot run record, the source of the bot response time KPI.
//!
//! Outside business hours the bot still answers, and says when people are
//! back (the knowledge file's closed texts); a hand-over then says people
//! answer at the opening, the conversation is escalated at once (so the
//! queue shows it) and its assignment waits for the opening: the sweep
//! wakes then and offers every escalation still waiting.

use crate::bot::assigner::Assigner;
use crate::bot::closed::{opens_text, Told};
use crate::bot::knowledge::{contains_phrase, detect_lang, words, Answer, KnowledgeFile};
use crate::bot::openai::OpenAi;
use crate::conversation::lifecycle::EscalateRequest;
use crate::conversation::registry::Registry;
use crate::conversation::{AppendRequest, ConversationChange, ConversationError, ConversationHook};
use crate::jobs::worker::Worker;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use tokio::sync::mpsc;
use utalk_storage::model::{
    bot, conversation, message, AiConfig, Author, AuthorType, BotOutcome, BotRun, Conversation, ConversationFilter, ConversationStatus,
    Direction, EscalationReason, Message, MessageStatus, Provider,
};
use utalk_storage::{Batch, BusinessHours, Db, Timestamp};
use uuid::Uuid;

/// Phrases that ask for a person in so many words.
const EXPLICIT: &[&str] = &[
    "hablar con un agente",
    "hablar con una persona",
    "hablar con alguien",
    "hablar con un humano",
    "hablar con un asesor",
    "quiero un agente",
    "quiero una persona",
    "talk to a person",
    "talk to an agent",
    "talk to a human",
    "speak to a human",
    "speak to someone",
    "real person",
];

/// How often waiting escalations are offered to the assigner again.
const ASSIGN_SWEEP: std::time::Duration = std::time::Duration::from_secs(10);

/// Namespace of bot reply ids, derived from the message they answer.
const REPLY_NAMESPACE: Uuid = Uuid::from_u128(0x2b7e_4f1a_9c3d_4e8b_a6f2_1d5c_7e9b_3a40);

/// Work for the bot's workers.
#[derive(Debug)]
pub enum BotJob {
    /// Answer (or hand over) a customer message.
    Answer {
        /// The conversation as its actor had it.
        conversation: Box<Conversation>,
        /// The message.
        message: Arc<Message>,
    },
    /// Find an agent for a conversation just escalated.
    Assign(Arc<Conversation>),
}

/// What the bot has done since start.
#[derive(Debug, Default)]
pub struct BotStats {
    /// Answers sent.
    pub answered: AtomicU64,
    /// Hand-overs to people.
    pub escalated: AtomicU64,
    /// Answers refused because the conversation was escalated first.
    pub paused: AtomicU64,
    /// Model calls that fell back to the rules.
    pub fallbacks: AtomicU64,
    /// Customer messages not answered because the queue was full.
    pub dropped: AtomicU64,
    /// Answers or escalations that could not be stored.
    pub failed: AtomicU64,
}

/// The bot and its queue.
pub struct Bot {
    db: Db,
    registry: Registry,
    config: RwLock<Arc<AiConfig>>,
    knowledge: KnowledgeFile,
    model: OpenAi,
    tx: mpsc::Sender<BotJob>,
    rx: tokio::sync::Mutex<mpsc::Receiver<BotJob>>,
    workers: usize,
    assigner: OnceLock<Arc<Assigner>>,
    /// Conversations with an assignment queued, so the sweep does not queue them twice.
    assigning: std::sync::Mutex<std::collections::HashSet<Uuid>>,
    /// When people answer.
    hours: Arc<BusinessHours>,
    /// Conversations told of the current closed period.
    told: Told,
    /// Counters.
    pub stats: BotStats,
}

/// The escalation a customer message asks for, if any.
pub fn escalation_trigger(config: &AiConfig, text: &str) -> Option<(EscalationReason, String)> {
    let w = words(text);
    if let Some(p) = EXPLICIT.iter().find(|p| contains_phrase(&w, p)) {
        return Some((EscalationReason::Explicit, (*p).to_string()));
    }
    config.escalation_keywords.iter().find(|k| contains_phrase(&w, k)).map(|k| (EscalationReason::Keyword, k.clone()))
}

impl Bot {
    /// A bot with `workers` workers and a queue of `queue` messages, for a business open during `hours`.
    pub fn new(
        db: Db,
        registry: Registry,
        knowledge: KnowledgeFile,
        model: OpenAi,
        workers: usize,
        queue: usize,
        hours: Arc<BusinessHours>,
    ) -> Result<Arc<Bot>, utalk_storage::StoreError> {
        let config = bot::ai_config(&db)?;
        let (tx, rx) = mpsc::channel(queue.max(1));
        Ok(Arc::new(Bot {
            db,
            registry,
            config: RwLock::new(Arc::new(config)),
            knowledge,
            model,
            tx,
            rx: tokio::sync::Mutex::new(rx),
            workers: workers.max(1),
            assigner: OnceLock::new(),
            assigning: std::sync::Mutex::new(std::collections::HashSet::new()),
            hours,
            told: Told::default(),
            stats: BotStats::default(),
        }))
    }

    /// Sets the assigner escalated conversations go to (once, at start).
    pub fn set_assigner(&self, a: Arc<Assigner>) {
        let _ = self.assigner.set(a);
    }

    /// The settings in use.
    pub fn config(&self) -> Arc<AiConfig> {
        self.config.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// Uses `config` from now on (after it was stored).
    pub fn use_config(&self, config: AiConfig) {
        if let Ok(mut c) = self.config.write() {
            *c = Arc::new(config);
        }
    }

    fn enqueue(&self, job: BotJob) {
        if let Err(e) = self.tx.try_send(job) {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "bot queue full; a job was dropped");
        }
    }

    /// Offers escalated conversations that wait unassigned to the assigner
    /// again, for agents who came online or freed a slot since (on the
    /// leading node only, in a cluster).
    async fn sweep(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.until_next_sweep(Timestamp::now())).await;
            // Closed: the assigner would refuse every one; they wait for the opening.
            if self.assigner.get().is_none() || !self.hours.is_open(Timestamp::now()) {
                continue;
            }
            // In a cluster one node sweeps (it sees the staff online on every
            // node): sweeps on several would offer the same conversations at once.
            if !crate::cluster::leads(self.registry.journal().cluster().as_ref()) {
                continue;
            }
            let filter = ConversationFilter { status: Some(ConversationStatus::Escalated), ..ConversationFilter::default() };
            let mut after = None;
            loop {
                match conversation::list(&self.db, &filter, after, 500) {
                    Ok((items, next)) => {
                        for c in items.into_iter().filter(|c| c.assignee_id.is_none()) {
                            self.offer(Arc::new(c));
                        }
                        match next {
                            Some(n) => after = Some(n),
                            None => break,
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "listing unassigned escalations failed");
                        break;
                    }
                }
            }
        }
    }

    /// How long the sweep sleeps: [`ASSIGN_SWEEP`], or less when the business
    /// opens sooner, so that escalations made while closed are offered as it opens.
    fn until_next_sweep(&self, now: Timestamp) -> std::time::Duration {
        let opens = if self.hours.is_open(now) { None } else { self.hours.next_opening(now) };
        match opens {
            // A millisecond past the opening, so that the sweep finds it open.
            Some(o) => std::time::Duration::from_millis(u64::try_from(o.millis() - now.millis() + 1).unwrap_or(0)).min(ASSIGN_SWEEP),
            None => ASSIGN_SWEEP,
        }
    }

    /// Queues an assignment unless one for the same conversation is queued already.
    fn offer(&self, conv: Arc<Conversation>) {
        let fresh = self.assigning.lock().map(|mut q| q.insert(conv.id)).unwrap_or(true);
        if fresh {
            self.enqueue(BotJob::Assign(conv));
        }
    }

    async fn work(self: Arc<Self>) {
        let sweep = self.clone().sweep();
        let workers = (0..self.workers).map(|_| {
            let me = self.clone();
            async move {
                loop {
                    let job = me.rx.lock().await.recv().await;
                    match job {
                        Some(BotJob::Answer { conversation, message }) => me.answer(*conversation, message).await,
                        Some(BotJob::Assign(c)) => {
                            if let Some(a) = me.assigner.get() {
                                a.assign(&c).await;
                            }
                            if let Ok(mut q) = me.assigning.lock() {
                                q.remove(&c.id);
                            }
                        }
                        None => return,
                    }
                }
            }
        });
        futures_util::future::join(futures_util::future::join_all(workers), sweep).await;
    }

    /// Decides and acts on one customer message.
    async fn answer(&self, conv: Conversation, msg: Arc<Message>) {
        let cfg = self.config();
        if !cfg.enabled || conv.status != ConversationStatus::Open || !conv.bot_enabled || msg.author.kind != AuthorType::Customer {
            return;
        }
        let text = msg.text.clone().unwrap_or_default();
        let knowledge = self.knowledge.get();
        let mut provider = cfg.provider.as_str().to_string();
        // Outside business hours: when people are back, in the customer's language.
        let now = Timestamp::now();
        let lang = detect_lang(&text);
        let closed = (!self.hours.is_open(now)).then(|| {
            let opens = self.hours.next_opening(now);
            (opens, opens_text(&self.hours, now, opens, lang))
        });
        let handoff = || match &closed {
            Some((_, opens)) => knowledge.closed_handoff(lang, opens),
            None => knowledge.handoff(&text),
        };
        let (mut answer, escalation) = if let Some((reason, detail)) = escalation_trigger(&cfg, &text) {
            (Answer { text: handoff(), intent: "handoff".into(), confidence: 1.0 }, Some((reason, Some(detail))))
        } else if cfg.auto_escalate && conv.bot_turns >= cfg.max_bot_turns {
            (Answer { text: handoff(), intent: "handoff".into(), confidence: 1.0 }, Some((EscalationReason::MaxTurns, None)))
        } else {
            let a = match cfg.provider {
                Provider::Rules => knowledge.answer(&text),
                Provider::Openai => {
                    let history = self.history(&msg);
                    match self.model.answer(&cfg.base_url, &cfg.model, &history, &text).await {
                        Ok(a) => a,
                        Err(e) => {
                            self.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
                            if matches!(e, crate::bot::openai::ModelError::HostNotAllowed(_)) {
                                // The stored settings name a host the configuration does not allow: an operator must act.
                                tracing::error!(conversation = %conv.id, error = %e, base_url = %cfg.base_url,
                                    "bot settings name a model host outside bot.allowed_model_hosts; answering from the rules");
                            } else {
                                tracing::warn!(conversation = %conv.id, error = %e, "model failed; answering from the rules");
                            }
                            provider = "rules_fallback".into();
                            knowledge.answer(&text)
                        }
                    }
                }
            };
            if a.intent == "model_escalate" || (cfg.auto_escalate && a.confidence < cfg.confidence_threshold) {
                // The model's own ESCALATE is never shown to the customer.
                let detail = format!("{} at {:.2}", a.intent, a.confidence);
                (Answer { text: handoff(), ..a }, Some((EscalationReason::LowConfidence, Some(detail))))
            } else {
                (a, None)
            }
        };
        if let (None, Some((opens, when))) = (&escalation, &closed) {
            if self.told.first_time(conv.id, *opens, now) {
                answer.text = format!("{}\n\n{}", answer.text, knowledge.closed(lang, when));
            }
        }
        let reply_id = Uuid::new_v5(&REPLY_NAMESPACE, msg.id.as_bytes());
        let reason = escalation.as_ref().map(|(r, _)| *r);
        let outcome = match escalation {
            // The hand-over message and the escalation are one write: no other
            // bot answer can slip in between them.
            Some((reason, detail)) => {
                let handoff = Some((reply_id, answer.text.clone()));
                let change = ConversationChange {
                    escalate: Some(EscalateRequest { reason, detail, by: None, handoff }),
                    ..ConversationChange::default()
                };
                match self.registry.call(conv.id, change).await {
                    Ok(_) if matches!(message::locate(&self.db, reply_id), Ok(Some(_))) => BotOutcome::Escalated,
                    // Someone escalated or closed it first: our hand-over was not needed.
                    Ok(_) | Err(ConversationError::Closed) => BotOutcome::Paused,
                    Err(e) => {
                        tracing::error!(conversation = %conv.id, error = %e, "escalating failed");
                        BotOutcome::Failed
                    }
                }
            }
            None => {
                let req = AppendRequest {
                    message_id: reply_id,
                    author: Author { kind: AuthorType::Bot, id: None },
                    direction: Direction::Outbound,
                    text: Some(answer.text.clone()),
                    media_id: None,
                    status: MessageStatus::Sent,
                    provider_id: None,
                    media: Vec::new(),
                    extra: Batch::new(),
                    private: false,
                    template: None,
                };
                match self.registry.call(conv.id, req).await {
                    Ok(_) => BotOutcome::Answered,
                    Err(ConversationError::BotPaused) => BotOutcome::Paused,
                    Err(e) => {
                        tracing::error!(conversation = %conv.id, error = %e, "storing the bot's answer failed");
                        BotOutcome::Failed
                    }
                }
            }
        };
        match outcome {
            BotOutcome::Answered => &self.stats.answered,
            BotOutcome::Escalated => &self.stats.escalated,
            BotOutcome::Paused => &self.stats.paused,
            BotOutcome::Failed => &self.stats.failed,
        }
        .fetch_add(1, Ordering::Relaxed);
        let now = Timestamp::now();
        let run = BotRun {
            id: Uuid::now_v7(),
            conversation_id: conv.id,
            message_id: msg.id,
            reply_id: matches!(outcome, BotOutcome::Answered | BotOutcome::Escalated).then_some(reply_id),
            received_at: msg.created_at,
            finished_at: now,
            latency_ms: (now.millis() - msg.created_at.millis()).max(0) as u64,
            intent: answer.intent,
            confidence: answer.confidence,
            provider,
            outcome,
            escalation_reason: reason.map(|r| format!("{r:?}").to_lowercase()),
        };
        let outcome = match run.outcome {
            utalk_storage::model::BotOutcome::Answered => "answered",
            utalk_storage::model::BotOutcome::Escalated => "escalated",
            utalk_storage::model::BotOutcome::Paused => "paused",
            utalk_storage::model::BotOutcome::Failed => "failed",
        };
        metrics::counter!("bot_responses_total", "outcome" => outcome, "provider" => run.provider.clone()).increment(1);
        let mut b = Batch::new();
        // Through the log in a cluster, so that every node's KPIs count the run.
        let stored = match bot::put_run(&mut b, &run) {
            Ok(_) => self.registry.journal().commit(b).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = stored {
            tracing::error!(error = %e, "storing a bot run failed");
        }
    }

    /// The messages before `msg`, at most the model's history bound.
    fn history(&self, msg: &Message) -> Vec<Message> {
        let n = crate::bot::openai::MAX_HISTORY as u64;
        let from = msg.seq.saturating_sub(n + 1);
        message::after(&self.db, msg.conversation_id, from, n as usize)
            .map(|v| v.into_iter().filter(|m| m.seq < msg.seq).collect())
            .unwrap_or_default()
    }
}

impl ConversationHook for Bot {
    fn customer_message(&self, conv: &Conversation, message: &Arc<Message>) {
        if conv.status == ConversationStatus::Open && conv.bot_enabled {
            self.enqueue(BotJob::Answer { conversation: Box::new(conv.clone()), message: message.clone() });
        }
    }

    fn escalated(&self, conv: &Arc<Conversation>) {
        self.offer(conv.clone());
    }
}

impl Worker for Bot {
    const NAME: &'static str = "bot";
    fn run(self: Arc<Self>) -> impl std::future::Future<Output = ()> + 'static {
        self.work()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_requests_and_keywords_escalate() {
        let cfg = AiConfig::default();
        assert_eq!(escalation_trigger(&cfg, "Quiero hablar con un agente, por favor").map(|t| t.0), Some(EscalationReason::Explicit));
        assert_eq!(escalation_trigger(&cfg, "can I talk to a person?").map(|t| t.0), Some(EscalationReason::Explicit));
        assert_eq!(escalation_trigger(&cfg, "pásame con un ASESOR").map(|t| t.0), Some(EscalationReason::Keyword));
        assert_eq!(escalation_trigger(&cfg, "¿tienen café?"), None);
        // Whole words only: "agentes" or "humanidad" are not the keywords.
        assert_eq!(escalation_trigger(&cfg, "la humanidad"), None);
    }
}
