//! One canonical agent identity: two ids name the same agent exactly when their canonical forms
//! are equal, and an id without a canonical form is refused.
//!
//! [`canonical_agent_id`] computes the form, in this order:
//!
//! 1. **Size.** An id of more than [`MAX_RAW_BYTES`] bytes is refused before any Unicode work
//!    (`agent-id-length`, 1010), so an oversized id costs nothing.
//! 2. **Refused characters** (checked on the id as given and again on its canonical form;
//!    they are refused, never stripped, so two ids that differ by one of them never merge):
//!    * whitespace: `White_Space` or general category Zs/Zl/Zp, e.g. a trailing space,
//!      NO-BREAK SPACE, IDEOGRAPHIC SPACE (`agent-id-whitespace`, 1011);
//!    * control characters: general category Cc, e.g. NUL (`agent-id-control`, 1012);
//!    * invisible characters: general category Cf or `Default_Ignorable_Code_Point`, e.g.
//!      ZERO WIDTH SPACE, ZERO WIDTH (NON-)JOINER, BYTE ORDER MARK, SOFT HYPHEN, the bidi
//!      controls, variation selectors, HANGUL FILLER (`agent-id-invisible`, 1013);
//!    * unassigned and private-use code points, whose normalisation a later Unicode version
//!      may change (`agent-id-unstable`, 1015).
//! 3. **Normalisation and case folding.** NFKC, then full default case folding (Unicode
//!    `CaseFolding.txt`, statuses C and F, no Turkic special case), then NFKC again, repeated
//!    until the string no longer changes (once for every id seen so far; at most
//!    [`MAX_ROUNDS`] rounds, else `agent-id-unstable`). This is Unicode's compatibility caseless
//!    match (D146) in composed form: fullwidth `ＡＧＥＮＴ-Ａ`, `Agent-A` and `agent-a` are
//!    one agent, and so are a decomposed `e` + COMBINING ACUTE and a precomposed `é`;
//!    `ß` folds to `ss` and the ligature `ﬁ` to `fi`.
//! 4. **Length.** The canonical form is 1 to [`MAX_CANONICAL_BYTES`] bytes of UTF-8
//!    (`agent-id-length`, 1010).
//! 5. **Confusables: one script per id.** Every character's `Script_Extensions` is taken,
//!    ignoring characters in Common or Inherited (digits, `-`, `_`, `.`, combining marks), and
//!    with Han, Hiragana, Katakana, Hangul and Bopomofo augmented to the writing systems they
//!    belong to (UTS #39 5.1). The id is accepted when these sets share a script (UTS #39
//!    "single script"), or when it is Latin plus one such writing system (UTS #39 5.2 "Highly
//!    Restrictive": Latin + Han + Hiragana + Katakana, Latin + Han + Bopomofo, Latin + Han +
//!    Hangul). Anything else, e.g. a Cyrillic `а` (U+0430) inside a Latin id, or Greek and
//!    Latin letters together, is refused (`agent-id-mixed-script`, 1014).
//!
//! What this does not catch: a whole-script confusable, an id written entirely in another
//! script that looks like a Latin one (all-Cyrillic `рауре`), is a different, single-script id
//! and so a different agent. Such an id is not merged with its look-alike; a host that keeps an
//! agent registry refuses it as unregistered, which is where that decision belongs.
//!
//! ASCII ids take a fast path with the same result: NFKC leaves ASCII unchanged and its full case
//! folding is ASCII lowercase, so they are lowercased and checked for spaces and controls.
//!
//! The Unicode data come from ICU4X (`icu_normalizer`, `icu_casemap`, `icu_properties`) in one
//! Unicode version, compiled in: the same answer natively and in the WebAssembly component.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use icu_casemap::CaseMapper;
use icu_normalizer::ComposingNormalizerBorrowed;
use icu_properties::props::{DefaultIgnorableCodePoint, GeneralCategory, Script, WhiteSpace};
use icu_properties::script::ScriptWithExtensions;
use icu_properties::{CodePointMapData, CodePointSetData};

