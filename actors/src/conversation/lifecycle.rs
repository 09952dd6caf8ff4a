//! A conversation's lifecycle rules, as pure functions the conversation
//! actor applies in its own order: the bot answers only while the
//! conversation is open with the bot on; escalation pauses the bot; the
//! first agent reply is timed; a close asks for a rating; a customer's reply
//! to that question is the rating, and any other message reopens.

use crate::conversation::error::ConversationError;
use utalk_storage::model::{
    AuthorType, Conversation, ConversationStatus, Escalation, EscalationReason, FirstContact, Rating, RatingKind, RatingSource,
};
use utalk_storage::Timestamp;
use uuid::Uuid;

/// The question asked after a close, and after a CSAT answer.
pub fn rating_question(kind: RatingKind) -> &'static str {
    match kind {
        RatingKind::Csat => {
            "¿Cómo calificarías la atención que recibiste? Responde con un número del 1 al 5. / How would you rate our service? Reply with a number from 1 to 5."
        }
        RatingKind::Nps => {
            "¿Qué tan probable es que nos recomiendes? Responde del 0 al 10. / How likely are you to recommend us? Reply from 0 to 10."
        }
    }
}

/// Reads a rating reply: a short message that starts with a number in the
/// question's range ("5", "5/5", "9 gracias"); anything else is not a rating.
pub fn parse_rating(kind: RatingKind, text: Option<&str>) -> Option<u8> {
    let t = text?.trim();
    if t.chars().count() > 24 {
        return None;
    }
    let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
    let rest = &t[digits.len()..];
    if rest.starts_with(|c: char| c.is_alphanumeric()) {
        return None;
    }
    let n: u8 = digits.parse().ok()?;
    kind.range().contains(&n).then_some(n)
}

/// What appending a message does to its conversation.
#[derive(Debug, Default)]
pub struct AppendEffects {
    /// The conversation after the message, when it changes.
    pub conversation: Option<Conversation>,
    /// Whether the change is news for `conversation:updated` (a reopen, not a counter).
    pub publish: bool,
    /// A rating the message gave.
    pub rating: Option<Rating>,
    /// System messages to append right after it.
    pub follow_ups: Vec<String>,
}

/// The effects of a message by `author` with `text` on `conv`.
///
/// # Errors
/// [`ConversationError::BotPaused`] for a bot message while the conversation
/// is escalated, closed or has its bot off: the bot never speaks after an escalation.
pub fn on_append(conv: &Conversation, author: AuthorType, text: Option<&str>, now: Timestamp) -> Result<AppendEffects, ConversationError> {
    let mut fx = AppendEffects::default();
    match author {
        AuthorType::Bot => {
            if conv.status != ConversationStatus::Open || !conv.bot_enabled {
                return Err(ConversationError::BotPaused);
            }
            let mut c = conv.clone();
            c.bot_turns += 1;
            fx.conversation = Some(c);
        }
        AuthorType::Agent if conv.first_agent_reply_at.is_none() => {
            let mut c = conv.clone();
            c.first_agent_reply_at = Some(now);
            fx.conversation = Some(c);
            fx.publish = true;
        }
        AuthorType::Customer => {
            if let Some(kind) = conv.awaiting_rating {
                if let Some(score) = parse_rating(kind, text) {
                    let mut c = conv.clone();
                    set_score(&mut c, kind, score);
                    c.awaiting_rating = match kind {
                        RatingKind::Csat => {
                            fx.follow_ups.push(rating_question(RatingKind::Nps).to_string());
                            Some(RatingKind::Nps)
                        }
                        RatingKind::Nps => None,
                    };
                    c.updated_at = now;
                    fx.rating = Some(Rating {
                        conversation_id: conv.id,
                        kind,
                        score,
                        source: RatingSource::Reply,
                        at: now,
                        agent_id: conv.assignee_id,
                    });
                    fx.conversation = Some(c);
                    fx.publish = true;
                    return Ok(fx);
                }
            }
            if conv.status == ConversationStatus::Closed {
                // A new contact: the bot answers first again, and the times of
                // this contact start afresh.
                let mut c = conv.clone();
                c.first_contact = Some(FirstContact::of(conv));
                c.contact_started_at = Some(now);
                c.status = ConversationStatus::Open;
                c.bot_enabled = true;
                c.reopened += 1;
                c.closed_at = None;
                c.awaiting_rating = None;
                c.bot_turns = 0;
                c.escalated_at = None;
                c.first_agent_reply_at = None;
                c.assignee_id = None;
                c.updated_at = now;
                fx.conversation = Some(c);
                fx.publish = true;
            }
        }
        _ => {}
    }
    Ok(fx)
}

