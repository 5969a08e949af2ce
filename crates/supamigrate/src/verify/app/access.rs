//! Each user's access: for anon, service_role and a sample of signed-up
//! users, the claims set the way Supabase's API sets them (`role`,
//! `request.jwt.claims`), and every table with RLS enabled read on both
//! sides: the rows that user sees, counted and fingerprinted.

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::pg::{quote_ident, TableName};

/// Someone the application acts for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// `anon`, `service_role`, or the user's id.
    pub name: String,
    /// The database role the API switches to.
    pub role: String,
    /// `request.jwt.claims` (JSON). Not printed: it holds the user's email.
    #[serde(skip)]
    pub claims: String,
}

/// What one principal sees of one table on one side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum Seen {
    /// Rows and their fingerprint.
    Rows {
        /// Rows visible.
        count: i64,
        /// The rows' hashes XORed.
        fingerprint: String,
    },
    /// The read was refused (no privilege).
    Refused {
        /// The server's message ([`super::server_error`]: its SQLSTATE
        /// alone when the message may quote data).
        message: String,
    },
}

impl Seen {
    /// The same rows, or refused on both sides (the messages name each
    /// side's own table).
    pub fn same(&self, other: &Seen) -> bool {
        match (self, other) {
            (Seen::Refused { .. }, Seen::Refused { .. }) => true,
            (a, b) => a == b,
        }
    }
}

/// A table a principal sees differently on the two sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessDiff {
    /// The target table.
    pub table: String,
    /// Who.
    pub principal: String,
    /// On the source.
    pub source: Seen,
    /// On the target.
    pub target: Seen,
    /// The source's policies on the table that apply to the principal's role.
    pub policies: Vec<String>,
}

/// Each user's access compared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Access {
    /// Who was compared.
    pub principals: Vec<String>,
    /// Tables with RLS enabled on the source, compared.
    pub tables: Vec<String>,
    /// (principal, table) pairs compared.
    pub compared: usize,
    /// The differences.
    pub differences: Vec<AccessDiff>,
    /// Why nothing was compared (`--policies drop`, no RLS table).
    pub not_checked: Option<String>,
}

/// A table with RLS, its compared columns on each side.
#[derive(Debug, Clone)]
pub struct RlsTable {
    /// On the source.
    pub source: TableName,
    /// On the target.
    pub target: TableName,
    /// The columns that tell its rows apart (source name, target name):
    /// its primary key, or every compared column when it has none. Which
    /// rows a user sees is compared; their content is verify's.
    pub columns: Vec<(String, String)>,
}

/// Each user that is not deleted: id, role, the shape of its
/// `app_metadata` (its keys), and the claims Supabase's API would set.
const USERS_SQL: &str = "/* supamigrate */ select u.id::text, coalesce(nullif(u.role, ''), 'authenticated'), \
     coalesce((select string_agg(k, ',' order by k) from jsonb_object_keys(coalesce(u.raw_app_meta_data, '{}')) k), ''), \
     jsonb_build_object('sub', u.id, 'role', coalesce(nullif(u.role, ''), 'authenticated'), \
       'aud', coalesce(u.aud, 'authenticated'), 'email', coalesce(u.email, ''), 'phone', coalesce(u.phone, ''), \
       'app_metadata', coalesce(u.raw_app_meta_data, '{}'), 'user_metadata', coalesce(u.raw_user_meta_data, '{}'), \
       'aal', 'aal1', 'is_anonymous', coalesce((to_jsonb(u) ->> 'is_anonymous')::boolean, false))::text \
     from auth.users u where (to_jsonb(u) ->> 'deleted_at') is null";

/// anon and service_role, then the first `users` signed-up users by id
/// (read through auth.users' primary key: no scan of every user).
pub async fn first_principals(src: &Client, users: i64) -> Result<Vec<Principal>> {
    let mut out = principals(src, 0).await?;
    if users == 0 || !has_users(src).await? {
        return Ok(out);
    }
    let rows = src
        .query(&format!("{USERS_SQL} order by u.id limit $1"), &[&users])
        .await
        .map_err(|e| Error::postgres("reading the users to act as", e))?;
    out.extend(rows.iter().map(|r| Principal {
        name: r.get(0),
        role: r.get(1),
        claims: r.get(3),
    }));
    Ok(out)
}

