//! The rules, one per kind of statement: keep, rewrite or drop, and why.

use std::collections::BTreeSet;

use pg_query::protobuf::{self, AccessPriv, ObjectType, RangeVar, RoleSpec};
use pg_query::NodeEnum;

use super::extensions::Fate;
use super::{Action, Conversion, ConvertOptions, Impact, PolicyMode};
use crate::error::Result;
use crate::plan::statements::{classify, Section};
use crate::plan::users::APP_USERS;
use crate::sql::{excerpt, qualified, rangevar_name, Statement};
use crate::supabase::{is_internal_schema, is_supabase_role, API_ROLES};

/// The rules, with what they need to know about the whole conversion.
pub(super) struct Rules<'a> {
    pub(super) opts: &'a ConvertOptions,
    pub(super) has_auth_users: bool,
    pub(super) has_storage: bool,
    /// The extensions' fate: columns and defaults of gone ones are removed.
    pub(super) fate: &'a Fate,
    /// Generated columns that become plain (`schema.table.column`).
    pub(super) plain_generated: &'a BTreeSet<String>,
    /// `auth.users`' columns and their names in `app_users` (none when the
    /// source has no `auth.users`).
    pub(super) user_columns: &'a [crate::plan::users::UserColumn],
    /// Who read past row level security on the source, when read.
    pub(super) row_security: Option<&'a crate::catalog::data::RowSecurityFacts>,
}

/// What pruning a GRANT's column list left.
enum Pruned {
    /// Nothing: every privilege named only left-out columns.
    All(String),
    /// The rest of the statement.
    Some(String),
}

/// A view reading `auth.users` with its owner's rights, rewritten to read
/// `app_users` ([`super::views`]), as its owner saw auth.users.
fn users_view(st: &Statement, sees: crate::catalog::data::OwnerSees) -> Outcome {
    use crate::catalog::data::OwnerSees;
    match sees {
        OwnerSees::Every => Outcome::Rewrite(
            vec![st.clone()],
            format!("reads auth.users with its owner's rights, who bypassed row level security on the source: reads {APP_USERS} directly, with auth.users' column names, so it shows the same users"),
            Impact::None,
        ),
        OwnerSees::None(owner) => Outcome::Rewrite(
            vec![st.clone()],
            format!("reads auth.users with the rights of its owner {owner}, who does not bypass row level security on the source, where auth.users has no policy: it showed no user; it reads {APP_USERS} with WHERE false, so it shows none on the target either"),
            Impact::None,
        ),
        OwnerSees::ByPolicy(owner) => Outcome::narrowed(
            st.clone(),
            format!("reads auth.users with the rights of its owner {owner}, who does not bypass row level security on the source: it showed the users auth.users' policies let {owner} see, which the target cannot reproduce; it reads {APP_USERS} with WHERE false and shows no user (never more than before)"),
            format!("rewrite it for the target with the condition auth.users' policies gave {owner}, then apply it there"),
        ),
    }
}

/// The role Supabase Auth (GoTrue) runs as.
const AUTH_ADMIN: &str = "supabase_auth_admin";

/// What a rule decided.
enum Outcome {
    Keep,
    Rewrite(Vec<Statement>, String, Impact),
    Drop(String, Impact),
    /// Rewritten to show less (never more), with what the user must do.
    Narrowed(Statement, String, String),
}

impl Outcome {
    /// Left out, and the application notices.
    fn drop(reason: impl Into<String>) -> Outcome {
        Outcome::Drop(reason.into(), Impact::Behaviour)
    }

    /// Left out as platform plumbing: nothing the application sees.
    fn drop_plumbing(reason: impl Into<String>) -> Outcome {
        Outcome::Drop(reason.into(), Impact::None)
    }

    /// Rewritten so that it shows less than before (never more), with
    /// what the user must do.
    fn narrowed(st: Statement, reason: String, todo: String) -> Outcome {
        Outcome::Narrowed(st, reason, todo)
    }

    /// Rewritten, and the application notices.
    fn rewrite(st: Statement, reason: impl Into<String>) -> Outcome {
        Outcome::Rewrite(vec![st], reason.into(), Impact::Behaviour)
    }
}

