//! The rule-based responder: intents from a knowledge file operators edit,
//! in Spanish and English, with no network.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The knowledge shipped with utalk, written to the data directory on first start.
pub const DEFAULT_KNOWLEDGE: &str = include_str!("default_knowledge.toml");

/// Why a knowledge file was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    /// The file could not be read.
    #[error("cannot read knowledge file {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("knowledge file {path} is not valid: {message}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// One intent of the knowledge file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intent {
    /// Name, recorded with each answer.
    pub name: String,
    /// Words or phrases that trigger it.
    pub patterns: Vec<String>,
    /// Answer in Spanish.
    pub answer_es: String,
    /// Answer in English.
    pub answer_en: String,
}

/// The whole knowledge file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Knowledge {
    /// Answer when nothing matches (Spanish).
    pub fallback_es: String,
    /// Answer when nothing matches (English).
    pub fallback_en: String,
    /// What the bot says when it hands over to people (Spanish).
    pub handoff_es: String,
    /// What the bot says when it hands over to people (English).
    pub handoff_en: String,
    /// Added to the bot's answers outside business hours (Spanish); `{opens}`
    /// becomes the next opening in the workspace's zone ("mañana a las 09:00 (CET)").
    #[serde(default = "default_closed_es")]
    pub closed_es: String,
    /// Added to the bot's answers outside business hours (English); `{opens}`
    /// becomes the next opening ("tomorrow at 09:00 (CET)").
    #[serde(default = "default_closed_en")]
    pub closed_en: String,
    /// The hand-over outside business hours (Spanish): people answer at `{opens}`.
    #[serde(default = "default_closed_handoff_es")]
    pub closed_handoff_es: String,
    /// The hand-over outside business hours (English).
    #[serde(default = "default_closed_handoff_en")]
    pub closed_handoff_en: String,
    /// The intents.
    #[serde(default)]
    pub intents: Vec<Intent>,
}

// Knowledge files written before business hours have none of the closed
// texts: they get these, the same as the default file's.
fn default_closed_es() -> String {
    "Ahora estamos fuera de horario; nuestro equipo vuelve {opens}.".into()
}
fn default_closed_en() -> String {
    "We're closed right now; our team is back {opens}.".into()
}
fn default_closed_handoff_es() -> String {
    "Ahora estamos fuera de horario. Dejo tu conversación con nuestro equipo, que te atenderá cuando abramos, {opens}.".into()
}
fn default_closed_handoff_en() -> String {
    "We're closed right now. I've passed your conversation to our team, who will answer when we open, {opens}.".into()
}

/// The placeholder of the closed texts.
pub const OPENS: &str = "{opens}";

/// The customer's language, as far as a few words tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Spanish (the default).
    Es,
    /// English.
    En,
}

/// An answer with what it was based on.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Text to send.
    pub text: String,
    /// Intent name (`fallback` when nothing matched).
    pub intent: String,
    /// 0..1.
    pub confidence: f64,
}

/// Lowercase words without accents or punctuation.
pub fn words(text: &str) -> Vec<String> {
    let folded: String = text
        .to_lowercase()
        .chars()
        .map(|c| match c {
            'á' | 'à' | 'ä' | 'â' => 'a',
            'é' | 'è' | 'ë' | 'ê' => 'e',
            'í' | 'ì' | 'ï' | 'î' => 'i',
            'ó' | 'ò' | 'ö' | 'ô' => 'o',
            'ú' | 'ù' | 'ü' | 'û' => 'u',
            'ñ' => 'n',
            c if c.is_alphanumeric() => c,
            _ => ' ',
        })
        .collect();
    folded.split_whitespace().map(str::to_owned).collect()
}

/// Whether `phrase`'s words appear together, in order, in `text_words`.
pub fn contains_phrase(text_words: &[String], phrase: &str) -> bool {
    let p = words(phrase);
    !p.is_empty() && text_words.windows(p.len()).any(|w| w == p.as_slice())
}