fn set_score(c: &mut Conversation, kind: RatingKind, score: u8) {
    match kind {
        RatingKind::Csat => c.csat = Some(score),
        RatingKind::Nps => c.nps = Some(score),
    }
}

/// An escalation to apply.
#[derive(Debug, Clone)]
pub struct EscalateRequest {
    /// Why.
    pub reason: EscalationReason,
    /// Keyword, phrase or note.
    pub detail: Option<String>,
    /// Staff user, for manual escalations.
    pub by: Option<Uuid>,
    /// The bot's hand-over message (id, text), stored in the same write
    /// as the escalation, and only if the conversation was still the bot's.
    pub handoff: Option<(Uuid, String)>,
}

/// A close to apply.
#[derive(Debug, Clone)]
pub struct CloseRequest {
    /// How it was resolved.
    pub resolution: String,
    /// Resolved at first contact; default: closed without having been reopened.
    pub first_contact_resolution: Option<bool>,
    /// Send the rating question.
    pub ask_rating: bool,
}

/// What a lifecycle change does.
#[derive(Debug)]
pub struct ChangeEffects {
    /// The escalation record, when the conversation was escalated now.
    pub escalation: Option<Escalation>,
    /// Ratings given.
    pub ratings: Vec<Rating>,
    /// System messages to append.
    pub follow_ups: Vec<String>,
    /// The bot's hand-over message, appended before the follow-ups.
    pub handoff: Option<(Uuid, String)>,
}

/// Applies an escalation, a close and ratings to `c` (whose last stored seq is `last_seq`).
pub fn apply_lifecycle(
    c: &mut Conversation,
    escalate: Option<&EscalateRequest>,
    close: Option<&CloseRequest>,
    ratings: &[(RatingKind, u8, RatingSource)],
    last_seq: u64,
    now: Timestamp,
) -> ChangeEffects {
    let mut fx = ChangeEffects { escalation: None, ratings: Vec::new(), follow_ups: Vec::new(), handoff: None };
    if let Some(e) = escalate {
        if c.status == ConversationStatus::Open && c.bot_enabled {
            fx.handoff = e.handoff.clone();
        }
        // Escalated with the bot still on is repaired by escalating again.
        c.bot_enabled = false;
        if c.status != ConversationStatus::Escalated {
            c.status = ConversationStatus::Escalated;
            c.escalated_at = Some(now);
            fx.escalation = Some(Escalation {
                id: Uuid::now_v7(),
                conversation_id: c.id,
                reason: e.reason,
                detail: e.detail.clone(),
                by: e.by,
                conversation_created_at: c.contact_started_at.unwrap_or(c.created_at),
                escalated_at: now,
                after_seq: last_seq,
            });
        }
    }
    if let Some(cl) = close {
        if c.status != ConversationStatus::Closed {
            c.status = ConversationStatus::Closed;
            c.bot_enabled = false;
            c.closed_at = Some(now);
            c.resolution = Some(cl.resolution.clone());
            c.first_contact_resolution = Some(cl.first_contact_resolution.unwrap_or(c.reopened == 0));
            if cl.ask_rating {
                c.awaiting_rating = Some(RatingKind::Csat);
                fx.follow_ups.push(rating_question(RatingKind::Csat).to_string());
            }
        }
    }
    let asked = c.awaiting_rating;
    let mut api_answered = false;
    for &(kind, score, source) in ratings {
        set_score(c, kind, score);
        if c.awaiting_rating == Some(kind) {
            // CSAT, then NPS, however the customer answers (a typed reply,
            // the widget's buttons, the API): after CSAT the open question is NPS.
            c.awaiting_rating = (kind == RatingKind::Csat).then_some(RatingKind::Nps);
            api_answered |= source == RatingSource::Api;
        }
        fx.ratings.push(Rating { conversation_id: c.id, kind, score, source, at: now, agent_id: c.assignee_id });
    }
    // The widget shows its own NPS buttons; a customer rated through the API
    // (WhatsApp, an `api` conversation) is asked in the chat, as after a typed answer.
    if api_answered && asked == Some(RatingKind::Csat) && c.awaiting_rating == Some(RatingKind::Nps) {
        fx.follow_ups.push(rating_question(RatingKind::Nps).to_string());
    }
    fx
}