impl Rules<'_> {
    pub(super) fn apply(
        &self,
        mut st: Statement,
        section: Section,
        out: &mut Conversion,
    ) -> Result<()> {
        let what = describe(&st);
        let outcome = self.decide(&mut st)?;
        match outcome {
            Outcome::Keep => {
                let sql = st.original();
                let reason = keep_reason(&st, self.has_storage);
                out.push(classify(&st, section, sql));
                out.note(Action::Kept, what, reason);
            }
            Outcome::Rewrite(stmts, reason, impact) => {
                for s in &stmts {
                    let sql = format!("{};", s.deparse()?);
                    out.push(classify(s, section, sql));
                }
                let action = if stmts.is_empty() {
                    Action::Dropped
                } else {
                    Action::Rewritten
                };
                out.note_with(action, what, reason, impact);
            }
            Outcome::Drop(reason, impact) => out.note_with(Action::Dropped, what, reason, impact),
            Outcome::Narrowed(s, reason, todo) => {
                let sql = format!("{};", s.deparse()?);
                out.push(classify(&s, section, sql));
                out.note_todo(Action::Rewritten, what, reason, todo);
                if let Some(d) = out.report.last_mut() {
                    d.access = super::AccessEffect::Narrows;
                }
            }
        }
        Ok(())
    }

    fn decide(&self, st: &mut Statement) -> Result<Outcome> {
        if let Some(schema) = target_schema(st) {
            if is_internal_schema(&schema) && !self.is_auth_users_trigger(st) {
                return Ok(Outcome::drop(format!(
                    "in Supabase-internal schema {schema}"
                )));
            }
        }
        if let Some(outcome) = self.platform(st) {
            return Ok(outcome);
        }
        let shim = self.opts.policies == PolicyMode::Shim;
        if let Some(sees) = super::views::read_app_users(st, self.user_columns, self.row_security)?
        {
            return Ok(users_view(st, sees));
        }
        let Some(node) = st.node_mut() else {
            return Ok(Outcome::Keep);
        };
        Ok(match node {
            NodeEnum::CreateSchemaStmt(s) if !s.if_not_exists => {
                s.if_not_exists = true;
                s.authrole = None;
                Outcome::Rewrite(
                    vec![st.clone()],
                    "provision creates the schema (public exists anyway): IF NOT EXISTS".into(),
                    Impact::None,
                )
            }
            NodeEnum::CreatePolicyStmt(_) => self.policy(st, shim),
            NodeEnum::GrantStmt(_) => match self.prune_columns(st) {
                Some(Pruned::All(why)) => Outcome::Drop(why, Impact::None),
                Some(Pruned::Some(why)) => match self.grant(st) {
                    Outcome::Keep => Outcome::Rewrite(vec![st.clone()], why, Impact::None),
                    Outcome::Rewrite(stmts, r, i) => {
                        Outcome::Rewrite(stmts, format!("{r}; {why}"), i)
                    }
                    dropped => dropped,
                },
                None => self.grant(st),
            },
            NodeEnum::AlterTableStmt(_) => self.alter_table(st, shim),
            NodeEnum::CreateStmt(_) => self.create_table(st),
            NodeEnum::CreateTrigStmt(t) => {
                let on_auth_users = t.relation.as_ref().is_some_and(is_auth_users);
                if on_auth_users && self.has_auth_users {
                    t.relation = Some(app_users_rangevar());
                    Outcome::rewrite(
                        st.clone(),
                        format!("trigger moved from auth.users to {APP_USERS}"),
                    )
                } else {
                    Outcome::Keep
                }
            }
            _ => Outcome::Keep,
        })
    }

    /// Statements that only make sense on Supabase's platform.
    fn platform(&self, st: &Statement) -> Option<Outcome> {
        Some(match st.node()? {
            NodeEnum::VariableSetStmt(v) if v.name == "transaction_timeout" && self.opts.target_major < 17 => {
                Outcome::drop_plumbing(format!("transaction_timeout needs PostgreSQL 17; the target is {}", self.opts.target_major))
            }
            NodeEnum::CreatePublicationStmt(p) if p.pubname.starts_with("supabase_realtime") => {
                Outcome::drop("serves Supabase Realtime, which the target does not run")
            }
            NodeEnum::AlterPublicationStmt(p) if p.pubname.starts_with("supabase_realtime") => {
                Outcome::drop("serves Supabase Realtime, which the target does not run")
            }
            NodeEnum::CreateForeignTableStmt(_) => Outcome::drop(
                "its foreign server is not migrated (see the line for the server)",
            ),
            NodeEnum::CreateEventTrigStmt(_) | NodeEnum::AlterEventTrigStmt(_) => {
                Outcome::drop_plumbing("Supabase platform event trigger (PostgREST schema reload, extension grants)")
            }
            NodeEnum::CommentStmt(c) if c.objtype == ObjectType::ObjectExtension as i32 => {
                Outcome::drop_plumbing("only the extension's owner may comment on it; provision creates extensions")
            }
            NodeEnum::SecLabelStmt(l) => Outcome::drop(security_label(&l.provider)),
            NodeEnum::CreateExtensionStmt(_) => Outcome::drop_plumbing("provision creates extensions before the schema"),
            NodeEnum::AlterOwnerStmt(_) => {
                Outcome::drop_plumbing("ownership: objects belong to the role that applies the schema")
            }
            NodeEnum::AlterDefaultPrivilegesStmt(_) => Outcome::drop_plumbing(
                "default privileges as the schema dump holds them: the platform's are left out (provision gives the application role its own); the project's own are planned from the catalog, each on its own line",
            ),
            _ => return None,
        })
    }

    /// CREATE POLICY: dropped without the shim; with it, Supabase-only roles
    /// leave its TO list.
    fn policy(&self, st: &mut Statement, shim: bool) -> Outcome {
        if !shim {
            return Outcome::drop("--policies drop: row level security is not migrated");
        }
        let Some(NodeEnum::CreatePolicyStmt(p)) = st.node_mut() else {
            return Outcome::Keep;
        };
        let before = p.roles.len();
        p.roles
            .retain(|r| role_of(r).is_none_or(|n| API_ROLES.contains(&n) || !is_supabase_role(n)));
        if p.roles.is_empty() && before > 0 {
            Outcome::drop("applies only to Supabase roles that do not exist on the target")
        } else if p.roles.len() < before {
            Outcome::Rewrite(
                vec![st.clone()],
                "Supabase-only roles removed from TO".into(),
                Impact::None,
            )
        } else {
            Outcome::Keep
        }
    }

    /// CREATE TABLE: columns, defaults and constraints of gone extensions removed, stale
    /// generated columns made plain when asked, foreign keys to auth.users
    /// re-pointed at app_users.
    fn create_table(&self, st: &mut Statement) -> Outcome {
        let Some(NodeEnum::CreateStmt(c)) = st.node_mut() else {
            return Outcome::Keep;
        };
        let mut reasons = Vec::new();
        let table = c.relation.as_ref().map(rangevar_name).unwrap_or_default();
        let before = c.table_elts.len();
        let gone = |k: String| self.fate.dependents.contains_key(&k);
        c.table_elts.retain(|elt| match elt.node.as_ref() {
            Some(NodeEnum::ColumnDef(cd)) => !gone(format!("column {table}.{}", cd.colname)),
            _ => true,
        });
        if c.table_elts.len() < before {
            reasons.push("columns typed by a dropped extension removed (not copied)".to_string());
        }
        self.remove_gone_constraints(c, &table, &mut reasons);
        for elt in &mut c.table_elts {
            let Some(NodeEnum::ColumnDef(cd)) = elt.node.as_mut() else {
                continue;
            };
            let default_gone = gone(format!("default of column {table}.{}", cd.colname));
            let plain = self
                .plain_generated
                .contains(&format!("{table}.{}", cd.colname));
            let n = cd.constraints.len();
            cd.constraints.retain(|k| match k.node.as_ref() {
                Some(NodeEnum::Constraint(con)) => {
                    let ty = con.contype;
                    let default = ty == protobuf::ConstrType::ConstrDefault as i32;
                    let generated = ty == protobuf::ConstrType::ConstrGenerated as i32;
                    !((default_gone && default) || (plain && generated))
                }
                _ => true,
            });
            if cd.constraints.len() < n {
                reasons.push(if plain {
                    format!(
                        "{} becomes a plain column (--stale-generated keep)",
                        cd.colname
                    )
                } else {
                    format!(
                        "default of {} removed: it uses an extension the target does not get",
                        cd.colname
                    )
                });
            }
        }
        let mut repointed = false;
        for elt in &mut c.table_elts {
            repointed |= repoint_fks_in(elt);
        }
        if repointed {
            reasons.push(format!(
                "foreign keys to auth.users now reference {APP_USERS}"
            ));
        }
        if reasons.is_empty() {
            Outcome::Keep
        } else {
            Outcome::rewrite(st.clone(), reasons.join("; "))
        }
    }

    /// Table constraints (CHECKs) calling a function of a gone extension.
    fn remove_gone_constraints(
        &self,
        c: &mut protobuf::CreateStmt,
        table: &str,
        reasons: &mut Vec<String>,
    ) {
        let mut removed = Vec::new();
        c.table_elts.retain(|elt| match elt.node.as_ref() {
            Some(NodeEnum::Constraint(k))
                if self
                    .fate
                    .dependents
                    .contains_key(&format!("constraint {} on {table}", k.conname)) =>
            {
                removed.push(k.conname.clone());
                false
            }
            _ => true,
        });
        for k in removed {
            reasons.push(format!(
                "constraint {k} removed: it uses an extension the target does not get, so the target does not check it (the application must)"
            ));
        }
    }

    fn is_auth_users_trigger(&self, st: &Statement) -> bool {
        matches!(st.node(), Some(NodeEnum::CreateTrigStmt(t)) if t.relation.as_ref().is_some_and(is_auth_users))
    }

    /// A column privilege (`GRANT SELECT (c) ON t`) naming columns left out
    /// with their type's extension loses them: `None` when it names none.
    fn prune_columns(&self, st: &mut Statement) -> Option<Pruned> {
        let Some(NodeEnum::GrantStmt(g)) = st.node_mut() else {
            return None;
        };
        let tables: Vec<String> = g
            .objects
            .iter()
            .filter_map(|o| match o.node.as_ref() {
                Some(NodeEnum::RangeVar(r)) => Some(format!("{}.{}", r.schemaname, r.relname)),
                _ => None,
            })
            .collect();
        let dropped = |c: &str| {
            tables.iter().any(|t| {
                self.fate
                    .dependents
                    .contains_key(&format!("column {t}.{c}"))
            })
        };
        let mut gone = Vec::new();
        // A column privilege whose every column went is gone with them (not
        // widened to the whole table).
        g.privileges.retain_mut(|p| {
            let Some(NodeEnum::AccessPriv(a)) = p.node.as_mut() else {
                return true;
            };
            if a.cols.is_empty() {
                return true;
            }
            a.cols.retain(|c| match c.node.as_ref() {
                Some(NodeEnum::String(s)) if dropped(&s.sval) => {
                    gone.push(s.sval.clone());
                    false
                }
                _ => true,
            });
            !a.cols.is_empty()
        });
        if gone.is_empty() {
            return None;
        }
        let why = format!(
            "column privileges on {} removed: left out with their type's extension",
            gone.join(", ")
        );
        Some(if g.privileges.is_empty() {
            Pruned::All(why)
        } else {
            Pruned::Some(why)
        })
    }

    /// GRANT/REVOKE: Supabase roles removed; in `drop` mode the API roles' DML
    /// privileges go to the application role.
    fn grant(&self, st: &mut Statement) -> Outcome {
        let shim = self.opts.policies == PolicyMode::Shim;
        let Some(NodeEnum::GrantStmt(g)) = st.node_mut() else {
            return Outcome::Keep;
        };
        let on_function = g.is_grant && g.objtype == protobuf::ObjectType::ObjectFunction as i32;
        let mut kept = Vec::new();
        let mut mapped = false;
        let mut removed = Vec::new();
        for r in g.grantees.drain(..) {
            match role_of(&r) {
                Some(n) if API_ROLES.contains(&n) && shim => kept.push(r),
                Some(n) if API_ROLES.contains(&n) => {
                    mapped = true;
                    removed.push(n.to_string());
                }
                Some(n) if is_supabase_role(n) => removed.push(n.to_string()),
                _ => kept.push(r),
            }
        }
        if removed.is_empty() {
            g.grantees = kept;
            return Outcome::Keep;
        }
        let mut stmts = Vec::new();
        if !kept.is_empty() {
            g.grantees = kept;
            stmts.push(st.clone());
        }
        let mut mapped_to_app = false;
        if mapped && g_is_grant(st) {
            if let Some(privs) = dml_privileges(st) {
                let mut m = st.clone();
                if let Some(NodeEnum::GrantStmt(mg)) = m.node_mut() {
                    mg.grantees = vec![role_node(&self.opts.app_role)];
                    mg.privileges = privs;
                    mg.grant_option = false;
                    mg.grantor = None;
                }
                stmts.push(m);
                mapped_to_app = true;
            }
        }
        let reason = if mapped_to_app {
            format!(
                "{} removed; their DML privileges go to {}",
                removed.join(", "),
                self.opts.app_role
            )
        } else if on_function && removed.iter().any(|r| r == AUTH_ADMIN) {
            // Supabase Auth runs as supabase_auth_admin and calls only the
            // functions it may execute: its hooks.
            return Outcome::Rewrite(
                stmts,
                format!(
                    "{}: an Auth hook (Supabase Auth calls it when it issues tokens, sends messages or checks passwords); \
                     nothing calls it on the target: call it from the service that issues your tokens, or move its logic there",
                    removed.join(", ")
                ),
                Impact::Behaviour,
            );
        } else {
            format!("{}: Supabase-only roles", removed.join(", "))
        };
        Outcome::Rewrite(stmts, reason, Impact::None)
    }

    fn alter_table(&self, st: &mut Statement, shim: bool) -> Outcome {
        let Some(NodeEnum::AlterTableStmt(a)) = st.node_mut() else {
            return Outcome::Keep;
        };
        let before = a.cmds.len();
        let mut reasons = BTreeSet::new();
        let mut fk_repointed = false;
        let mut behaviour = false;
        a.cmds.retain_mut(|c| {
            let Some(NodeEnum::AlterTableCmd(cmd)) = c.node.as_mut() else {
                return true;
            };
            let sub = cmd.subtype;
            if sub == protobuf::AlterTableType::AtChangeOwner as i32 {
                reasons.insert(
                    "ownership: objects belong to the role that applies the schema".to_string(),
                );
                return false;
            }
            if !shim
                && (sub == protobuf::AlterTableType::AtEnableRowSecurity as i32
                    || sub == protobuf::AlterTableType::AtForceRowSecurity as i32)
            {
                reasons.insert("--policies drop: row level security is not migrated".to_string());
                behaviour = true;
                return false;
            }
            if sub == protobuf::AlterTableType::AtAddConstraint as i32 {
                if let Some(NodeEnum::Constraint(con)) =
                    cmd.def.as_mut().and_then(|d| d.node.as_mut())
                {
                    match fk_target(con, self.has_storage) {
                        FkTarget::AuthUsers => {
                            con.pktable = Some(app_users_rangevar());
                            fk_repointed = true;
                        }
                        FkTarget::OtherInternal(t) => {
                            reasons
                                .insert(format!("references {t}, which the target does not have"));
                            behaviour = true;
                            return false;
                        }
                        FkTarget::None => {}
                    }
                }
            }
            true
        });
        if fk_repointed {
            reasons.insert(format!(
                "foreign key to auth.users now references {APP_USERS}"
            ));
        }
        if a.cmds.len() == before && !fk_repointed {
            return Outcome::Keep;
        }
        let reason = reasons.into_iter().collect::<Vec<_>>().join("; ");
        let impact = if behaviour || fk_repointed {
            Impact::Behaviour
        } else {
            Impact::None
        };
        if a.cmds.is_empty() {
            Outcome::Drop(reason, impact)
        } else {
            Outcome::Rewrite(vec![st.clone()], reason, impact)
        }
    }
}