/// Guesses Spanish or English from marker characters and common words.
pub fn detect_lang(text: &str) -> Lang {
    const ES: &[&str] = &[
        "hola", "quiero", "tienen", "precio", "gracias", "por", "que", "el", "la", "los", "de", "donde", "cual", "horario", "necesito",
        "buenos", "hablar", "con",
    ];
    const EN: &[&str] = &[
        "the", "is", "do", "you", "what", "hello", "hi", "price", "have", "hours", "please", "thanks", "where", "need", "want", "to",
        "talk", "with",
    ];
    if text.chars().any(|c| matches!(c, '¿' | '¡' | 'ñ' | 'á' | 'é' | 'í' | 'ó' | 'ú')) {
        return Lang::Es;
    }
    let w = words(text);
    let es = w.iter().filter(|x| ES.contains(&x.as_str())).count();
    let en = w.iter().filter(|x| EN.contains(&x.as_str())).count();
    if en > es {
        Lang::En
    } else {
        Lang::Es
    }
}

impl Knowledge {
    /// Parses a knowledge file's text.
    pub fn parse(text: &str, path: &Path) -> Result<Knowledge, KnowledgeError> {
        let k: Knowledge =
            toml::from_str(text).map_err(|e| KnowledgeError::Invalid { path: path.to_path_buf(), message: e.to_string() })?;
        for i in &k.intents {
            if i.name.trim().is_empty() || i.patterns.iter().all(|p| words(p).is_empty()) {
                return Err(KnowledgeError::Invalid {
                    path: path.to_path_buf(),
                    message: format!("intent `{}` needs a name and a pattern", i.name),
                });
            }
        }
        Ok(k)
    }

    /// The best intent for `text`, or the fallback.
    pub fn answer(&self, text: &str) -> Answer {
        let lang = detect_lang(text);
        let w = words(text);
        let mut best: Option<(&Intent, usize)> = None;
        for i in &self.intents {
            for p in &i.patterns {
                if contains_phrase(&w, p) {
                    let len = words(p).len();
                    if best.is_none_or(|(_, l)| len > l) {
                        best = Some((i, len));
                    }
                }
            }
        }
        match best {
            Some((i, len)) => {
                // A phrase, or a word that is most of a short message, is a confident match.
                let confidence = if len >= 2 || w.len() <= 4 { 0.9 } else { 0.7 };
                let text = if lang == Lang::En { &i.answer_en } else { &i.answer_es };
                Answer { text: text.clone(), intent: i.name.clone(), confidence }
            }
            None => Answer {
                text: if lang == Lang::En { self.fallback_en.clone() } else { self.fallback_es.clone() },
                intent: "fallback".into(),
                confidence: 0.1,
            },
        }
    }

    /// The hand-over message in the customer's language.
    pub fn handoff(&self, text: &str) -> String {
        if detect_lang(text) == Lang::En {
            self.handoff_en.clone()
        } else {
            self.handoff_es.clone()
        }
    }

    /// The note added outside business hours, in `lang`, with `opens` (already in that language) in place of `{opens}`.
    pub fn closed(&self, lang: Lang, opens: &str) -> String {
        let t = if lang == Lang::En { &self.closed_en } else { &self.closed_es };
        t.replace(OPENS, opens)
    }

    /// The hand-over outside business hours, in `lang`, with `opens` in place of `{opens}`.
    pub fn closed_handoff(&self, lang: Lang, opens: &str) -> String {
        let t = if lang == Lang::En { &self.closed_handoff_en } else { &self.closed_handoff_es };
        t.replace(OPENS, opens)
    }
}

/// A knowledge file read again whenever it changes on disk; a broken edit
/// keeps the last good version (and is logged).
pub struct KnowledgeFile {
    path: PathBuf,
    state: Mutex<(Option<SystemTime>, Arc<Knowledge>)>,
}

impl KnowledgeFile {
    /// Loads `path`, writing the default knowledge there first when it does not exist.
    pub fn open(path: &Path) -> Result<KnowledgeFile, KnowledgeError> {
        if !path.exists() {
            std::fs::write(path, DEFAULT_KNOWLEDGE).map_err(|source| KnowledgeError::Read { path: path.to_path_buf(), source })?;
            tracing::info!(path = %path.display(), "wrote the default bot knowledge file; edit it to teach the bot");
        }
        let text = std::fs::read_to_string(path).map_err(|source| KnowledgeError::Read { path: path.to_path_buf(), source })?;
        let k = Knowledge::parse(&text, path)?;
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        Ok(KnowledgeFile { path: path.to_path_buf(), state: Mutex::new((mtime, Arc::new(k))) })
    }

