//! Who may turn auto_purchase on (docs/design/DOMAIN.md "Separation of duties"): a plan
//! that buys without approval needs a window limit, and, when approvers must differ,
//! two admins: the first write that asks for it records the request, a write of another
//! identity enables it.

use crate::domain::plan::Editor;

/// What the guardrails say about auto_purchase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoPurchaseRules {
    pub window_limit: Option<f64>,
    pub require_different_approver: bool,
}

/// What a plan write stores for auto_purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoPurchaseState {
    pub enabled: bool,
    /// An admin asked to enable it and waits for another identity.
    pub requested_by: Option<Editor>,
}

/// Returns what a write by `editor` asking for auto_purchase `wanted` stores, given what
/// is stored (`current`). Asking to turn it off always succeeds and drops any request.
pub fn decide(
    wanted: bool,
    current: &AutoPurchaseState,
    editor: &Editor,
    second_identity_needed: bool,
) -> AutoPurchaseState {
    let off = AutoPurchaseState {
        enabled: false,
        requested_by: None,
    };
    let on = AutoPurchaseState {
        enabled: true,
        requested_by: None,
    };
    if !wanted {
        return off;
    }
    if current.enabled || !second_identity_needed {
        return on;
    }
    match &current.requested_by {
        Some(first) if is_other_identity(first, editor) => on,
        _ => AutoPurchaseState {
            enabled: false,
            requested_by: Some(editor.clone()),
        },
    }
}

/// True when both editors are known keys and they differ.
fn is_other_identity(first: &Editor, second: &Editor) -> bool {
    match (&first.key_id, &second.key_id) {
        (Some(first), Some(second)) => first != second,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn editor(key: &str) -> Editor {
        Editor {
            actor: format!("key:{key}"),
            key_id: Some(key.to_owned()),
        }
    }

    fn off() -> AutoPurchaseState {
        AutoPurchaseState {
            enabled: false,
            requested_by: None,
        }
    }

    #[test]
    fn without_the_flag_one_admin_turns_it_on_and_anyone_off() {
        let on = decide(true, &off(), &editor("a"), false);
        assert!(on.enabled && on.requested_by.is_none());
        assert_eq!(decide(false, &on, &editor("a"), true), off());
    }

    #[test]
    fn with_the_flag_it_takes_a_request_and_another_identity() {
        let requested = decide(true, &off(), &editor("a"), true);
        assert!(!requested.enabled);
        assert_eq!(requested.requested_by, Some(editor("a")));
        let again = decide(true, &requested, &editor("a"), true);
        assert!(
            !again.enabled,
            "the same identity cannot confirm its own request"
        );
        let confirmed = decide(true, &requested, &editor("b"), true);
        assert!(confirmed.enabled && confirmed.requested_by.is_none());
        let unknown = Editor {
            actor: "key:x".to_owned(),
            key_id: None,
        };
        assert!(!decide(true, &requested, &unknown, true).enabled);
        assert_eq!(decide(false, &requested, &editor("b"), true), off());
    }
}