/// Why a statement kept as it is still works on the target.
fn keep_reason(st: &Statement, has_storage: bool) -> &'static str {
    let uses_storage = has_storage && crate::sql::uses::of_statement(st).touches_schema("storage");
    if uses_storage {
        "uses storage.objects or storage.buckets: Storage's metadata tables move to the target"
    } else {
        "standard PostgreSQL"
    }
}

fn g_is_grant(st: &Statement) -> bool {
    matches!(st.node(), Some(NodeEnum::GrantStmt(g)) if g.is_grant)
}

/// The DML subset of a GRANT's privileges for its object type, or `None` when
/// nothing of it concerns data access.
fn dml_privileges(st: &Statement) -> Option<Vec<protobuf::Node>> {
    let Some(NodeEnum::GrantStmt(g)) = st.node() else {
        return None;
    };
    let allowed: &[&str] = match ObjectType::try_from(g.objtype).ok()? {
        ObjectType::ObjectTable => &["select", "insert", "update", "delete"],
        ObjectType::ObjectSequence => &["usage", "select"],
        ObjectType::ObjectFunction | ObjectType::ObjectProcedure | ObjectType::ObjectRoutine => {
            &["execute"]
        }
        ObjectType::ObjectSchema | ObjectType::ObjectType => &["usage"],
        _ => return None,
    };
    let granted: Vec<String> = g
        .privileges
        .iter()
        .filter_map(|p| match p.node.as_ref() {
            Some(NodeEnum::AccessPriv(a)) => Some(a.priv_name.clone()),
            _ => None,
        })
        .collect();
    // No list means ALL PRIVILEGES.
    let chosen: Vec<&str> = if granted.is_empty() {
        allowed.to_vec()
    } else {
        allowed
            .iter()
            .copied()
            .filter(|a| granted.iter().any(|g| g == a))
            .collect()
    };
    if chosen.is_empty() {
        return None;
    }
    Some(
        chosen
            .into_iter()
            .map(|p| protobuf::Node {
                node: Some(NodeEnum::AccessPriv(AccessPriv {
                    priv_name: p.to_string(),
                    cols: vec![],
                })),
            })
            .collect(),
    )
}

