//! Customer-chat text for the benches that index it: Spanish and English
//! messages drawn from a vocabulary of a few thousand words whose use falls
//! off by rank (Zipf), as words do in real text.
//!
//! Each language has the common words of support chats at its head
//! (function words first, accented Spanish words among them) and words
//! made of the language's syllables in its tail, so that rare words are
//! rare. A message keeps mostly to one language and borrows a word from the
//! other now and then. Everything is drawn from the caller's seeded
//! generator: the same seed gives the same text.

use rand::Rng;

const SPANISH: &[&str] = &[
    "de",
    "que",
    "la",
    "el",
    "y",
    "en",
    "no",
    "me",
    "mi",
    "por",
    "un",
    "una",
    "es",
    "con",
    "para",
    "lo",
    "se",
    "los",
    "las",
    "hola",
    "pedido",
    "gracias",
    "está",
    "favor",
    "ya",
    "pero",
    "como",
    "cuando",
    "sí",
    "muy",
    "buenas",
    "tardes",
    "días",
    "noches",
    "ayuda",
    "necesito",
    "quiero",
    "tengo",
    "puedo",
    "hace",
    "hay",
    "más",
    "todavía",
    "también",
    "aún",
    "ahora",
    "hoy",
    "mañana",
    "ayer",
    "semana",
    "envío",
    "paquete",
    "entrega",
    "llegó",
    "llega",
    "dirección",
    "número",
    "teléfono",
    "correo",
    "cuenta",
    "contraseña",
    "tarjeta",
    "pago",
    "factura",
    "facturación",
    "devolución",
    "reembolso",
    "cambio",
    "talla",
    "producto",
    "precio",
    "descuento",
    "código",
    "cupón",
    "compra",
    "tienda",
    "seguimiento",
    "información",
    "problema",
    "error",
    "aplicación",
    "página",
    "sesión",
    "cliente",
    "atención",
    "servicio",
    "respuesta",
    "mensaje",
    "llamada",
    "horario",
    "sábado",
    "domingo",
    "lunes",
    "martes",
    "miércoles",
    "jueves",
    "viernes",
    "dónde",
    "qué",
    "cómo",
    "cuándo",
    "cuánto",
    "porque",
    "entonces",
    "bien",
    "mal",
    "nada",
    "todo",
    "algo",
    "nuevo",
    "otra",
    "vez",
    "caja",
    "dañado",
    "roto",
    "equivocado",
    "cancelar",
    "cancelación",
    "suscripción",
    "plan",
    "mes",
    "cobro",
    "cobraron",
    "dos",
    "veces",
    "banco",
    "transferencia",
    "efectivo",
    "recibo",
    "confirmación",
    "stock",
    "disponible",
    "agotado",
    "color",
    "modelo",
    "garantía",
    "reparación",
    "técnico",
    "visita",
    "agente",
    "persona",
    "espera",
    "rápido",
    "urgente",
    "perfecto",
    "vale",
    "claro",
    "entiendo",
    "disculpa",
    "perdón",
    "saludos",
    "adiós",
    "canción",
    "región",
    "envíos",
    "pedidos",
    "facturas",
    "devoluciones",
    "canciones",
    "regalo",
    "casa",
    "oficina",
    "trabajo",
    "ciudad",
    "calle",
    "país",
    "nombre",
    "apellido",
    "documento",
    "identidad",
];

const ENGLISH: &[&str] = &[
    "the",
    "to",
    "i",
    "my",
    "a",
    "and",
    "is",
    "it",
    "for",
    "you",
    "of",
    "in",
    "on",
    "not",
    "have",
    "can",
    "with",
    "this",
    "order",
    "hi",
    "thanks",
    "please",
    "was",
    "but",
    "me",
    "be",
    "do",
    "when",
    "what",
    "how",
    "where",
    "why",
    "hello",
    "help",
    "need",
    "want",
    "still",
    "yet",
    "today",
    "tomorrow",
    "yesterday",
    "week",
    "shipping",
    "package",
    "delivery",
    "delivered",
    "arrived",
    "address",
    "number",
    "phone",
    "email",
    "account",
    "password",
    "card",
    "payment",
    "invoice",
    "billing",
    "refund",
    "return",
    "returns",
    "exchange",
    "size",
    "product",
    "price",
    "discount",
    "code",
    "coupon",
    "purchase",
    "store",
    "tracking",
    "information",
    "problem",
    "issue",
    "error",
    "app",
    "page",
    "login",
    "customer",
    "support",
    "service",
    "reply",
    "message",
    "call",
    "hours",
    "saturday",
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "again",
    "wrong",
    "damaged",
    "broken",
    "cancel",
    "cancellation",
    "subscription",
    "plan",
    "month",
    "charged",
    "twice",
    "bank",
    "transfer",
    "cash",
    "receipt",
    "confirmation",
    "available",
    "stock",
    "sold",
    "out",
    "color",
    "model",
    "warranty",
    "repair",
    "technician",
    "visit",
    "agent",
    "person",
    "waiting",
    "fast",
    "urgent",
    "perfect",
    "okay",
    "sure",
    "understand",
    "sorry",
    "regards",
    "bye",
    "ordered",
    "orders",
    "refunds",
    "refunding",
    "shipped",
    "shipment",
    "gift",
    "home",
    "office",
    "work",
    "city",
    "street",
    "zip",
    "country",
    "name",
    "surname",
    "document",
    "id",
];