use crate::model::Denial;
use crate::reasons::Reason;

/// The longest canonical id, in bytes of UTF-8.
pub const MAX_CANONICAL_BYTES: usize = 128;
/// The longest id looked at, in bytes of UTF-8: canonicalisation never shrinks an id below a
/// quarter of its size, so a longer one cannot fit [`MAX_CANONICAL_BYTES`].
pub const MAX_RAW_BYTES: usize = 4 * MAX_CANONICAL_BYTES;
/// Rounds of NFKC + case folding before an id that still changes is refused.
pub const MAX_ROUNDS: usize = 4;

/// Why an id has no canonical form: the reason code and a detail that names the character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdRefusal {
    /// One of the 1010-1015 `agent-id-*` reasons.
    pub reason: Reason,
    /// What is wrong, naming the offending character and its position.
    pub detail: String,
}

impl IdRefusal {
    fn new(reason: Reason, detail: String) -> IdRefusal {
        IdRefusal { reason, detail }
    }

    /// The refusal as a denial whose message names the field the id came from.
    pub fn into_denial(self, field: &str, id: &str) -> Denial {
        Denial { reason: self.reason, message: format!("`{field}` {}: {}", shown(id), self.detail) }
    }
}

/// The canonical form of an agent id (see the module documentation), or the reason it is
/// refused.
pub fn canonical_agent_id(id: &str) -> Result<String, Denial> {
    canonicalise(id).map_err(|refusal| refusal.into_denial("agent id", id))
}

/// Whether two ids name the same agent: equal canonical forms, or, when either has none, equal
/// strings (so a refused id still matches itself).
pub fn same_agent(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (canonicalise(a), canonicalise(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// [`canonical_agent_id`] with the refusal unformatted.
pub fn canonicalise(id: &str) -> Result<String, IdRefusal> {
    canonicalise_borrowed(id).map(Cow::into_owned)
}

/// [`canonicalise`] without a copy when the id is already canonical (the common case: a
/// lowercase ASCII id), for callers that only compare.
pub fn canonicalise_borrowed(id: &str) -> Result<Cow<'_, str>, IdRefusal> {
    // The common case in one pass: printable ASCII without spaces or capitals is already
    // canonical (`canonicalise_fully` would borrow it unchanged; a property test checks that).
    if is_plainly_canonical(id) {
        return Ok(Cow::Borrowed(id));
    }
    canonicalise_fully(id)
}

/// Whether `id` is 1-128 bytes of printable ASCII with no space and no capital.
fn is_plainly_canonical(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CANONICAL_BYTES
        && id.bytes().all(|b| matches!(b, b'!'..=b'~') && !b.is_ascii_uppercase())
}

/// Every check and fold of [`canonicalise_borrowed`], without its fast path.
fn canonicalise_fully(id: &str) -> Result<Cow<'_, str>, IdRefusal> {
    if id.is_empty() {
        return Err(IdRefusal::new(Reason::AgentIdLength, String::from("an agent id must not be empty")));
    }
    if id.len() > MAX_RAW_BYTES {
        return Err(IdRefusal::new(
            Reason::AgentIdLength,
            format!("{} bytes; a canonical agent id has at most {MAX_CANONICAL_BYTES}", id.len()),
        ));
    }
    let canonical = if id.is_ascii() {
        check_ascii(id)?;
        if id.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(id.to_ascii_lowercase())
        } else {
            Cow::Borrowed(id)
        }
    } else {
        check_chars(id)?;
        let folded = fold(id)?;
        if let Cow::Owned(changed) = &folded {
            check_chars(changed)?;
        }
        check_scripts(&folded)?;
        folded
    };
    if canonical.len() > MAX_CANONICAL_BYTES {
        return Err(IdRefusal::new(
            Reason::AgentIdLength,
            format!(
                "its canonical form has {} bytes; at most {MAX_CANONICAL_BYTES} are allowed",
                canonical.len()
            ),
        ));
    }
    Ok(canonical)
}