fn role_of(n: &protobuf::Node) -> Option<&str> {
    match n.node.as_ref() {
        Some(NodeEnum::RoleSpec(r))
            if r.roletype == protobuf::RoleSpecType::RolespecCstring as i32 =>
        {
            Some(r.rolename.as_str())
        }
        _ => None,
    }
}

fn role_node(name: &str) -> protobuf::Node {
    protobuf::Node {
        node: Some(NodeEnum::RoleSpec(RoleSpec {
            roletype: protobuf::RoleSpecType::RolespecCstring as i32,
            rolename: name.to_string(),
            location: -1,
        })),
    }
}

fn is_auth_users(rv: &RangeVar) -> bool {
    rv.schemaname == "auth" && rv.relname == "users"
}

fn app_users_rangevar() -> RangeVar {
    RangeVar {
        schemaname: "public".into(),
        relname: "app_users".into(),
        inh: true,
        relpersistence: "p".into(),
        location: -1,
        ..RangeVar::default()
    }
}

enum FkTarget {
    AuthUsers,
    OtherInternal(String),
    None,
}

fn fk_target(con: &protobuf::Constraint, has_storage: bool) -> FkTarget {
    if con.contype != protobuf::ConstrType::ConstrForeign as i32 {
        return FkTarget::None;
    }
    let storage_table = |t: &RangeVar| {
        has_storage
            && t.schemaname == "storage"
            && (t.relname == "objects" || t.relname == "buckets")
    };
    match con.pktable.as_ref() {
        Some(t) if is_auth_users(t) => FkTarget::AuthUsers,
        // Storage's tables move to the target too.
        Some(t) if storage_table(t) => FkTarget::None,
        Some(t) if is_internal_schema(&t.schemaname) => FkTarget::OtherInternal(rangevar_name(t)),
        _ => FkTarget::None,
    }
}

