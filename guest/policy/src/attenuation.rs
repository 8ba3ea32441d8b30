//! Authority attenuation: a child's mandate lies within its parent's in every dimension
//! (AG-001; AG-396 4.7; the authority-attenuation pattern of sub-budgets, action masks and
//! depth limits).
//!
//! [`check_within`] refuses a widening request and names the dimension; [`narrow`] computes
//! the narrowest mandate valid for both the parent and the request.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::action;
use crate::model::{Budget, Denial, Mandate, TimestampMs};
use crate::reasons::Reason;
use crate::view::{MandateFields, MaskRef, TaskView, ToolsetFields};

/// Whether counterparty pattern `outer` covers `inner` (`*` covers all).
fn counterparty_covers(outer: &str, inner: &str) -> bool {
    outer == "*" || outer == inner
}

fn denial(reason: Reason, message: String) -> Denial {
    Denial { reason, message }
}

/// Refuses a mandate that lists a budget unit more than once (`budget-unit-duplicated`): which
/// of two amounts would bind is ambiguous, and a host that holds each listed budget would hold
/// twice. Checked on the parent's and on the requested mandate.
pub fn check_budget_units<M: MandateFields>(parent: &M, requested: &M) -> Result<(), Denial> {
    for (field, mandate) in [("parent_mandate", parent), ("requested_mandate", requested)] {
        let budgets = mandate.budgets();
        for (i, budget) in budgets.iter().enumerate() {
            if budgets[..i].iter().any(|b| b.unit == budget.unit) {
                return Err(denial(
                    Reason::BudgetUnitDuplicated,
                    format!("`{field}.budgets[{i}]`: {:?} is listed more than once", budget.unit),
                ));
            }
        }
    }
    Ok(())
}

/// Checks that `child` is within `parent` in every dimension: budget per unit, action kinds,
/// counterparties, value ceiling, expiry, and strictly smaller remaining depth.
pub fn check_within<P: MandateFields, C: MandateFields>(parent: &P, child: &C) -> Result<(), Denial> {
    for budget in child.budgets() {
        match parent.budget_of(budget.unit) {
            Some(available) if budget.amount <= available => {}
            Some(available) => {
                return Err(denial(
                    Reason::BudgetWidened,
                    format!(
                        "`budgets`: {:?} {} exceeds the parent's remaining {available}",
                        budget.unit, budget.amount
                    ),
                ));
            }
            None => {
                return Err(denial(
                    Reason::BudgetWidened,
                    format!("`budgets`: the parent holds no {:?} budget to pass on", budget.unit),
                ));
            }
        }
    }
    let (parent_kinds, parent_parties) = (parent.action_kinds(), parent.counterparties());
    if let Some(kind) = child
        .action_kinds()
        .iter()
        .map(AsRef::as_ref)
        .find(|kind| !parent_kinds.iter().any(|p| action::covers(p.as_ref(), kind)))
    {
        return Err(denial(
            Reason::ActionKindsWidened,
            format!("`action_kinds`: `{kind}` is not within the parent's {parent_kinds:?}"),
        ));
    }
    if let Some(party) = child
        .counterparties()
        .iter()
        .map(AsRef::as_ref)
        .find(|party| !parent_parties.iter().any(|p| counterparty_covers(p.as_ref(), party)))
    {
        return Err(denial(
            Reason::CounterpartiesWidened,
            format!("`counterparties`: `{party}` is not within the parent's {parent_parties:?}"),
        ));
    }
    let (child_ceiling, parent_ceiling) = (child.value_ceiling(), parent.value_ceiling());
    if child_ceiling > parent_ceiling {
        return Err(denial(
            Reason::ValueCeilingWidened,
            format!("`value_ceiling`: {child_ceiling} exceeds the parent's {parent_ceiling}"),
        ));
    }
    let (child_expiry, parent_expiry) = (child.expires_at(), parent.expires_at());
    if child_expiry > parent_expiry {
        return Err(denial(
            Reason::ExpiryWidened,
            format!("`expires_at`: {child_expiry} is later than the parent's {parent_expiry}"),
        ));
    }
    let (child_depth, parent_depth) = (child.remaining_depth(), parent.remaining_depth());
    if child_depth >= parent_depth {
        return Err(denial(
            Reason::DepthNotNarrowed,
            format!("`remaining_depth`: {child_depth} must be smaller than the parent's {parent_depth}"),
        ));
    }
    Ok(())
}