const SPANISH_SYLLABLES: &[&str] = &[
    "ba", "be", "bi", "bo", "ca", "co", "cu", "da", "de", "di", "do", "fa", "fe", "ga", "go", "la", "le", "li", "lo", "ma", "me", "mi",
    "mo", "na", "ne", "ni", "no", "pa", "pe", "pi", "po", "ra", "re", "ri", "ro", "sa", "se", "si", "so", "ta", "te", "ti", "to", "va",
    "ve", "vi", "za", "cha", "que", "gue", "llo", "ña", "tra", "pre", "cro", "bla",
];
const SPANISH_ENDINGS: &[&str] = &["", "", "", "s", "r", "ción", "mente", "dad", "rías", "ndo", "mos", "ría"];
const ENGLISH_SYLLABLES: &[&str] = &[
    "ab", "ac", "ad", "al", "an", "ar", "be", "con", "de", "dis", "en", "er", "ex", "for", "in", "is", "mis", "ob", "or", "per", "pre",
    "pro", "re", "sub", "ter", "un", "ver", "ward", "stan", "tle", "bor", "cal", "fin", "gro", "hap", "lim", "mar", "nor", "pol", "quin",
];
const ENGLISH_ENDINGS: &[&str] = &["", "", "", "s", "ed", "ing", "tion", "ness", "ly", "ment", "er", "able"];

/// Words per language: the common ones above, then made-up ones.
pub const WORDS_PER_LANGUAGE: usize = 2_500;

/// One language's vocabulary, by rank.
struct Language {
    words: Vec<String>,
    /// Running sum of the words' weights (1 / (rank + 1)).
    cumulative: Vec<f64>,
    /// How many times each word was written.
    uses: Vec<u64>,
    question: (&'static str, &'static str),
}

impl Language {
    fn new(common: &[&str], syllables: &[&str], endings: &[&str], question: (&'static str, &'static str), rng: &mut impl Rng) -> Language {
        let mut words: Vec<String> = common.iter().map(|w| w.to_string()).collect();
        let mut seen: std::collections::HashSet<String> = words.iter().cloned().collect();
        while words.len() < WORDS_PER_LANGUAGE {
            let n = rng.gen_range(2..=4);
            let mut w: String = (0..n).map(|_| syllables[rng.gen_range(0..syllables.len())]).collect();
            w.push_str(endings[rng.gen_range(0..endings.len())]);
            if w.chars().count() >= 4 && seen.insert(w.clone()) {
                words.push(w);
            }
        }
        let mut total = 0.0;
        let cumulative = (0..words.len())
            .map(|r| {
                total += 1.0 / (r + 1) as f64;
                total
            })
            .collect();
        let uses = vec![0; words.len()];
        Language { words, cumulative, uses, question }
    }

    fn pick(&mut self, rng: &mut impl Rng) -> usize {
        let total = *self.cumulative.last().expect("words");
        let x = rng.gen_range(0.0..total);
        self.cumulative.partition_point(|&c| c <= x).min(self.words.len() - 1)
    }
}

/// A generator of chat messages.
pub struct ChatText {
    languages: [Language; 2],
    /// The order numbers written, in order.
    numbers: Vec<u32>,
}

impl ChatText {
    /// The vocabulary (drawn from `rng`).
    pub fn new(rng: &mut impl Rng) -> ChatText {
        let es = Language::new(SPANISH, SPANISH_SYLLABLES, SPANISH_ENDINGS, ("¿", "?"), rng);
        let en = Language::new(ENGLISH, ENGLISH_SYLLABLES, ENGLISH_ENDINGS, ("", "?"), rng);
        ChatText { languages: [es, en], numbers: Vec::new() }
    }

    /// One message: 3 to 24 words (a few longer), 60% Spanish, with a
    /// word of the other language one time in ten and an order number now and then.
    pub fn message(&mut self, rng: &mut impl Rng) -> String {
        let lang = usize::from(rng.gen_bool(0.4));
        let mut n = 3 + rng.gen_range(0..8) + rng.gen_range(0..8) + rng.gen_range(0..8);
        if rng.gen_bool(0.05) {
            n += rng.gen_range(20..60);
        }
        let question = rng.gen_bool(0.3);
        let mut out = String::with_capacity(n * 7);
        if question {
            out.push_str(self.languages[lang].question.0);
        }
        for i in 0..n {
            if i > 0 {
                out.push_str(if rng.gen_bool(0.06) { ", " } else { " " });
            }
            if rng.gen_bool(0.01) {
                let number = rng.gen_range(100_000..1_000_000);
                self.numbers.push(number);
                out.push_str(&format!("#{number}"));
                continue;
            }
            let l = if rng.gen_bool(0.1) { 1 - lang } else { lang };
            let r = self.languages[l].pick(rng);
            self.languages[l].uses[r] += 1;
            let word = &self.languages[l].words[r];
            if i == 0 {
                let mut c = word.chars();
                if let Some(first) = c.next() {
                    out.extend(first.to_uppercase());
                    out.push_str(c.as_str());
                }
            } else {
                out.push_str(word);
            }
        }
        out.push_str(if question { self.languages[lang].question.1 } else { [".", "", "!", "."][rng.gen_range(0..4)] });
        out
    }

    /// Every word with its rank in its language and how many times it was written.
    pub fn words(&self) -> impl Iterator<Item = (&str, usize, u64)> {
        self.languages.iter().flat_map(|l| l.words.iter().zip(&l.uses).enumerate().map(|(r, (w, u))| (w.as_str(), r, *u)))
    }

    /// The order numbers written so far (six digits; a number may come again).
    pub fn numbers(&self) -> &[u32] {
        &self.numbers
    }

    /// Words in both vocabularies.
    pub fn vocabulary(&self) -> usize {
        self.languages.iter().map(|l| l.words.len()).sum()
    }
}