/// Re-points FKs to auth.users inside a CREATE TABLE element.
fn repoint_fks_in(elt: &mut protobuf::Node) -> bool {
    let mut changed = false;
    let mut fix = |con: &mut protobuf::Constraint| {
        if matches!(fk_target(con, false), FkTarget::AuthUsers) {
            con.pktable = Some(app_users_rangevar());
            changed = true;
        }
    };
    match elt.node.as_mut() {
        Some(NodeEnum::Constraint(c)) => fix(c),
        Some(NodeEnum::ColumnDef(cd)) => {
            for c in &mut cd.constraints {
                if let Some(NodeEnum::Constraint(con)) = c.node.as_mut() {
                    fix(con);
                }
            }
        }
        _ => {}
    }
    changed
}

/// Why a `SECURITY LABEL` is left out: RDS loads no label provider.
fn security_label(provider: &str) -> String {
    if provider == "pgsodium" {
        "pgsodium's Transparent Column Encryption: pgsodium is not on the target; the column's values are copied as stored (encrypted). \
         Decrypt them on the source (its decrypted_ view) into a plain column before the copy, or encrypt them again on the target (pgcrypto, AWS KMS)"
            .to_string()
    } else {
        let provider = if provider.is_empty() {
            "(default)"
        } else {
            provider
        };
        format!("security label of provider {provider}: the target loads no label provider")
    }
}