/// Checks that the task can be carried out under `mandate` at `now`: the mandate is still
/// valid, and the task's action kind, value and counterparty are all permitted.
pub fn check_task<M: MandateFields>(
    mandate: &M,
    task: &TaskView<'_>,
    now: TimestampMs,
) -> Result<(), Denial> {
    let expires_at = mandate.expires_at();
    if expires_at <= now {
        return Err(denial(
            Reason::ChildMandateExpired,
            format!("`requested_mandate.expires_at` {expires_at} is not after now ({now})"),
        ));
    }
    let kinds = mandate.action_kinds();
    if !action::any_permits(kinds, task.action_kind) {
        return Err(denial(
            Reason::ActionNotPermitted,
            format!("`task.action_kind`: `{}` is not within {kinds:?}", task.action_kind),
        ));
    }
    let ceiling = mandate.value_ceiling();
    if task.value > ceiling {
        return Err(denial(
            Reason::ValueOverCeiling,
            format!("`task.value`: {} exceeds the value ceiling {ceiling}", task.value),
        ));
    }
    let parties = mandate.counterparties();
    if let Some(party) = task.counterparty
        && !parties.iter().any(|p| counterparty_covers(p.as_ref(), party))
    {
        return Err(denial(
            Reason::CounterpartyNotPermitted,
            format!("`task.counterparty`: `{party}` is not within {parties:?}"),
        ));
    }
    Ok(())
}