/// An id for a message: at most 64 characters, with invisible and control characters escaped.
fn shown(id: &str) -> String {
    let head: String = id.chars().take(64).collect();
    if head.len() < id.len() { format!("{head:?}...") } else { format!("{head:?}") }
}

fn refused_char(reason: Reason, position: usize, c: char, what: &str) -> IdRefusal {
    IdRefusal::new(reason, format!("character {position} is U+{:04X}, {what}", u32::from(c)))
}

fn check_ascii(id: &str) -> Result<(), IdRefusal> {
    for (position, c) in id.chars().enumerate() {
        if c.is_ascii_whitespace() || c == ' ' || c == '\u{0b}' {
            return Err(refused_char(Reason::AgentIdWhitespace, position, c, "whitespace"));
        }
        if c.is_ascii_control() {
            return Err(refused_char(Reason::AgentIdControl, position, c, "a control character"));
        }
    }
    Ok(())
}

fn check_chars(id: &str) -> Result<(), IdRefusal> {
    let categories = CodePointMapData::<GeneralCategory>::new();
    let white_space = CodePointSetData::new::<WhiteSpace>();
    let ignorable = CodePointSetData::new::<DefaultIgnorableCodePoint>();
    for (position, c) in id.chars().enumerate() {
        let category = categories.get(c);
        let refusal = match category {
            _ if white_space.contains(c) => Some((Reason::AgentIdWhitespace, "whitespace")),
            GeneralCategory::SpaceSeparator
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator => Some((Reason::AgentIdWhitespace, "whitespace")),
            GeneralCategory::Control => Some((Reason::AgentIdControl, "a control character")),
            GeneralCategory::Format => Some((Reason::AgentIdInvisible, "an invisible format character")),
            _ if ignorable.contains(c) => {
                Some((Reason::AgentIdInvisible, "a default-ignorable (invisible) character"))
            }
            GeneralCategory::Unassigned | GeneralCategory::PrivateUse | GeneralCategory::Surrogate => {
                Some((Reason::AgentIdUnstable, "unassigned or private use"))
            }
            _ => None,
        };
        if let Some((reason, what)) = refusal {
            return Err(refused_char(reason, position, c, what));
        }
    }
    Ok(())
}

/// NFKC, then rounds of case folding and NFKC until nothing changes; borrowed when the id is
/// already canonical.
fn fold(id: &str) -> Result<Cow<'_, str>, IdRefusal> {
    let nfkc = ComposingNormalizerBorrowed::new_nfkc();
    let case = CaseMapper::new();
    if let Cow::Borrowed(_) = nfkc.normalize(id)
        && let Cow::Borrowed(_) = case.fold_string(id)
    {
        return Ok(Cow::Borrowed(id));
    }
    let mut current = nfkc.normalize(id).into_owned();
    for _ in 0..MAX_ROUNDS {
        let next = match case.fold_string(&current) {
            Cow::Borrowed(_) => match nfkc.normalize(&current) {
                Cow::Borrowed(_) => return Ok(Cow::Owned(current)),
                Cow::Owned(changed) => changed,
            },
            Cow::Owned(folded) => nfkc.normalize(&folded).into_owned(),
        };
        if next == current {
            return Ok(Cow::Owned(current));
        }
        current = next;
    }
    Err(IdRefusal::new(
        Reason::AgentIdUnstable,
        format!("normalisation and case folding did not settle in {MAX_ROUNDS} rounds"),
    ))
}

/// A script, or one of the UTS #39 writing systems that several scripts make up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writing {
    Script(Script),
    /// Han with Bopomofo.
    Hanb,
    /// Japanese: Han, Hiragana, Katakana.
    Jpan,
    /// Korean: Han, Hangul.
    Kore,
}