#[cfg(test)]
mod tests {
    use super::*;
    use utalk_storage::model::{Channel, Customer};

    fn conv() -> Conversation {
        Conversation::new(Channel::Whatsapp, Customer::default(), None)
    }

    #[test]
    fn after_csat_the_open_question_is_nps_however_it_was_answered() {
        let close = CloseRequest { resolution: "ok".into(), first_contact_resolution: None, ask_rating: true };
        for source in [RatingSource::Widget, RatingSource::Api] {
            let mut c = conv();
            apply_lifecycle(&mut c, None, Some(&close), &[], 1, Timestamp(1));
            assert_eq!(c.awaiting_rating, Some(RatingKind::Csat));
            let fx = apply_lifecycle(&mut c, None, None, &[(RatingKind::Csat, 4, source)], 2, Timestamp(2));
            assert_eq!(c.awaiting_rating, Some(RatingKind::Nps), "{source:?}");
            // The widget asks with its buttons; anyone else is asked in the chat.
            assert_eq!(fx.follow_ups.len(), usize::from(source == RatingSource::Api), "{source:?}");
            apply_lifecycle(&mut c, None, None, &[(RatingKind::Nps, 9, source)], 3, Timestamp(3));
            assert_eq!((c.csat, c.nps, c.awaiting_rating), (Some(4), Some(9), None));
        }
        // Both at once: nothing is left open and nothing more is asked.
        let mut c = conv();
        apply_lifecycle(&mut c, None, Some(&close), &[], 1, Timestamp(1));
        let both = [(RatingKind::Csat, 5, RatingSource::Api), (RatingKind::Nps, 10, RatingSource::Api)];
        let fx = apply_lifecycle(&mut c, None, None, &both, 2, Timestamp(2));
        assert_eq!(c.awaiting_rating, None);
        assert!(fx.follow_ups.is_empty());
    }

    #[test]
    fn the_bot_is_refused_once_escalated_or_paused() {
        let mut c = conv();
        assert_eq!(on_append(&c, AuthorType::Bot, Some("hola"), Timestamp(1)).unwrap().conversation.unwrap().bot_turns, 1);
        apply_lifecycle(
            &mut c,
            Some(&EscalateRequest { reason: EscalationReason::Manual, detail: None, by: None, handoff: None }),
            None,
            &[],
            3,
            Timestamp(2),
        );
        assert!(matches!(on_append(&c, AuthorType::Bot, Some("hola"), Timestamp(3)), Err(ConversationError::BotPaused)));
        let mut paused = conv();
        paused.bot_enabled = false;
        assert!(matches!(on_append(&paused, AuthorType::Bot, None, Timestamp(3)), Err(ConversationError::BotPaused)));
    }

    #[test]
    fn escalation_is_recorded_once_with_the_last_seq() {
        let mut c = conv();
        let req = EscalateRequest {
            reason: EscalationReason::Keyword,
            detail: Some("agente".into()),
            by: None,
            handoff: Some((Uuid::nil(), "h".into())),
        };
        let fx = apply_lifecycle(&mut c, Some(&req), None, &[], 7, Timestamp(10));
        let e = fx.escalation.unwrap();
        assert_eq!(e.after_seq, 7);
        assert!(fx.handoff.is_some(), "the bot still had the conversation");
        assert_eq!(c.status, ConversationStatus::Escalated);
        assert!(!c.bot_enabled);
        let again = apply_lifecycle(&mut c, Some(&req), None, &[], 9, Timestamp(11));
        assert!(again.escalation.is_none() && again.handoff.is_none());
    }