    /// The current knowledge, reloaded if the file changed.
    pub fn get(&self) -> Arc<Knowledge> {
        let mtime = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        let Ok(mut st) = self.state.lock() else {
            return Arc::new(
                Knowledge::parse(DEFAULT_KNOWLEDGE, &self.path).unwrap_or_else(|_| unreachable!("the default knowledge parses")),
            );
        };
        if mtime.is_some() && mtime != st.0 {
            st.0 = mtime;
            match std::fs::read_to_string(&self.path)
                .map_err(|source| KnowledgeError::Read { path: self.path.clone(), source })
                .and_then(|t| Knowledge::parse(&t, &self.path))
            {
                Ok(k) => {
                    tracing::info!(path = %self.path.display(), intents = k.intents.len(), "bot knowledge reloaded");
                    st.1 = Arc::new(k);
                }
                Err(e) => tracing::error!(error = %e, "bot knowledge not reloaded; keeping the previous version"),
            }
        }
        st.1.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k() -> Knowledge {
        Knowledge::parse(DEFAULT_KNOWLEDGE, Path::new("default")).expect("default parses")
    }

    #[test]
    fn intents_match_in_both_languages() {
        let a = k().answer("Hola, buenos días");
        assert_eq!(a.intent, "greeting");
        assert!(a.text.starts_with("¡Hola!"));
        assert!(a.confidence >= 0.9);
        let a = k().answer("What are your opening hours please?");
        assert_eq!(a.intent, "hours");
        assert!(a.text.starts_with("We're open"));
        let a = k().answer("¿Cuál es su HORARIO?");
        assert_eq!(a.intent, "hours");
        assert!(a.text.starts_with("Abrimos"));
    }

    #[test]
    fn nothing_matched_is_a_low_confidence_fallback() {
        let a = k().answer("xyzzy plugh");
        assert_eq!(a.intent, "fallback");
        assert!(a.confidence < 0.5);
    }

    #[test]
    fn patterns_match_whole_words_only() {
        // "hi" must not match inside "this" or "chicken".
        assert_ne!(k().answer("this chicken").intent, "greeting");
        assert!(contains_phrase(&words("¿Dónde están?"), "donde estan"));
    }

    #[test]
    fn closed_texts_come_from_the_file_in_the_customers_language() {
        let k = k();
        assert_eq!(
            k.closed(Lang::Es, "mañana a las 09:00 (CET)"),
            "Ahora estamos fuera de horario; nuestro equipo vuelve mañana a las 09:00 (CET)."
        );
        assert!(k.closed_handoff(Lang::En, "tomorrow at 09:00 (CET)").ends_with("when we open, tomorrow at 09:00 (CET)."));
        // A file from before business hours loads, with the default texts.
        let old = "fallback_es = \"?\"\nfallback_en = \"?\"\nhandoff_es = \"h\"\nhandoff_en = \"h\"\n";
        let k2 = Knowledge::parse(old, Path::new("old")).expect("an older file loads");
        assert_eq!(k2.closed(Lang::En, "x"), k.closed(Lang::En, "x"));
        assert_eq!(k2.closed_handoff(Lang::Es, "x"), k.closed_handoff(Lang::Es, "x"));
    }

    #[test]
    fn a_broken_edit_keeps_the_last_good_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("knowledge.toml");
        let f = KnowledgeFile::open(&path).expect("default written and loaded");
        assert!(f.get().intents.len() >= 5);
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, "this is = not [valid").expect("write");
        assert!(f.get().intents.len() >= 5);
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, "fallback_es = \"?\"\nfallback_en = \"?\"\nhandoff_es = \"h\"\nhandoff_en = \"h\"\n[[intents]]\nname = \"x\"\npatterns = [\"zz\"]\nanswer_es = \"a\"\nanswer_en = \"b\"\n").expect("write");
        assert_eq!(f.get().intents.len(), 1);
        assert!(Knowledge::parse("fallback_es = 1", &path).is_err());
    }
}