/// The augmented script set of one character (UTS #39 5.1) into `set`; false for Common and
/// Inherited, which go with any script.
fn augmented(scripts: &[Script], set: &mut Vec<Writing>) -> bool {
    if scripts.iter().any(|s| *s == Script::Common || *s == Script::Inherited) {
        return false;
    }
    set.clear();
    set.extend(scripts.iter().map(|s| Writing::Script(*s)));
    let has = |s: Script| scripts.contains(&s);
    if has(Script::Han) {
        set.extend([Writing::Hanb, Writing::Jpan, Writing::Kore]);
    } else {
        if has(Script::Hiragana) || has(Script::Katakana) {
            set.push(Writing::Jpan);
        }
        if has(Script::Hangul) {
            set.push(Writing::Kore);
        }
        if has(Script::Bopomofo) {
            set.push(Writing::Hanb);
        }
    }
    true
}

/// Refuses an id that is neither single-script nor Latin plus one CJK writing system.
fn check_scripts(id: &str) -> Result<(), IdRefusal> {
    let extensions = ScriptWithExtensions::new();
    // Resolved sets (intersections) over all characters and over the non-Latin ones; `None`
    // until a character narrows them.
    let mut all: Option<Vec<Writing>> = None;
    let mut non_latin: Option<Vec<Writing>> = None;
    let mut first_script: Option<(usize, char)> = None;
    let mut scripts: Vec<Script> = Vec::new();
    let mut set: Vec<Writing> = Vec::new();
    for (position, c) in id.chars().enumerate() {
        scripts.clear();
        scripts.extend(extensions.get_script_extensions_val(c).iter());
        if !augmented(&scripts, &mut set) {
            continue;
        }
        let narrow = |resolved: &mut Option<Vec<Writing>>| match resolved {
            Some(r) => r.retain(|w| set.contains(w)),
            None => *resolved = Some(set.clone()),
        };
        narrow(&mut all);
        if !scripts.contains(&Script::Latin) {
            narrow(&mut non_latin);
        }
        let single = all.as_ref().is_some_and(|r| !r.is_empty());
        let latin_plus_cjk = non_latin
            .as_ref()
            .is_none_or(|r| r.iter().any(|w| matches!(w, Writing::Hanb | Writing::Jpan | Writing::Kore)));
        if !single && !latin_plus_cjk {
            let (at, earlier) = first_script.unwrap_or((position, c));
            return Err(IdRefusal::new(
                Reason::AgentIdMixedScript,
                format!(
                    "it mixes scripts: character {position} (U+{:04X}) is not in the script of character {at} (U+{:04X})",
                    u32::from(c),
                    u32::from(earlier)
                ),
            ));
        }
        first_script.get_or_insert((position, c));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use proptest::prelude::*;

    fn canon(id: &str) -> Result<String, Reason> {
        canonicalise(id).map_err(|r| r.reason)
    }

    #[test]
    fn ascii_ids_are_lowercased() {
        assert_eq!(canon("Agent-A"), Ok("agent-a".to_string()));
        assert_eq!(canon("agent-a"), Ok("agent-a".to_string()));
        assert_eq!(canon("svc:billing/2_x.y"), Ok("svc:billing/2_x.y".to_string()));
    }

    #[test]
    fn whitespace_is_refused_not_stripped() {
        for id in [
            "agent-a ",
            " agent-a",
            "agent a",
            "agent\ta",
            "agent-a\n",
            "agent\u{a0}a",
            "agent\u{3000}a",
            "agent\u{2028}a",
        ] {
            assert_eq!(canon(id), Err(Reason::AgentIdWhitespace), "{id:?}");
        }
    }

    #[test]
    fn controls_are_refused() {
        for id in ["agent-a\u{0}", "ag\u{7f}ent", "ag\u{85}ent", "agént\u{0}"] {
            let got = canon(id);
            assert!(
                got == Err(Reason::AgentIdControl) || got == Err(Reason::AgentIdWhitespace),
                "{id:?} gave {got:?}"
            );
        }
        assert_eq!(canon("agent-a\u{0}"), Err(Reason::AgentIdControl));
        assert_eq!(canon("agént\u{0}"), Err(Reason::AgentIdControl));
    }

    #[test]
    fn invisible_characters_are_refused() {
        let invisible = [
            '\u{200b}',  // zero width space
            '\u{200c}',  // zero width non-joiner
            '\u{200d}',  // zero width joiner
            '\u{feff}',  // byte order mark
            '\u{ad}',    // soft hyphen
            '\u{202e}',  // right-to-left override
            '\u{2066}',  // left-to-right isolate
            '\u{200f}',  // right-to-left mark
            '\u{fe0f}',  // variation selector 16
            '\u{3164}',  // hangul filler
            '\u{2060}',  // word joiner
            '\u{e0041}', // tag latin capital a
        ];
        for c in invisible {
            let id = format!("agent{c}-a");
            assert_eq!(canon(&id), Err(Reason::AgentIdInvisible), "U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn unassigned_and_private_use_are_refused() {
        assert_eq!(canon("agent-\u{e000}"), Err(Reason::AgentIdUnstable));
        assert_eq!(canon("agent-\u{10ffff}"), Err(Reason::AgentIdUnstable));
        assert_eq!(canon("agent-\u{0378}"), Err(Reason::AgentIdUnstable));
    }

    #[test]
    fn compatibility_forms_and_case_merge() {
        let a = canon("agent-a");
        assert_eq!(canon("ＡＧＥＮＴ－Ａ"), a, "fullwidth");
        assert_eq!(canon("ａｇｅｎｔ-ａ"), a, "fullwidth lower");
        assert_eq!(canon("AGENT-A"), a);
        let nfc = canon("agent-\u{e9}");
        assert!(nfc.is_ok());
        assert_eq!(canon("agent-e\u{301}"), nfc, "NFD equals NFC");
        assert_eq!(canon("AGENT-E\u{301}"), nfc, "NFD upper equals NFC lower");
        assert_eq!(canon("straße"), canon("STRASSE"));
        assert_eq!(canon("ﬁnance"), canon("finance"));
        assert_eq!(canon("ΣΟΦΙΑ"), canon("σοφια"));
        assert_eq!(canon("σοφιας"), canon("σοφιaσ".replace('a', "α").as_str()));
    }

    #[test]
    fn mixed_scripts_are_refused() {
        // Cyrillic a (U+0430) in a Latin id.
        assert_eq!(canon("\u{430}gent-a"), Err(Reason::AgentIdMixedScript));
        assert_eq!(canon("agent-\u{3b1}"), Err(Reason::AgentIdMixedScript), "Greek alpha");
        assert_eq!(canon("раураl"), Err(Reason::AgentIdMixedScript), "Cyrillic with a Latin l");
        // One script, or Latin with a CJK writing system, is fine.
        assert!(canon("рауре").is_ok(), "all Cyrillic");
        assert!(canon("fx-agent-✓-東京").is_ok(), "Latin + Han + a symbol");
        assert!(canon("agent-タスク-東京").is_ok(), "Latin + Japanese");
        assert!(canon("agent-에이전트").is_ok(), "Latin + Hangul");
        assert_eq!(canon("агент-에이전트"), Err(Reason::AgentIdMixedScript), "Cyrillic + Hangul");
        assert_eq!(canon("ひらがな-에이전트"), Err(Reason::AgentIdMixedScript), "Japanese + Korean");
        assert!(canon("ledger-agent-ü").is_ok());
    }

    #[test]
    fn length_is_bounded() {
        assert_eq!(canon(""), Err(Reason::AgentIdLength));
        let at_limit = "a".repeat(MAX_CANONICAL_BYTES);
        assert_eq!(canon(&at_limit), Ok(at_limit.clone()));
        assert_eq!(canon(&"a".repeat(MAX_CANONICAL_BYTES + 1)), Err(Reason::AgentIdLength));
        assert_eq!(canon(&"a".repeat(100_000)), Err(Reason::AgentIdLength));
        // Within the raw bound but too long once expanded: U+3300 (3 bytes) is 4 katakana
        // (12 bytes) after NFKC.
        assert_eq!(canon(&"\u{3300}".repeat(40)), Err(Reason::AgentIdLength));
        assert_eq!(canon("\u{3300}"), Ok("\u{30a2}\u{30d1}\u{30fc}\u{30c8}".to_string()));
        // An expansion with spaces inside is refused for them (U+FDFA).
        assert_eq!(canon("\u{fdfa}"), Err(Reason::AgentIdWhitespace));
    }

    #[test]
    fn refusals_name_the_field_and_escape_the_id() {
        let denial = canonical_agent_id("agent\u{200b}-a").err();
        let message = denial.map(|d| d.message).unwrap_or_default();
        assert!(message.contains("U+200B") && message.contains("\\u{200b}"), "{message}");
    }

    #[test]
    fn same_agent_compares_canonical_forms() {
        assert!(same_agent("Agent-A", "agent-a"));
        assert!(same_agent("ＡＧＥＮＴ-Ａ", "agent-a"));
        assert!(!same_agent("agent-a", "agent-b"));
        assert!(same_agent("agent-a ", "agent-a "), "a refused id still matches itself");
        assert!(!same_agent("agent-a ", "agent-a"));
    }

    fn id_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9_.:-]{0,20}",
            "[a-zA-ZéÉèßſﬁＡ-Ｚａ-ｚ\u{301}\u{308}\u{3a3}\u{3c3}\u{3c2}\u{430}-\u{44f} _-]{0,16}",
            "\\PC{0,12}",
            any::<String>(),
        ]
    }

    proptest! {
        /// The one-pass fast path answers exactly as the full checks and folds would.
        #[test]
        fn the_fast_path_agrees_with_the_full_canonicalisation(
            id in prop_oneof!["[!-~]{0,140}", "[a-z0-9_.:@/-]{1,130}", id_strategy()]
        ) {
            if is_plainly_canonical(&id) {
                prop_assert_eq!(canonicalise_fully(&id), Ok(Cow::Borrowed(id.as_str())));
            }
            prop_assert_eq!(canonicalise_borrowed(&id), canonicalise_fully(&id));
        }

        /// The canonical form is its own canonical form.
        #[test]
        fn canonicalisation_is_idempotent(id in id_strategy()) {
            if let Ok(canonical) = canonicalise(&id) {
                prop_assert_eq!(canonicalise(&canonical), Ok(canonical.clone()));
            }
        }

        /// No accepted id contains whitespace, a control or an invisible character, or is empty
        /// or over the bound.
        #[test]
        fn accepted_ids_are_visible_and_bounded(id in id_strategy()) {
            if let Ok(canonical) = canonicalise(&id) {
                prop_assert!(!canonical.is_empty() && canonical.len() <= MAX_CANONICAL_BYTES);
                let categories = CodePointMapData::<GeneralCategory>::new();
                let ignorable = CodePointSetData::new::<DefaultIgnorableCodePoint>();
                for c in canonical.chars().chain(id.chars()) {
                    prop_assert!(!c.is_whitespace() && !c.is_control(), "{:?}", c);
                    prop_assert!(categories.get(c) != GeneralCategory::Format, "{:?}", c);
                    prop_assert!(!ignorable.contains(c), "{:?}", c);
                }
            }
        }

        /// Case never separates two ids: an id and its upper- and lowercase forms are one agent.
        #[test]
        fn case_variants_are_one_agent(id in "[a-zA-Zéèàüß0-9-]{1,20}") {
            let upper = id.to_uppercase();
            let lower = id.to_lowercase();
            prop_assert_eq!(canonicalise(&upper), canonicalise(&id));
            prop_assert_eq!(canonicalise(&lower), canonicalise(&id));
        }
    }
}