/// The schema of the object a statement creates or changes, when it names one.
fn target_schema(st: &Statement) -> Option<String> {
    let schema_of = |rv: &Option<RangeVar>| {
        rv.as_ref()
            .map(|r| r.schemaname.clone())
            .filter(|s| !s.is_empty())
    };
    let first_of = |names: &[protobuf::Node]| {
        (names.len() > 1)
            .then(|| qualified(&names[..1]))
            .filter(|s| !s.is_empty())
    };
    match st.node()? {
        NodeEnum::CreateStmt(c) => schema_of(&c.relation),
        NodeEnum::IndexStmt(i) => schema_of(&i.relation),
        NodeEnum::AlterTableStmt(a) => schema_of(&a.relation),
        NodeEnum::CreateTrigStmt(t) => schema_of(&t.relation),
        NodeEnum::CreatePolicyStmt(p) => schema_of(&p.table),
        NodeEnum::ViewStmt(v) => schema_of(&v.view),
        NodeEnum::CreateSeqStmt(s) => schema_of(&s.sequence),
        NodeEnum::CreateFunctionStmt(f) => first_of(&f.funcname),
        NodeEnum::CreateEnumStmt(e) => first_of(&e.type_name),
        NodeEnum::CompositeTypeStmt(c) => schema_of(&c.typevar),
        NodeEnum::CreateDomainStmt(d) => first_of(&d.domainname),
        NodeEnum::CreateSchemaStmt(s) => Some(s.schemaname.clone()),
        _ => None,
    }
}

