//! Hierarchical action kinds: `payment.refund` names one action, `payment.*` the whole
//! `payment` family at any depth, `*` every action.

/// Whether `pattern` permits the concrete action `action`.
pub fn permits(pattern: &str, action: &str) -> bool {
    covers(pattern, action)
}

/// Whether everything `inner` permits is also permitted by `outer` (pattern containment).
///
/// `a.*` covers `a.b`, `a.b.c`, `a.b.*` and `a.*`; `a.b` covers only `a.b`; `*` covers all.
pub fn covers(outer: &str, inner: &str) -> bool {
    if outer == "*" {
        return true;
    }
    match outer.strip_suffix(".*") {
        // `a.*` covers names strictly under `a.`: the `a.` prefix must be followed by more.
        Some(family) => inner
            .strip_prefix(family)
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|rest| !rest.is_empty()),
        None => outer == inner,
    }
}

/// Whether some pattern in `patterns` permits `action`.
pub fn any_permits<S: AsRef<str>>(patterns: &[S], action: &str) -> bool {
    patterns.iter().any(|p| permits(p.as_ref(), action))
}

/// The narrower of two patterns when one contains the other, `None` when they are disjoint
/// or only overlap partially (two families never overlap partially).
pub fn intersect<'a>(a: &'a str, b: &'a str) -> Option<&'a str> {
    if covers(a, b) {
        Some(b)
    } else if covers(b, a) {
        Some(a)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_cover_only_themselves() {
        assert!(covers("payment.refund", "payment.refund"));
        assert!(!covers("payment.refund", "payment.refund.partial"));
        assert!(!covers("payment.refund", "payment.*"));
        assert!(!covers("payment.refund", "payment"));
    }

    #[test]
    fn families_cover_their_descendants_only() {
        assert!(covers("payment.*", "payment.refund"));
        assert!(covers("payment.*", "payment.refund.partial"));
        assert!(covers("payment.*", "payment.refund.*"));
        assert!(covers("payment.*", "payment.*"));
        assert!(!covers("payment.*", "payment"));
        assert!(!covers("payment.*", "payments.refund"));
        assert!(!covers("payment.*", "crm.read"));
        assert!(!covers("payment.refund.*", "payment.*"));
    }

    #[test]
    fn star_covers_everything_and_nothing_covers_star() {
        assert!(covers("*", "anything.at.all"));
        assert!(covers("*", "*"));
        assert!(!covers("payment.*", "*"));
    }

    #[test]
    fn intersection_keeps_the_narrower_pattern() {
        assert_eq!(intersect("payment.*", "payment.refund"), Some("payment.refund"));
        assert_eq!(intersect("payment.refund", "payment.*"), Some("payment.refund"));
        assert_eq!(intersect("*", "crm.read"), Some("crm.read"));
        assert_eq!(intersect("payment.*", "crm.*"), None);
    }
}
