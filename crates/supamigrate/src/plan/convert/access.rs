//! Access control through the conversion: what each decision does to who
//! may read or change what (narrows, widens, unchanged), and the rule that
//! the plan never widens it as a side effect. A RESTRICTIVE policy whose
//! table is kept but which uses something the target will not have (an MFA
//! check reading `auth.mfa_factors`) is not dropped like any other
//! statement: the plan is refused, naming it, unless the user keeps it
//! failing closed (`--restrictive fail-closed`: it denies every row to its
//! roles) or lets it go by name (`--allow-wider-access`).

use pg_query::NodeEnum;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sql::uses::Name;
use crate::sql::{rangevar_name, Statement};

/// A decision's effect on who may read or change what.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessEffect {
    /// No one can do more or less than on the source.
    #[default]
    Unchanged,
    /// Someone can do less (a permissive policy or a grant left out, a
    /// policy kept failing closed).
    Narrows,
    /// Someone can do more (a restrictive policy, a REVOKE, row level
    /// security left out).
    Widens,
}

impl AccessEffect {
    /// Whether nothing changes (not serialized then).
    pub fn is_unchanged(&self) -> bool {
        *self == AccessEffect::Unchanged
    }
}

/// What a restrictive policy the target cannot keep becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestrictiveChoice {
    /// The plan is refused, naming it (unless `--allow-wider-access` names it).
    #[default]
    Refuse,
    /// Kept, denying every row to its roles until it is rewritten.
    FailClosed,
}

impl RestrictiveChoice {
    /// Parses `--restrictive`.
    pub fn parse(s: &str) -> Result<RestrictiveChoice> {
        match s {
            "refuse" => Ok(RestrictiveChoice::Refuse),
            "fail-closed" => Ok(RestrictiveChoice::FailClosed),
            other => Err(Error::invalid_input(format!("--restrictive {other:?}: unknown choice"))
                .with_hint("use --restrictive fail-closed (keep such a policy denying every row) or refuse (the default: stop and name it)")),
        }
    }

    /// The flag's spelling.
    pub fn name(self) -> &'static str {
        match self {
            RestrictiveChoice::Refuse => "refuse",
            RestrictiveChoice::FailClosed => "fail-closed",
        }
    }
}

/// What a statement is to access control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Guard {
    /// `CREATE POLICY … AS RESTRICTIVE`: rows must pass it too.
    Restrictive {
        /// `schema.table.policy`.
        id: String,
        /// Its table.
        table: Name,
    },
    /// A permissive policy: rows it lets through.
    Permissive,
    /// `GRANT`.
    Grant,
    /// `REVOKE`.
    Revoke,
    /// `ALTER TABLE … ENABLE | FORCE ROW LEVEL SECURITY`.
    RowSecurity,
}

/// What `st` is to access control, if anything.
pub(super) fn guard(st: &Statement) -> Option<Guard> {
    use pg_query::protobuf::AlterTableType as T;
    Some(match st.node()? {
        NodeEnum::CreatePolicyStmt(p) if !p.permissive => {
            let rv = p.table.as_ref()?;
            Guard::Restrictive {
                id: format!("{}.{}", rangevar_name(rv), p.policy_name),
                table: Name::new(&rv.schemaname, &rv.relname),
            }
        }
        NodeEnum::CreatePolicyStmt(_) => Guard::Permissive,
        NodeEnum::GrantStmt(g) if g.is_grant => Guard::Grant,
        NodeEnum::GrantStmt(_) => Guard::Revoke,
        NodeEnum::AlterTableStmt(a)
            if a.cmds.iter().any(|c| {
                matches!(c.node.as_ref(), Some(NodeEnum::AlterTableCmd(cmd))
                    if cmd.subtype == T::AtEnableRowSecurity as i32
                        || cmd.subtype == T::AtForceRowSecurity as i32)
            }) =>
        {
            Guard::RowSecurity
        }
        _ => return None,
    })
}