/// A short name for the report: `table public.trips`, `GRANT … TO anon`, or an excerpt.
pub(super) fn describe(st: &Statement) -> String {
    let name = match st.node() {
        Some(NodeEnum::CreateStmt(c)) => c
            .relation
            .as_ref()
            .map(|r| format!("table {}", rangevar_name(r))),
        Some(NodeEnum::CreateEnumStmt(e)) => Some(format!("type {}", qualified(&e.type_name))),
        Some(NodeEnum::CreateFunctionStmt(f)) => {
            Some(format!("function {}", qualified(&f.funcname)))
        }
        Some(NodeEnum::IndexStmt(i)) => Some(format!("index {}", i.idxname)),
        Some(NodeEnum::ViewStmt(v)) => v
            .view
            .as_ref()
            .map(|r| format!("view {}", rangevar_name(r))),
        Some(NodeEnum::CreateForeignTableStmt(f)) => f
            .base_stmt
            .as_ref()
            .and_then(|b| b.relation.as_ref())
            .map(|r| format!("foreign table {}", rangevar_name(r))),
        Some(NodeEnum::CreateTrigStmt(t)) => Some(format!(
            "trigger {} on {}",
            t.trigname,
            t.relation.as_ref().map(rangevar_name).unwrap_or_default()
        )),
        Some(NodeEnum::CreatePolicyStmt(p)) => Some(format!(
            "policy \"{}\" on {}",
            p.policy_name,
            p.table.as_ref().map(rangevar_name).unwrap_or_default()
        )),
        _ => None,
    };
    name.unwrap_or_else(|| excerpt(&st.text))
}
