//! `FORCE ROW LEVEL SECURITY` on the target, lifted while supamigrate itself
//! reads or writes rows.
//!
//! FORCE makes a table's policies apply to its owner too. On the target the
//! owner of every migrated table is the master role supamigrate connects
//! as, which (as on RDS) is no superuser and cannot bypass RLS: under FORCE
//! verify would count only the rows the policies show it, the Storage
//! rewrite and the follow would update none, and a COPY into the table
//! would fail. The application's roles are not owners: FORCE changes
//! nothing for them, lifted or not.
//!
//! So every operation on rows runs inside [`unforced`]: it holds a shared
//! advisory lock on a session of its own, records the forced tables in
//! `supamigrate.unforced_rls` and lifts FORCE. When it ends (well or not)
//! and no other operation holds the lock (a `follow` may end while a
//! `cutover` still reads), FORCE is put back on each recorded table and the
//! record cleared in one transaction. A kill leaves the record; the next
//! operation puts FORCE back when it ends.

use std::future::Future;

use tokio_postgres::Client;

use crate::connect::{connect, ConnInfo};
use crate::error::{Error, Result};
use crate::pg::TableName;

/// The advisory lock every operation with FORCE lifted holds shared (on
/// its own session, so a killed process lets go of it): FORCE is put back
/// only by whoever can then take it alone, the last one out.
const HOLDERS: &str = "select pg_advisory_lock_shared(hashtext('supamigrate.unforced_rls'))";
const RELEASE: &str = "select pg_advisory_unlock_shared(hashtext('supamigrate.unforced_rls'))";
const LAST_OUT: &str = "select pg_try_advisory_lock(hashtext('supamigrate.unforced_rls'))";
const UNLOCK: &str = "select pg_advisory_unlock(hashtext('supamigrate.unforced_rls'))";

/// Runs `f` with FORCE ROW LEVEL SECURITY lifted from the target's tables
/// (see the module's documentation); puts it back after, whatever `f`
/// returned, unless another operation (this process's or another's: a
/// `follow` while `cutover` runs) still works with it lifted. A target
/// without supamigrate's store is left as it is.
pub async fn unforced<T, F>(target: &ConnInfo, f: F) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    let Some(holder) = store(target).await? else {
        return f.await;
    };
    let what = |e| Error::postgres("holding FORCE ROW LEVEL SECURITY lifted on the target", e);
    holder.batch_execute(HOLDERS).await.map_err(what)?;
    let result = match lift(&holder).await {
        Ok(()) => f.await,
        Err(e) => Err(e),
    };
    // A holder session lost (a target restart the operation rode out)
    // took its shared lock with it: the last-out check runs on a new one.
    let mut out = if holder.is_closed() {
        Err(Error::internal("the holder session is gone"))
    } else {
        last_out(&holder, true).await
    };
    if out.is_err() && holder.is_closed() {
        out = match connect(target).await {
            Ok(fresh) => last_out(&fresh, false).await,
            Err(e) => Err(e),
        };
    }
    match (result, out) {
        (Ok(v), Ok(())) => Ok(v),
        (Ok(_), Err(e)) => Err(e),
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(put)) => {
            tracing::warn!(error = %put, "FORCE ROW LEVEL SECURITY was not put back; the next supamigrate command puts it back");
            Err(e)
        }
    }
}

/// Lets go of the shared lock (when `holding`); puts FORCE back if nobody
/// else holds it.
async fn last_out(holder: &Client, holding: bool) -> Result<()> {
    let what = |e| Error::postgres("putting FORCE ROW LEVEL SECURITY back on the target", e);
    if holding {
        holder.batch_execute(RELEASE).await.map_err(what)?;
    }
    let alone: bool = holder.query_one(LAST_OUT, &[]).await.map_err(what)?.get(0);
    if !alone {
        return Ok(());
    }
    let put = put_back(holder).await;
    holder.batch_execute(UNLOCK).await.map_err(what)?;
    put
}

/// The target's store at a version that has `unforced_rls`, if it has a
/// store at all.
async fn store(target: &ConnInfo) -> Result<Option<Client>> {
    let mut c = connect(target).await?;
    match crate::store::version(&c).await? {
        0 => Ok(None),
        v if v < 6 => {
            crate::store::migrate(&mut c).await?;
            Ok(Some(c))
        }
        _ => Ok(Some(c)),
    }
}

/// Runs `body` in one transaction on `c` (rolled back if it fails: the
/// holder session goes on to release its lock).
async fn in_transaction(c: &Client, what: &str, body: &str) -> Result<()> {
    let run = async {
        c.batch_execute("begin").await?;
        c.batch_execute(body).await?;
        c.batch_execute("commit").await
    };
    if let Err(e) = run.await {
        let _ = c.batch_execute("rollback").await;
        return Err(Error::postgres(what.to_string(), e));
    }
    Ok(())
}

async fn lift(c: &Client) -> Result<()> {
    let what = "lifting FORCE ROW LEVEL SECURITY on the target";
    in_transaction(
        c,
        what,
        "insert into supamigrate.unforced_rls (table_schema, table_name) \
         select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace \
         where c.relforcerowsecurity and c.relkind in ('r', 'p') and pg_has_role(c.relowner, 'USAGE') \
           and n.nspname not in ('pg_catalog', 'information_schema', 'supamigrate') \
         on conflict do nothing",
    )
    .await?;
    let sql: String = recorded(c)
        .await?
        .iter()
        .map(|t| format!("alter table {} no force row level security;", t.quoted()))
        .collect();
    in_transaction(c, what, &sql).await
}

async fn put_back(c: &Client) -> Result<()> {
    let mut sql: String = recorded(c)
        .await?
        .iter()
        .map(|t| {
            format!(
                "alter table if exists {} force row level security;",
                t.quoted()
            )
        })
        .collect();
    sql.push_str("delete from supamigrate.unforced_rls;");
    in_transaction(
        c,
        "putting FORCE ROW LEVEL SECURITY back on the target",
        &sql,
    )
    .await
}

async fn recorded(c: &impl tokio_postgres::GenericClient) -> Result<Vec<TableName>> {
    Ok(c.query(
        "select table_schema, table_name from supamigrate.unforced_rls order by 1, 2",
        &[],
    )
    .await
    .map_err(|e| Error::postgres("reading the tables whose FORCE is lifted", e))?
    .iter()
    .map(|r| TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)))
    .collect())
}

/// Lifts FORCE for good in a throwaway database (a restored backup being
/// counted), where nothing needs it back.
pub async fn lift_for_good(c: &Client) -> Result<()> {
    let rows = c
        .query(
            "select n.nspname::text, c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where c.relforcerowsecurity and c.relkind in ('r', 'p') and pg_has_role(c.relowner, 'USAGE')",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("listing tables with FORCE ROW LEVEL SECURITY", e))?;
    for r in rows {
        let t = TableName::new(r.get::<_, String>(0), r.get::<_, String>(1));
        c.batch_execute(&format!(
            "alter table {} no force row level security",
            t.quoted()
        ))
        .await
        .map_err(|e| Error::postgres(format!("lifting FORCE on {t}"), e))?;
    }
    Ok(())
}
