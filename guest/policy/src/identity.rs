//! Canonical agent identity. TRANSITIONAL: replaced by the full definition (NFKC, case folding,
//! invisible and mixed-script refusal) from the identity branch before this lands.

use alloc::string::String;

use crate::model::Denial;
use crate::reasons::Reason;

/// The canonical form of an agent id, or why it is refused.
pub fn canonical_agent_id(id: &str) -> Result<String, Denial> {
    if id.is_empty() || id.len() > 128 || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Denial { reason: Reason::RequestMalformed, message: alloc::format!("agent id `{id}` is not canonical") });
    }
    Ok(id.to_lowercase())
}