/// The action mask (a tenant that permits actions only through toolset budgets): the task's
/// toolset, its action kind's family, must have a budget (`action-mask-missing`) with at least
/// the task's risk cost left (`action-mask-exhausted`). No mask, no check.
pub fn check_action_mask<T: ToolsetFields>(
    mask: Option<MaskRef<'_, T>>,
    task: &TaskView<'_>,
) -> Result<(), Denial> {
    let Some(mask) = mask else { return Ok(()) };
    let toolset = toolset_of(task.action_kind);
    // A toolset listed twice binds at its smaller balance (fail closed, as `budget_of`).
    let listed = mask.toolsets.iter().filter(|t| t.toolset() == toolset).min_by_key(|t| t.remaining());
    match listed {
        None => Err(denial(
            Reason::ActionMaskMissing,
            format!(
                "`task.action_kind` `{}`: the tenant's action mask has no budget for toolset `{toolset}`",
                task.action_kind
            ),
        )),
        Some(budget) if budget.remaining() < mask.cost => Err(denial(
            Reason::ActionMaskExhausted,
            format!(
                "toolset `{toolset}` has {} risk points left; this {:?} task costs {}",
                budget.remaining(),
                task.risk,
                mask.cost
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// The toolset of an action kind: its family, the part before the first `.`
/// (`payment.refund` is in `payment`; a kind without a dot is its own toolset).
pub fn toolset_of(action_kind: &str) -> &str {
    action_kind.split('.').next().unwrap_or(action_kind)
}

/// A pattern list in canonical form: patterns covered by another one dropped (they add
/// nothing), the rest sorted, so equal permissions have equal lists.
fn canonical(mut patterns: Vec<String>, covers: impl Fn(&str, &str) -> bool) -> Vec<String> {
    patterns.sort();
    patterns.dedup();
    let redundant = |i: usize, p: &String| {
        patterns.iter().enumerate().any(|(j, q)| j != i && covers(q, p) && !(covers(p, q) && j > i))
    };
    let keep: Vec<bool> = patterns.iter().enumerate().map(|(i, p)| !redundant(i, p)).collect();
    patterns.into_iter().zip(keep).filter_map(|(p, k)| k.then_some(p)).collect()
}

/// The narrowest mandate within both `parent` and `requested`: the per-dimension intersection,
/// with remaining depth at most the parent's minus one, and pattern lists in canonical form
/// (sorted, without patterns another one covers), so narrowing twice changes nothing.
///
/// The result is always within `parent` by [`check_within`] when the parent may delegate at
/// all (`parent.remaining_depth > 0`), and never wider than `requested`.
pub fn narrow(parent: &Mandate, requested: &Mandate) -> Mandate {
    let mut action_kinds = Vec::new();
    for wanted in &requested.action_kinds {
        for held in &parent.action_kinds {
            if let Some(common) = action::intersect(held, wanted) {
                action_kinds.push(common.to_string());
            }
        }
    }
    let mut counterparties = Vec::new();
    for wanted in &requested.counterparties {
        for held in &parent.counterparties {
            if counterparty_covers(held, wanted) {
                counterparties.push(wanted.clone());
            } else if counterparty_covers(wanted, held) {
                counterparties.push(held.clone());
            }
        }
    }
    let mut budgets: Vec<Budget> = Vec::new();
    for wanted in &requested.budgets {
        if budgets.iter().any(|b| b.unit == wanted.unit) {
            continue;
        }
        let asked = requested.budget(wanted.unit).unwrap_or(wanted.amount);
        if let Some(available) = parent.budget(wanted.unit) {
            budgets.push(Budget { unit: wanted.unit, amount: asked.min(available) });
        }
    }
    Mandate {
        value_ceiling: parent.value_ceiling.min(requested.value_ceiling),
        action_kinds: canonical(action_kinds, action::covers),
        counterparties: canonical(counterparties, counterparty_covers),
        budgets,
        remaining_depth: requested.remaining_depth.min(parent.remaining_depth.saturating_sub(1)),
        expires_at: parent.expires_at.min(requested.expires_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BudgetUnit, RiskLevel, Task};
    use alloc::vec;
    use proptest::prelude::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn parent() -> Mandate {
        Mandate {
            value_ceiling: 100_000,
            action_kinds: strings(&["crm.*", "payment.refund"]),
            counterparties: strings(&["acme", "globex"]),
            budgets: vec![
                Budget { unit: BudgetUnit::UsdMicrocents, amount: 50_000_000 },
                Budget { unit: BudgetUnit::Tokens, amount: 10_000 },
            ],
            remaining_depth: 3,
            expires_at: 10_000,
        }
    }

    fn child() -> Mandate {
        Mandate {
            value_ceiling: 10_000,
            action_kinds: strings(&["crm.read", "payment.refund"]),
            counterparties: strings(&["acme"]),
            budgets: vec![Budget { unit: BudgetUnit::UsdMicrocents, amount: 5_000_000 }],
            remaining_depth: 1,
            expires_at: 5_000,
        }
    }

    fn reason_of(result: Result<(), Denial>) -> Option<Reason> {
        result.err().map(|d| d.reason)
    }

    #[test]
    fn a_narrower_child_is_within() {
        assert_eq!(check_within(&parent(), &child()), Ok(()));
    }

    #[test]
    fn each_widened_dimension_is_named() {
        type Widen = fn(&mut Mandate);
        let cases: [(Widen, Reason, &str); 8] = [
            (|m| m.budgets[0].amount = 60_000_000, Reason::BudgetWidened, "`budgets`"),
            (
                |m| m.budgets.push(Budget { unit: BudgetUnit::Credits, amount: 1 }),
                Reason::BudgetWidened,
                "Credits",
            ),
            (|m| m.action_kinds.push("payment.*".into()), Reason::ActionKindsWidened, "`payment.*`"),
            (|m| m.action_kinds.push("email.send".into()), Reason::ActionKindsWidened, "`action_kinds`"),
            (|m| m.counterparties.push("initech".into()), Reason::CounterpartiesWidened, "`initech`"),
            (|m| m.value_ceiling = 100_001, Reason::ValueCeilingWidened, "`value_ceiling`"),
            (|m| m.expires_at = 10_001, Reason::ExpiryWidened, "`expires_at`"),
            (|m| m.remaining_depth = 3, Reason::DepthNotNarrowed, "`remaining_depth`"),
        ];
        for (widen, reason, named) in cases {
            let mut wide = child();
            widen(&mut wide);
            let denial = check_within(&parent(), &wide).err();
            assert_eq!(denial.as_ref().map(|d| d.reason), Some(reason));
            let message = denial.map(|d| d.message).unwrap_or_default();
            assert!(message.contains(named), "{message} should name {named}");
        }
    }

    /// A parent that lists a unit twice is read at its smaller amount, in whichever order the
    /// two appear, owned or borrowed (the pipeline refuses such a mandate first; tokens and
    /// stored mandates are checked with `check_within` alone).
    #[test]
    fn a_unit_listed_twice_binds_at_its_smaller_amount() {
        let usd = |amount| Budget { unit: BudgetUnit::UsdMicrocents, amount };
        for budgets in [vec![usd(1_000_000_000), usd(10)], vec![usd(10), usd(1_000_000_000)]] {
            let parent = Mandate { budgets, ..parent() };
            let refused = check_within(&parent, &child());
            assert_eq!(reason_of(refused), Some(Reason::BudgetWidened), "{:?}", parent.budgets);
            let request: Option<crate::model::Request> =
                serde_json::from_str(crate::json::tests::REQUEST).ok();
            let request = request.unwrap_or_else(|| panic!("the sample request parses"));
            let bytes = crate::wire::encode_requests(&[crate::model::Request {
                parent_mandate: parent.clone(),
                ..request
            }])
            .unwrap_or_default();
            let views = crate::wire::decode_request_views(&bytes).unwrap_or_default();
            let view = views.first().map(|v| v.parent_mandate.clone());
            let view = view.unwrap_or_else(|| panic!("the request decodes"));
            assert_eq!(reason_of(check_within(&view, &child())), Some(Reason::BudgetWidened));
        }
    }

    /// A toolset listed twice in the action mask binds at its smaller balance, in either order.
    #[test]
    fn a_toolset_listed_twice_binds_at_its_smaller_balance() {
        use crate::model::{ActionMask, ToolsetBudget};
        let task = task("payment.refund", 1, None);
        let budget = |remaining| ToolsetBudget { toolset: "payment".into(), remaining };
        for toolsets in [vec![budget(99), budget(0)], vec![budget(0), budget(99)]] {
            let mask = ActionMask { toolsets, cost: 5 };
            let refused = check_action_mask(Some(mask.fields()), &task.view());
            assert_eq!(reason_of(refused), Some(Reason::ActionMaskExhausted), "{:?}", mask.toolsets);
        }
    }

    #[test]
    fn a_star_counterparty_in_the_parent_admits_any() {
        let mut p = parent();
        p.counterparties = strings(&["*"]);
        let mut c = child();
        c.counterparties = strings(&["anyone"]);
        assert_eq!(check_within(&p, &c), Ok(()));
        c.counterparties = strings(&["*"]);
        assert_eq!(check_within(&p, &c), Ok(()));
        assert_eq!(reason_of(check_within(&parent(), &c)), Some(Reason::CounterpartiesWidened));
    }

    fn task(action: &str, value: u64, party: Option<&str>) -> Task {
        Task {
            id: "t".into(),
            action_kind: action.into(),
            risk: RiskLevel::Low,
            value,
            counterparty: party.map(Into::into),
            completable_locally: true,
        }
    }

    #[test]
    fn the_task_must_fit_the_child_mandate() {
        let c = child();
        assert_eq!(check_task(&c, &task("crm.read", 10, Some("acme")).view(), 0), Ok(()));
        assert_eq!(
            reason_of(check_task(&c, &task("crm.write", 10, None).view(), 0)),
            Some(Reason::ActionNotPermitted)
        );
        assert_eq!(
            reason_of(check_task(&c, &task("crm.read", 10, None).view(), 5_000)),
            Some(Reason::ChildMandateExpired)
        );
        assert_eq!(
            reason_of(check_task(&c, &task("crm.read", 10_001, None).view(), 0)),
            Some(Reason::ValueOverCeiling)
        );
        assert_eq!(
            reason_of(check_task(&c, &task("crm.read", 1, Some("globex")).view(), 0)),
            Some(Reason::CounterpartyNotPermitted)
        );
    }

    #[test]
    fn narrow_intersects_every_dimension() {
        let mut wide = child();
        wide.action_kinds = strings(&["crm.*", "payment.*", "email.send"]);
        wide.counterparties = strings(&["*"]);
        wide.budgets = vec![
            Budget { unit: BudgetUnit::UsdMicrocents, amount: 90_000_000 },
            Budget { unit: BudgetUnit::Credits, amount: 5 },
        ];
        wide.value_ceiling = u64::MAX;
        wide.expires_at = u64::MAX;
        wide.remaining_depth = 9;
        let narrowed = narrow(&parent(), &wide);
        assert_eq!(narrowed.action_kinds, strings(&["crm.*", "payment.refund"]));
        assert_eq!(narrowed.counterparties, strings(&["acme", "globex"]));
        // Patterns another one covers are dropped.
        let mut overlapping = child();
        overlapping.action_kinds = strings(&["payment.refund", "*", "crm.read"]);
        let mut star_parent = parent();
        star_parent.action_kinds = strings(&["*"]);
        assert_eq!(narrow(&star_parent, &overlapping).action_kinds, strings(&["*"]));
        assert_eq!(narrowed.budgets, vec![Budget { unit: BudgetUnit::UsdMicrocents, amount: 50_000_000 }]);
        assert_eq!(narrowed.value_ceiling, 100_000);
        assert_eq!(narrowed.expires_at, 10_000);
        assert_eq!(narrowed.remaining_depth, 2);
        assert_eq!(check_within(&parent(), &narrowed), Ok(()));
    }

    // ---- property tests -------------------------------------------------------------------

    fn action_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("*".to_string()),
            "(crm|payment|email)".prop_map(|f| format!("{f}.*")),
            "(crm|payment|email)\\.(read|write|refund)".prop_map(|s| s.to_string()),
            "(crm|payment)\\.(read|refund)\\.\\*".prop_map(|s| s.to_string()),
        ]
    }

    fn mandate_strategy() -> impl Strategy<Value = Mandate> {
        (
            0u64..1_000,
            proptest::collection::vec(action_strategy(), 0..4),
            proptest::collection::vec("(\\*|acme|globex|initech)", 0..3),
            proptest::collection::vec((0usize..4, 0u64..1_000), 0..4),
            0u8..6,
            0u64..1_000,
        )
            .prop_map(
                |(value_ceiling, action_kinds, counterparties, budgets, remaining_depth, expires_at)| {
                    let units = [
                        BudgetUnit::UsdMicrocents,
                        BudgetUnit::Tokens,
                        BudgetUnit::Credits,
                        BudgetUnit::RiskPoints,
                    ];
                    Mandate {
                        value_ceiling,
                        action_kinds,
                        counterparties,
                        budgets: budgets
                            .into_iter()
                            .map(|(u, amount)| Budget { unit: units[u % units.len()], amount })
                            .collect(),
                        remaining_depth,
                        expires_at,
                    }
                },
            )
    }

    proptest! {
        /// Attenuation only narrows: whatever is requested, the narrowed mandate is within the
        /// parent and within the request.
        #[test]
        fn attenuation_only_narrows(parent in mandate_strategy(), requested in mandate_strategy()) {
            let narrowed = narrow(&parent, &requested);
            if parent.remaining_depth > 0 {
                prop_assert_eq!(check_within(&parent, &narrowed), Ok(()));
            }
            let mut as_request = requested.clone();
            as_request.remaining_depth = as_request.remaining_depth.saturating_add(1);
            prop_assert_eq!(check_within(&as_request, &narrowed), Ok(()));
        }

        /// A request that is already within the parent survives narrowing unchanged in what it
        /// permits: narrowing it again changes nothing.
        #[test]
        fn narrowing_is_idempotent(parent in mandate_strategy(), requested in mandate_strategy()) {
            let once = narrow(&parent, &requested);
            let twice = narrow(&parent, &once);
            prop_assert_eq!(once, twice);
        }

        /// Every concrete action the narrowed mandate permits, both the parent and the request
        /// permit too.
        #[test]
        fn narrowed_actions_are_permitted_by_both(
            parent in mandate_strategy(),
            requested in mandate_strategy(),
            action in "(crm|payment|email)\\.(read|write|refund)(\\.partial)?",
        ) {
            let narrowed = narrow(&parent, &requested);
            if action::any_permits(&narrowed.action_kinds, &action) {
                prop_assert!(action::any_permits(&parent.action_kinds, &action));
                prop_assert!(action::any_permits(&requested.action_kinds, &action));
            }
        }
    }
}