    #[test]
    fn close_asks_csat_then_nps_and_other_replies_reopen() {
        let mut c = conv();
        let close = CloseRequest { resolution: "answered".into(), first_contact_resolution: None, ask_rating: true };
        let fx = apply_lifecycle(&mut c, None, Some(&close), &[], 3, Timestamp(5));
        assert_eq!(fx.follow_ups.len(), 1);
        assert_eq!(c.first_contact_resolution, Some(true));
        let fx = on_append(&c, AuthorType::Customer, Some(" 5 "), Timestamp(6)).unwrap();
        let c2 = fx.conversation.unwrap();
        assert_eq!((c2.csat, c2.awaiting_rating, c2.status), (Some(5), Some(RatingKind::Nps), ConversationStatus::Closed));
        assert_eq!(fx.follow_ups.len(), 1);
        let c3 = on_append(&c2, AuthorType::Customer, Some("10"), Timestamp(7)).unwrap().conversation.unwrap();
        assert_eq!((c3.nps, c3.awaiting_rating), (Some(10), None));
        let reopened = on_append(&c3, AuthorType::Customer, Some("una pregunta más"), Timestamp(8)).unwrap().conversation.unwrap();
        assert_eq!(reopened.status, ConversationStatus::Open);
        assert_eq!(reopened.reopened, 1);
        assert!(reopened.bot_enabled);
        assert_eq!(parse_rating(RatingKind::Csat, Some("6")), None);
        assert_eq!(parse_rating(RatingKind::Csat, Some("5/5")), Some(5));
        assert_eq!(parse_rating(RatingKind::Nps, Some("9 gracias")), Some(9));
        assert_eq!(parse_rating(RatingKind::Csat, Some("5pm está bien")), None);
        assert_eq!(parse_rating(RatingKind::Csat, Some("3 cosas que quiero preguntar sobre mi pedido")), None);
        assert_eq!(parse_rating(RatingKind::Nps, Some("0")), Some(0));
    }

    #[test]
    fn a_reopen_keeps_the_first_contact_and_times_the_next_from_its_start() {
        let mut c = conv();
        c.created_at = Timestamp(1_000);
        c.assignee_id = Some(Uuid::nil());
        let esc = EscalateRequest { reason: EscalationReason::Manual, detail: None, by: None, handoff: None };
        apply_lifecycle(&mut c, Some(&esc), None, &[], 1, Timestamp(61_000));
        let mut c = on_append(&c, AuthorType::Agent, Some("hola"), Timestamp(76_000)).unwrap().conversation.unwrap();
        let close = CloseRequest { resolution: "ok".into(), first_contact_resolution: None, ask_rating: false };
        apply_lifecycle(&mut c, None, Some(&close), &[], 3, Timestamp(80_000));
        let first = FirstContact::of(&c);
        assert_eq!((first.escalated, first.answer_wait_ms, first.agent_id), (true, Some(15_000), Some(Uuid::nil())));
        assert_eq!(first.answer_window, Some((Timestamp(61_000), Timestamp(76_000))), "kept for business time");

        let mut again = on_append(&c, AuthorType::Customer, Some("otra cosa"), Timestamp(500_000)).unwrap().conversation.unwrap();
        assert_eq!((again.escalated_at, again.assignee_id, again.contact_started_at), (None, None, Some(Timestamp(500_000))));
        assert_eq!(FirstContact::of(&again), first, "the first contact's figures are kept");
        let fx = apply_lifecycle(&mut again, Some(&esc), None, &[], 5, Timestamp(530_000));
        assert_eq!(fx.escalation.unwrap().conversation_created_at, Timestamp(500_000), "time to escalation counts from the new contact");
        // A second reopen keeps the first contact, not the second.
        again.status = ConversationStatus::Closed;
        let third = on_append(&again, AuthorType::Customer, Some("y otra"), Timestamp(900_000)).unwrap().conversation.unwrap();
        assert_eq!(FirstContact::of(&third), first);
    }

    #[test]
    fn the_first_agent_reply_is_timed_once() {
        let c = conv();
        let c1 = on_append(&c, AuthorType::Agent, Some("hola"), Timestamp(9)).unwrap().conversation.unwrap();
        assert_eq!(c1.first_agent_reply_at, Some(Timestamp(9)));
        assert!(on_append(&c1, AuthorType::Agent, Some("otra"), Timestamp(10)).unwrap().conversation.is_none());
    }
}
