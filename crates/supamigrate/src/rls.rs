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
//! So every operation on rows runs inside [`unforced`]: the forced tables
//! are recorded in `supamigrate.unforced_rls`, FORCE is lifted, and when the
//! operation ends (well or not) FORCE is put back on each recorded table
//! and the record cleared, in one transaction each way. A kill in between
//! leaves the record; the next operation puts FORCE back when it ends.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use tokio_postgres::Client;

use crate::connect::{connect, ConnInfo};
use crate::error::{Error, Result};
use crate::pg::TableName;

/// Operations running per target database in this process: only the
/// outermost lifts and puts back.
static DEPTH: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);

fn enter(key: &str) -> bool {
    let mut d = DEPTH.lock().unwrap_or_else(|p| p.into_inner());
    let n = d
        .get_or_insert_with(HashMap::new)
        .entry(key.to_string())
        .or_insert(0);
    *n += 1;
    *n == 1
}

fn leave(key: &str) {
    let mut d = DEPTH.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = d.get_or_insert_with(HashMap::new).get_mut(key) {
        *n = n.saturating_sub(1);
    }
}

/// Runs `f` with FORCE ROW LEVEL SECURITY lifted from the target's tables
/// (see the module's documentation); puts it back after, whatever `f`
/// returned. A target without supamigrate's store is left as it is.
pub async fn unforced<T, F>(target: &ConnInfo, f: F) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    let key = format!("{}:{}/{}", target.host, target.port, target.dbname);
    let outer = enter(&key);
    let result = async {
        if outer {
            lift(target).await?;
        }
        f.await
    }
    .await;
    leave(&key);
    if !outer {
        return result;
    }
    match (result, put_back(target).await) {
        (Ok(v), Ok(())) => Ok(v),
        (Ok(_), Err(e)) => Err(e),
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(put)) => {
            tracing::warn!(error = %put, "FORCE ROW LEVEL SECURITY was not put back; the next supamigrate command puts it back");
            Err(e)
        }
    }
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

async fn lift(target: &ConnInfo) -> Result<()> {
    let Some(mut c) = store(target).await? else {
        return Ok(());
    };
    let what = |e| Error::postgres("lifting FORCE ROW LEVEL SECURITY on the target", e);
    let tx = c.transaction().await.map_err(what)?;
    tx.execute(
        "insert into supamigrate.unforced_rls (table_schema, table_name) \
         select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace \
         where c.relforcerowsecurity and c.relkind in ('r', 'p') and pg_has_role(c.relowner, 'USAGE') \
           and n.nspname not in ('pg_catalog', 'information_schema', 'supamigrate') \
         on conflict do nothing",
        &[],
    )
    .await
    .map_err(what)?;
    for t in recorded(&tx).await? {
        tx.batch_execute(&format!(
            "alter table {} no force row level security",
            t.quoted()
        ))
        .await
        .map_err(what)?;
    }
    tx.commit().await.map_err(what)
}

async fn put_back(target: &ConnInfo) -> Result<()> {
    let Some(mut c) = store(target).await? else {
        return Ok(());
    };
    let what = |e| Error::postgres("putting FORCE ROW LEVEL SECURITY back on the target", e);
    let tx = c.transaction().await.map_err(what)?;
    for t in recorded(&tx).await? {
        tx.batch_execute(&format!(
            "alter table if exists {} force row level security",
            t.quoted()
        ))
        .await
        .map_err(what)?;
    }
    tx.batch_execute("delete from supamigrate.unforced_rls")
        .await
        .map_err(what)?;
    tx.commit().await.map_err(what)
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