/// What leaving `g` out does to access; `rls_kept`: the target keeps row
/// level security (`--policies shim`).
pub(super) fn dropped_effect(g: &Guard, rls_kept: bool) -> AccessEffect {
    match g {
        Guard::Permissive if rls_kept => AccessEffect::Narrows,
        Guard::Grant => AccessEffect::Narrows,
        Guard::Permissive | Guard::Restrictive { .. } | Guard::Revoke | Guard::RowSecurity => {
            AccessEffect::Widens
        }
    }
}

/// Whether `--allow-wider-access` names the policy `id` (`schema.table.policy`,
/// or the policy's name alone).
pub(super) fn allowed(id: &str, allow: &std::collections::BTreeSet<String>) -> bool {
    allow.contains(id)
        || id
            .rsplit_once('.')
            .is_some_and(|(_, policy)| allow.contains(policy))
}

/// The policy `st` (restrictive) made to deny every row to its roles: its
/// USING and WITH CHECK become `false`. Built on the parse tree.
pub(super) fn fail_closed(st: &Statement) -> Result<Statement> {
    let template =
        Statement::parse("CREATE POLICY p ON t AS RESTRICTIVE USING (false) WITH CHECK (false)")?;
    let Some(NodeEnum::CreatePolicyStmt(t)) = template.node() else {
        return Err(Error::internal(
            "the fail-closed policy template did not parse",
        ));
    };
    let mut st = st.clone();
    let Some(NodeEnum::CreatePolicyStmt(p)) = st.node_mut() else {
        return Err(Error::internal("fail_closed needs a CREATE POLICY"));
    };
    if p.qual.is_some() {
        p.qual = t.qual.clone();
    }
    if p.with_check.is_some() {
        p.with_check = t.with_check.clone();
    }
    Statement::parse(&format!("{};", st.deparse()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_guard_and_what_leaving_it_out_does() {
        let cases: &[(&str, Option<&str>, AccessEffect)] = &[
            (
                "CREATE POLICY mfa ON public.notes AS RESTRICTIVE FOR SELECT TO authenticated USING (public.aal_ok())",
                Some("restrictive public.notes.mfa"),
                AccessEffect::Widens,
            ),
            (
                "CREATE POLICY own ON public.notes USING (user_id = auth.uid())",
                Some("permissive"),
                AccessEffect::Narrows,
            ),
            ("GRANT SELECT ON public.notes TO anon", Some("grant"), AccessEffect::Narrows),
            ("REVOKE ALL ON FUNCTION public.f() FROM PUBLIC", Some("revoke"), AccessEffect::Widens),
            ("ALTER TABLE public.notes FORCE ROW LEVEL SECURITY", Some("rls"), AccessEffect::Widens),
            ("ALTER TABLE public.notes ADD COLUMN x int", None, AccessEffect::Unchanged),
        ];
        for (sql, want, effect) in cases {
            let st = Statement::parse(sql).unwrap();
            let g = guard(&st);
            let got = g.as_ref().map(|g| match g {
                Guard::Restrictive { id, .. } => format!("restrictive {id}"),
                Guard::Permissive => "permissive".into(),
                Guard::Grant => "grant".into(),
                Guard::Revoke => "revoke".into(),
                Guard::RowSecurity => "rls".into(),
            });
            assert_eq!(got.as_deref(), *want, "{sql}");
            if let Some(g) = g {
                assert_eq!(dropped_effect(&g, true), *effect, "{sql}");
            }
        }
    }

    #[test]
    fn a_restrictive_policy_fails_closed_and_keeps_its_scope() {
        let st = Statement::parse(
            "CREATE POLICY mfa ON public.notes AS RESTRICTIVE FOR UPDATE TO authenticated USING (public.aal_ok()) WITH CHECK (public.aal_ok())",
        )
        .unwrap();
        let closed = fail_closed(&st).unwrap().original();
        assert!(
            closed.contains("AS RESTRICTIVE FOR UPDATE TO authenticated"),
            "{closed}"
        );
        assert!(
            closed.contains("USING (false) WITH CHECK (false)"),
            "{closed}"
        );
        assert!(!closed.contains("aal_ok"), "{closed}");
        let allow: std::collections::BTreeSet<String> = ["mfa".to_string()].into();
        assert!(allowed("public.notes.mfa", &allow));
        assert!(!allowed("public.notes.other", &allow));
    }
}