/// Which (role, table index) pairs of `tables` do not depend on the user,
/// and how (`all`, `none`, `refused`), on one side: catalog reads only.
pub async fn kinds(
    c: &Client,
    tables: &[RlsTable],
    source: bool,
    roles: &[String],
) -> Result<std::collections::BTreeMap<(String, usize), &'static str>> {
    let r = Reader::new(c, tables, source, roles).await?;
    Ok(r.kinds
        .into_iter()
        .map(|(k, kind)| (k, kind.name()))
        .collect())
}

/// The principals: anon, service_role, then up to `users` signed-up users
/// of the source, chosen deterministically: one per role and per shape of
/// `app_metadata` first, then by a hash of their id.
pub async fn principals(src: &Client, users: usize) -> Result<Vec<Principal>> {
    let mut out = vec![
        Principal {
            name: "anon".into(),
            role: "anon".into(),
            claims: r#"{"role":"anon"}"#.into(),
        },
        Principal {
            name: "service_role".into(),
            role: "service_role".into(),
            claims: r#"{"role":"service_role"}"#.into(),
        },
    ];
    if users == 0 || !has_users(src).await? {
        return Ok(out);
    }
    let rows = src
        .query(&format!("{USERS_SQL} order by md5(u.id::text)"), &[])
        .await
        .map_err(|e| Error::postgres("choosing the users whose access is compared", e))?;
    let all: Vec<(String, String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let mut chosen: Vec<usize> = Vec::new();
    let mut seen_roles = std::collections::BTreeSet::new();
    let mut seen_shapes = std::collections::BTreeSet::new();
    for (i, (_, role, shape, _)) in all.iter().enumerate() {
        let new_role = seen_roles.insert(role.clone());
        let new_shape = seen_shapes.insert(shape.clone());
        if (new_role || new_shape) && chosen.len() < users {
            chosen.push(i);
        }
    }
    for i in 0..all.len() {
        if chosen.len() >= users {
            break;
        }
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    chosen.sort_unstable();
    out.extend(chosen.into_iter().map(|i| {
        let (id, role, _, claims) = all[i].clone();
        Principal {
            name: id,
            role,
            claims,
        }
    }));
    Ok(out)
}

async fn has_users(src: &Client) -> Result<bool> {
    Ok(src
        .query_one("select to_regclass('auth.users') is not null", &[])
        .await
        .map_err(|e| Error::postgres("looking for auth.users", e))?
        .get(0))
}

/// The source's tables with RLS enabled, by schema and name.
pub async fn rls_tables(src: &Client) -> Result<Vec<TableName>> {
    let rows = src
        .query(
            "select n.nspname::text, c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where c.relrowsecurity and c.relkind in ('r', 'p') order by 1, 2",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("listing the tables with row level security", e))?;
    Ok(rows
        .iter()
        .map(|r| TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect())
}

/// Runs `f` as `p` inside the open (snapshot) transaction of `c`, and
/// undoes the switch afterwards. `Ok(Err(why))` when the session may not
/// act as `p` (its role is missing, or not granted to this user).
pub async fn as_principal<T>(
    c: &Client,
    p: &Principal,
    f: impl std::future::Future<Output = Result<T>>,
) -> Result<std::result::Result<T, String>> {
    // One round trip: the savepoint and the switch.
    let switched = c
        .batch_execute(&format!(
            "savepoint supamigrate_principal; select set_config('request.jwt.claims', {}, true), set_config('role', {}, true)",
            crate::pg::quote_literal(&p.claims),
            crate::pg::quote_literal(&p.role)
        ))
        .await;
    let out = match switched {
        Ok(_) => f.await.map(Ok),
        Err(e) => Ok(Err(match e.as_db_error() {
            Some(d) => format!("cannot act as role {}: {}", p.role, d.message()),
            None => return Err(Error::postgres(format!("acting as {}", p.name), e)),
        })),
    };
    c.batch_execute(
        "rollback to savepoint supamigrate_principal; release savepoint supamigrate_principal",
    )
    .await
    .map_err(|e| Error::postgres("leaving the savepoint", e))?;
    out
}

/// `n` refusals saying `why`: what a principal that cannot be acted as
/// sees of each of `n` objects.
pub fn refused(n: usize, why: String) -> Vec<Seen> {
    vec![Seen::Refused { message: why }; n]
}

/// The count and fingerprint of the rows `x`: a 64-bit hash of each row's
/// text, XORed (no sort; equal rows twice cancel out, but the count
/// tells).
const FINGERPRINT: &str = "count(*), coalesce(bit_xor(hashtextextended(x::text, 0)), 0)::text";

/// What the current role sees of a query's rows: count and fingerprint;
/// a refusal is an outcome, not an error.
pub async fn seen(c: &Client, from: &str) -> Result<Seen> {
    c.batch_execute("savepoint supamigrate_read")
        .await
        .map_err(|e| Error::postgres("opening a savepoint", e))?;
    let sql = crate::sql::own(&format!("select {FINGERPRINT} from {from} x"));
    let r = c.query_one(&sql, &[]).await;
    let (undo, out) = match r {
        Ok(row) => (
            "release savepoint supamigrate_read",
            Seen::Rows {
                count: row.get(0),
                fingerprint: row.get(1),
            },
        ),
        Err(e) => {
            if e.as_db_error().is_none() {
                return Err(Error::postgres("reading as an application user", e));
            }
            (
                "rollback to savepoint supamigrate_read; release savepoint supamigrate_read",
                Seen::Refused {
                    message: super::server_error(&e),
                },
            )
        }
    };
    c.batch_execute(undo)
        .await
        .map_err(|e| Error::postgres("leaving the savepoint", e))?;
    Ok(out)
}

/// The rows of `t` with `columns`, as a FROM item.
pub fn rows_of(t: &TableName, columns: &[String]) -> String {
    let cols: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    format!("(select {} from {}) ", cols.join(", "), t.quoted())
}

/// The database roles `principals` act as, once each, sorted.
pub fn roles_of(principals: &[Principal]) -> Vec<String> {
    principals
        .iter()
        .map(|p| p.role.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Compares each principal's view of each table.
pub async fn compare(
    src: &Client,
    tgt: &Client,
    principals: &[Principal],
    tables: &[RlsTable],
) -> Result<Access> {
    let mut out = Access {
        principals: principals.iter().map(|p| p.name.clone()).collect(),
        tables: tables.iter().map(|t| t.target.to_string()).collect(),
        ..Access::default()
    };
    let roles = roles_of(principals);
    let (mut on_source, mut on_target) = tokio::try_join!(
        Reader::new(src, tables, true, &roles),
        Reader::new(tgt, tables, false, &roles)
    )?;
    // A table a role sees the same way on both sides whoever the user is
    // (every row, none, or refused) needs no read: every row's content is
    // verify's to compare.
    let settled: std::collections::BTreeMap<(String, usize), Seen> = on_source
        .kinds
        .iter()
        .filter(|(k, kind)| on_target.kinds.get(*k) == Some(*kind))
        .map(|(k, kind)| (k.clone(), kind.seen()))
        .collect();
    on_source.cache.extend(settled.clone());
    on_target.cache.extend(settled);
    for p in principals {
        let (source, target) = tokio::try_join!(on_source.read(p), on_target.read(p))?;
        for ((t, s), n) in tables.iter().zip(source).zip(target) {
            out.compared += 1;
            if s.same(&n) {
                continue;
            }
            out.differences.push(AccessDiff {
                table: t.target.to_string(),
                principal: p.name.clone(),
                source: s,
                target: n,
                policies: policies(src, &t.source, &p.role).await?,
            });
        }
    }
    Ok(out)
}

/// What a role sees of a table whoever the user is, when that does not
/// depend on the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Every row: no row level security, BYPASSRLS, or a permissive
    /// `USING (true)` policy for it and no restrictive one.
    All,
    /// No row: row level security and no permissive policy for it.
    None,
    /// No SELECT privilege.
    Refused,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::All => "every row",
            Kind::None => "no row",
            Kind::Refused => "refused",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        match s {
            "all" => Some(Kind::All),
            "none" => Some(Kind::None),
            "refused" => Some(Kind::Refused),
            _ => None,
        }
    }

    /// What both sides seeing it this way stands for.
    fn seen(self) -> Seen {
        match self {
            Kind::All => Seen::Rows {
                count: -1,
                fingerprint: "every row (their content compared by verify)".into(),
            },
            Kind::None => Seen::Rows {
                count: 0,
                fingerprint: "0".into(),
            },
            Kind::Refused => Seen::Refused {
                message: "no SELECT privilege".into(),
            },
        }
    }
}

/// Which (table, role) pairs do not depend on the user, and how.
const KINDS_SQL: &str = "select u.n::int - 1, r.rolname::text, \
   case when not has_table_privilege(r.rolname, u.t, 'select') then 'refused' \
        when r.rolbypassrls or not coalesce(c.relrowsecurity, true) then 'all' \
        when not exists (select 1 from pg_policy p where p.polrelid = c.oid and p.polpermissive \
                           and p.polcmd in ('r', '*') and exists (select 1 from unnest(p.polroles) pr \
                           where pr = 0 or pg_has_role(r.rolname, pr, 'MEMBER'))) then 'none' \
        when exists (select 1 from pg_policy p where p.polrelid = c.oid and p.polpermissive \
                       and p.polcmd in ('r', '*') and pg_get_expr(p.polqual, p.polrelid) = 'true' \
                       and exists (select 1 from unnest(p.polroles) pr where pr = 0 or pg_has_role(r.rolname, pr, 'MEMBER'))) \
             and not exists (select 1 from pg_policy p where p.polrelid = c.oid and not p.polpermissive \
                       and p.polcmd in ('r', '*') and exists (select 1 from unnest(p.polroles) pr \
                       where pr = 0 or pg_has_role(r.rolname, pr, 'MEMBER'))) then 'all' \
        else 'user' end \
 from unnest($1::text[]) with ordinality u(t, n) \
 join pg_class c on c.oid = to_regclass(u.t) \
 cross join (select rolname, rolbypassrls from pg_roles where rolname = any($2)) r";

/// One side's reads: what does not depend on the user is read once per
/// role (or not at all, when both sides agree it is every row, none, or
/// refused); only the rest is read for each user.
struct Reader<'a> {
    c: &'a Client,
    tables: &'a [RlsTable],
    source: bool,
    /// (role, table index) pairs whose rows do not depend on the user.
    kinds: std::collections::BTreeMap<(String, usize), Kind>,
    cache: std::collections::BTreeMap<(String, usize), Seen>,
}

impl<'a> Reader<'a> {
    async fn new(
        c: &'a Client,
        tables: &'a [RlsTable],
        source: bool,
        roles: &[String],
    ) -> Result<Reader<'a>> {
        let names: Vec<String> = tables
            .iter()
            .map(|t| {
                if source {
                    t.source.quoted()
                } else {
                    t.target.quoted()
                }
            })
            .collect();
        let rows = c
            .query(KINDS_SQL, &[&names, &roles])
            .await
            .map_err(|e| Error::postgres("reading which policies depend on the user", e))?;
        Ok(Reader {
            c,
            tables,
            source,
            kinds: rows
                .iter()
                .filter_map(|r| {
                    let kind = Kind::parse(r.get::<_, &str>(2))?;
                    Some(((r.get::<_, String>(1), r.get::<_, i32>(0) as usize), kind))
                })
                .collect(),
            cache: Default::default(),
        })
    }

    /// What `p` sees of each table.
    async fn read(&mut self, p: &Principal) -> Result<Vec<Seen>> {
        let n = self.tables.len();
        let need: Vec<usize> = (0..n)
            .filter(|i| !self.cache.contains_key(&(p.role.clone(), *i)))
            .collect();
        let mut got: std::collections::BTreeMap<usize, Seen> = if need.is_empty() {
            Default::default()
        } else {
            match as_principal(self.c, p, side(self.c, self.tables, self.source, &need)).await? {
                Ok(read) => need.into_iter().zip(read).collect(),
                Err(why) => return Ok(refused(n, why)),
            }
        };
        for (i, s) in &got {
            if self.kinds.contains_key(&(p.role.clone(), *i)) {
                self.cache.insert((p.role.clone(), *i), s.clone());
            }
        }
        Ok((0..n)
            .map(|i| {
                got.remove(&i)
                    .or_else(|| self.cache.get(&(p.role.clone(), i)).cloned())
                    .unwrap_or(Seen::Refused {
                        message: "not read".into(),
                    })
            })
            .collect())
    }
}

/// What the current role sees of each table of `which`: the tables it may
/// not read are refused without a query, the others read in one statement
/// (each alone, in a savepoint, if that statement fails).
async fn side(c: &Client, all: &[RlsTable], source: bool, which: &[usize]) -> Result<Vec<Seen>> {
    let tables: Vec<&RlsTable> = which.iter().filter_map(|&i| all.get(i)).collect();
    let mut froms = Vec::with_capacity(tables.len());
    let mut names = Vec::with_capacity(tables.len());
    for t in &tables {
        let (name, cols): (&TableName, Vec<String>) = if source {
            (&t.source, t.columns.iter().map(|c| c.0.clone()).collect())
        } else {
            (&t.target, t.columns.iter().map(|c| c.1.clone()).collect())
        };
        froms.push(rows_of(name, &cols));
        names.push(name.quoted());
    }
    let mut out: Vec<Seen> = vec![
        Seen::Refused {
            message: "no SELECT privilege".into(),
        };
        tables.len()
    ];
    let may = may_read(c, &names).await?;
    let readable: Vec<usize> = (0..tables.len())
        .filter(|&i| may.get(i) == Some(&true))
        .collect();
    if readable.is_empty() {
        return Ok(out);
    }
    if !read_together(c, &froms, &readable, &mut out).await? {
        for &i in &readable {
            out[i] = seen(c, &froms[i]).await?;
        }
    }
    Ok(out)
}

/// Whether the current role may read each of `names`.
async fn may_read(c: &Client, names: &[String]) -> Result<Vec<bool>> {
    Ok(c.query_one(
        "select coalesce(array_agg(has_table_privilege(t, 'select') order by n), '{}') \
             from unnest($1::text[]) with ordinality u(t, n)",
        &[&names],
    )
    .await
    .map_err(|e| Error::postgres("reading the role's privileges", e))?
    .get(0))
}

/// Reads `readable` of `froms` in one round trip (a savepoint, the reads,
/// its release) into `out`; `false` when the statement failed (undone).
async fn read_together(
    c: &Client,
    froms: &[String],
    readable: &[usize],
    out: &mut [Seen],
) -> Result<bool> {
    let union: Vec<String> = readable
        .iter()
        .map(|&i| format!("select {i}::int, {FINGERPRINT} from {} x", froms[i]))
        .collect();
    let batch = format!(
        "savepoint supamigrate_read; {}; release savepoint supamigrate_read",
        crate::sql::own(&union.join(" union all "))
    );
    let Ok(messages) = c.simple_query(&batch).await else {
        c.batch_execute(
            "rollback to savepoint supamigrate_read; release savepoint supamigrate_read",
        )
        .await
        .map_err(|e| Error::postgres("leaving the savepoint", e))?;
        return Ok(false);
    };
    for m in messages {
        let tokio_postgres::SimpleQueryMessage::Row(r) = m else {
            continue;
        };
        let field = |k: usize| r.get(k).unwrap_or_default().to_string();
        let (Ok(i), Ok(count)) = (field(0).parse::<usize>(), field(1).parse::<i64>()) else {
            return Err(Error::internal(
                "an unreadable row count from the access comparison",
            ));
        };
        if let Some(slot) = out.get_mut(i) {
            *slot = Seen::Rows {
                count,
                fingerprint: field(2),
            };
        }
    }
    Ok(true)
}

/// The source's policies on `t` that apply to `role`.
async fn policies(src: &Client, t: &TableName, role: &str) -> Result<Vec<String>> {
    let rows = src
        .query(
            "select policyname::text || ' (' || permissive || ', ' || cmd || ')' from pg_policies \
             where schemaname = $1 and tablename = $2 and ($3 = any(roles) or 'public' = any(roles)) order by 1",
            &[&t.schema, &t.name, &role],
        )
        .await
        .map_err(|e| Error::postgres(format!("reading the policies of {t}"), e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
