//! Guards before any write: the two sides are what they claim to be (the
//! source a Supabase project, the target not the source and not a Supabase
//! project), both servers have connections for the workers asked for, and
//! one migration at a time (a lock file in the state folder, an advisory
//! lock on the target server), the holder named when refused.

use std::io::{Seek, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::connect::{connect, ConnInfo};
use crate::error::{Error, ErrorKind, Result};

/// What a server says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `pg_control_system().system_identifier`, when the role may read it.
    pub system_identifier: Option<i64>,
    /// Host and port as connected.
    pub address: (String, u16),
    /// The database named by the connection string.
    pub database: String,
    /// Whether it exists yet.
    pub database_exists: bool,
    /// Supabase's own roles found on the server.
    pub supabase_roles: Vec<String>,
    /// `auth.users` is a table in the database (on our targets it is a view).
    pub auth_users_table: bool,
}

/// Reads `info`'s identity (through `postgres` when its database does not
/// exist yet).
pub async fn identify(info: &ConnInfo) -> Result<Identity> {
    let (client, database_exists) = match connect(info).await {
        Ok(c) => (c, true),
        Err(e) if e.kind() == ErrorKind::InvalidInput && info.dbname != "postgres" => {
            (connect(&info.with_dbname("postgres")).await?, false)
        }
        Err(e) => return Err(e),
    };
    let system_identifier = client
        .query_one("select system_identifier from pg_control_system()", &[])
        .await
        .ok()
        .map(|r| r.get(0));
    let row = client
        .query_one(
            "select coalesce(array_agg(rolname::text order by rolname), '{}') from pg_roles \
             where rolname in ('supabase_admin', 'supabase_auth_admin', 'supabase_storage_admin')",
            &[],
        )
        .await
        .map_err(|e| Error::postgres(format!("reading the roles of {info}"), e))?;
    let supabase_roles: Vec<String> = row.get(0);
    let auth_users_table = database_exists
        && client
            .query_one(
                "select exists (select from pg_class c join pg_namespace n on n.oid = c.relnamespace \
                 where n.nspname = 'auth' and c.relname = 'users' and c.relkind in ('r', 'p'))",
                &[],
            )
            .await
            .map_err(|e| Error::postgres(format!("looking for auth.users on {info}"), e))?
            .get(0);
    Ok(Identity {
        system_identifier,
        address: (info.host.clone(), info.port),
        database: info.dbname.clone(),
        database_exists,
        supabase_roles,
        auth_users_table,
    })
}

/// Refuses sides that cannot be this migration's: the target is the
/// source, the target is a Supabase project, the source is not one. Pure.
pub fn judge(source: &Identity, target: &Identity, plain_source: bool) -> Result<()> {
    let same_server = match (source.system_identifier, target.system_identifier) {
        (Some(a), Some(b)) => a == b,
        _ => source.address == target.address,
    };
    if same_server && source.database == target.database {
        return Err(Error::invalid_input(format!(
            "RDS_URL and SUPABASE_DB_URL point at the same database ({} on one server); nothing was changed",
            target.database
        ))
        .with_hint("RDS_URL is the new RDS database the project moves to; SUPABASE_DB_URL the Supabase project's database"));
    }
    let swapped = "are SUPABASE_DB_URL and RDS_URL swapped? RDS_URL is the new RDS database; SUPABASE_DB_URL the Supabase project's database";
    if target.auth_users_table || !target.supabase_roles.is_empty() {
        let what = if target.auth_users_table {
            "a table auth.users".to_string()
        } else {
            format!("Supabase's roles ({})", target.supabase_roles.join(", "))
        };
        return Err(Error::invalid_input(format!(
            "the target looks like a Supabase project: it has {what}; nothing was changed"
        ))
        .with_hint(swapped));
    }
    if !source.auth_users_table && !plain_source {
        return Err(Error::invalid_input(format!(
            "the source does not look like a Supabase project: database {} has no table auth.users; nothing was changed",
            source.database
        ))
        .with_hint(format!("{swapped}; a plain PostgreSQL source is migrated with --plain-source")));
    }
    Ok(())
}

/// Reads both sides and [`judge`]s them.
pub async fn check_sides(source: &ConnInfo, target: &ConnInfo, plain_source: bool) -> Result<()> {
    let (s, t) = tokio::try_join!(identify(source), identify(target))?;
    judge(&s, &t, plain_source)
}

/// Connections a server accepts now for a role without superuser rights:
/// `max_connections` less the reserved slots and the sessions open.
pub async fn free_connections(client: &Client) -> Result<i64> {
    let row = client
        .query_one(
            "select current_setting('max_connections')::int \
                  - current_setting('superuser_reserved_connections')::int \
                  - coalesce(nullif(current_setting('reserved_connections', true), '')::int, 0) \
                  - coalesce(nullif(current_setting('rds.rds_superuser_reserved_connections', true), '')::int, 0) \
                  - (select count(*) from pg_stat_activity where backend_type = 'client backend')::int, \
                  current_setting('max_connections')::int",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("counting the server's free connections", e))?;
    Ok(i64::from(row.get::<_, i32>(0)))
}

/// Refuses `jobs` workers (each one session per side, plus `extra`
/// sessions of the command's own) when a server has fewer free connections.
pub async fn check_jobs(
    sides: &[(&str, &ConnInfo)],
    option: &str,
    jobs: usize,
    extra: usize,
) -> Result<()> {
    for (name, info) in sides {
        let server = if crate::connect::probe(info).await?.database_exists {
            (*info).clone()
        } else {
            info.with_dbname("postgres")
        };
        let free = free_connections(&connect(&server).await?).await? + 1; // this session
        let needed = (jobs + extra) as i64;
        if needed > free {
            let most = (free - extra as i64).max(0);
            return Err(Error::invalid_input(format!(
                "{option} {jobs} needs {needed} connections to the {name} ({jobs} workers and {extra} of its own), but the {name} has {free} free; nothing was changed"
            ))
            .with_hint(if most > 0 {
                format!("use {option} {most} or fewer, or close other sessions, or raise max_connections on the {name}")
            } else {
                format!("close other sessions or raise max_connections on the {name}")
            }));
        }
    }
    Ok(())
}

/// Sessions a copy opens besides its workers' on each side: the
/// coordinator and the store's session, and the index builder's (half the
/// workers) when post-data overlaps the copy.
pub fn copy_sessions(jobs: usize, post_data: bool) -> usize {
    2 + if post_data { (jobs / 2).max(1) } else { 0 }
}

/// Sessions verify opens besides its workers' on each side: the one that
/// holds the snapshot, the coordinator, the one lifting FORCE RLS, and the
/// application's checks' three (`--app`, and `run`).
pub const VERIFY_SESSIONS: usize = 6;

/// Who holds the migration lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// When it started (UTC).
    pub started_at: String,
    /// The command.
    pub command: String,
}

impl Holder {
    fn me(command: &str) -> Holder {
        Holder {
            pid: std::process::id(),
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "unknown".into()),
            started_at: crate::clock::utc_now(),
            command: command.to_string(),
        }
    }

    fn describe(&self) -> String {
        format!(
            "`supamigrate {}` (pid {} on {}, started {})",
            self.command, self.pid, self.host, self.started_at
        )
    }
}

/// How a command holds the migration lock.
///
/// Every command that writes, on either side, holds it before its first
/// write. Most hold it alone; the follow's stream and the cutover are the
/// one pair that runs side by side (a cutover catches up with the running
/// `follow`), each still alone of its own kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Alone: any other command is refused.
    Exclusive,
    /// The follow's stream: beside a cutover only.
    Follow,
    /// The cutover or its abort: beside a follow's stream only.
    Cutover,
    /// `storage copy`: beside a follow's stream (objects copied before the
    /// cutover, not inside its downtime), never beside a cutover (which
    /// runs the Storage step itself).
    Storage,
}

impl Hold {
    /// The lock files (and advisory key suffixes) a side-by-side hold
    /// takes alone.
    fn roles(self) -> &'static [&'static str] {
        match self {
            Hold::Exclusive => &[],
            Hold::Follow => &["follow"],
            Hold::Cutover => &["cutover"],
            Hold::Storage => &["storage", "cutover"],
        }
    }
}

/// The migration lock: held until dropped.
pub struct Lock {
    main: nix::fcntl::Flock<std::fs::File>,
    roles: Vec<nix::fcntl::Flock<std::fs::File>>,
    session: Option<Client>,
    state_dir: std::path::PathBuf,
    target: ConnInfo,
    me: Holder,
    hold: Hold,
}

/// The lock file in the state folder.
pub const LOCK_FILE: &str = "lock";

/// Takes the migration lock for `command`, alone ([`Hold::Exclusive`]).
pub async fn lock(state_dir: &Path, target: &ConnInfo, command: &str) -> Result<Lock> {
    lock_as(state_dir, target, command, Hold::Exclusive).await
}

/// Takes the migration lock for `command`: the state folder's lock files
/// (`flock`, released by the kernel however the process ends) and advisory
/// locks on the target server held by a session named after us. Refused
/// (exit 2) when another migration holds what `hold` excludes, naming it.
pub async fn lock_as(
    state_dir: &Path,
    target: &ConnInfo,
    command: &str,
    hold: Hold,
) -> Result<Lock> {
    let me = Holder::me(command);
    crate::fsutil::private_dir(state_dir)?;
    // The shared lock first: refused, it names the holder of the whole.
    let main = take_file(state_dir, LOCK_FILE, &me, hold == Hold::Exclusive)?;
    let roles = hold
        .roles()
        .iter()
        .map(|r| take_file(state_dir, r, &me, true))
        .collect::<Result<Vec<_>>>()?;
    let session = target_session(target, &me).await?;
    if let Some(c) = &session {
        for r in hold.roles() {
            try_advisory(c, target, &advisory_key(target, Some(r)), true).await?;
        }
        try_advisory(
            c,
            target,
            &advisory_key(target, None),
            hold == Hold::Exclusive,
        )
        .await?;
    }
    Ok(Lock {
        main,
        roles,
        session,
        state_dir: state_dir.to_path_buf(),
        target: target.clone(),
        me,
        hold,
    })
}

impl Lock {
    /// Lets a cutover run beside this command from now on (`run --follow`
    /// entering its follow): it holds the follow's lock and shares the
    /// migration's. Other commands stay refused throughout.
    pub async fn admit_cutover(&mut self) -> Result<()> {
        if self.hold != Hold::Exclusive {
            return Ok(());
        }
        self.roles = vec![take_file(&self.state_dir, "follow", &self.me, true)?];
        if let Some(c) = &self.session {
            try_advisory(
                c,
                &self.target,
                &advisory_key(&self.target, Some("follow")),
                true,
            )
            .await?;
            // Shared first, then the exclusive one released: never unheld.
            let key = advisory_key(&self.target, None);
            try_advisory(c, &self.target, &key, false).await?;
            c.query_one("select pg_advisory_unlock(hashtext($1))", &[&key])
                .await
                .map_err(|e| Error::postgres("sharing the migration's lock on the target", e))?;
        }
        self.main
            .relock(nix::fcntl::FlockArg::LockSharedNonblock)
            .map_err(|e| Error::internal(format!("sharing the state folder's lock: {e}")))?;
        self.hold = Hold::Follow;
        Ok(())
    }

    /// Holds the migration lock alone again after [`Lock::admit_cutover`],
    /// waiting up to `wait` for a cutover running beside it to end.
    pub async fn alone_again(&mut self, wait: std::time::Duration) -> Result<()> {
        if self.hold == Hold::Exclusive {
            return Ok(());
        }
        let started = std::time::Instant::now();
        loop {
            match self.try_alone().await {
                Ok(()) => break,
                Err(e) if started.elapsed() < wait && e.is_bad_input() => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
        self.roles.clear();
        self.hold = Hold::Exclusive;
        Ok(())
    }

    async fn try_alone(&mut self) -> Result<()> {
        if let Some(c) = &self.session {
            let key = advisory_key(&self.target, None);
            try_advisory(c, &self.target, &key, true).await?;
            c.query_one("select pg_advisory_unlock_shared(hashtext($1))", &[&key])
                .await
                .map_err(|e| Error::postgres("taking the migration's lock on the target", e))?;
        }
        self.main
            .relock(nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|_| busy(&describe_holders(&self.state_dir), "state folder"))?;
        write_holder(&self.main, &self.state_dir.join(LOCK_FILE), &self.me)
    }
}

/// Opens and locks one of the state folder's lock files; an exclusive
/// holder writes itself into it, for the message a refused command gives.
fn take_file(
    state_dir: &Path,
    name: &str,
    me: &Holder,
    exclusive: bool,
) -> Result<nix::fcntl::Flock<std::fs::File>> {
    use nix::fcntl::FlockArg;
    let path = state_dir.join(name);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let arg = if exclusive {
        FlockArg::LockExclusiveNonblock
    } else {
        FlockArg::LockSharedNonblock
    };
    let file = nix::fcntl::Flock::lock(file, arg).map_err(|_| {
        busy(
            &describe_holders(state_dir),
            &format!("state folder {}", state_dir.display()),
        )
    })?;
    if exclusive {
        write_holder(&file, &path, me)?;
    }
    Ok(file)
}

fn write_holder(file: &nix::fcntl::Flock<std::fs::File>, path: &Path, me: &Holder) -> Result<()> {
    let body = serde_json::to_string(me).map_err(|e| Error::internal(e.to_string()))?;
    let mut f: &std::fs::File = file;
    f.set_len(0)
        .and_then(|_| f.rewind())
        .and_then(|_| f.write_all(body.as_bytes()))
        .and_then(|_| f.flush())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Who holds the state folder's locks: the side-by-side holders that are
/// held now, else the last exclusive holder written in the main file.
fn describe_holders(state_dir: &Path) -> String {
    let read = |name: &str| -> Option<String> {
        let text = std::fs::read_to_string(state_dir.join(name)).ok()?;
        serde_json::from_str::<Holder>(&text)
            .ok()
            .map(|h| h.describe())
    };
    let held = |name: &str| -> bool {
        std::fs::File::open(state_dir.join(name))
            .ok()
            .map(|f| nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockSharedNonblock).is_err())
            .unwrap_or(false)
    };
    let side: Vec<String> = ["follow", "cutover", "storage"]
        .into_iter()
        .filter(|r| held(r))
        .filter_map(read)
        .fold(Vec::new(), |mut v, h| {
            if !v.contains(&h) {
                v.push(h);
            }
            v
        });
    if !side.is_empty() {
        return side.join(" and ");
    }
    read(LOCK_FILE).unwrap_or_else(|| "another supamigrate".into())
}

fn busy(holder: &str, what: &str) -> Error {
    Error::invalid_input(format!(
        "another migration is running: {holder} holds the lock on the {what}; nothing was changed"
    ))
    .with_hint("wait for it to finish (one migration at a time), or stop it; a killed one releases its lock")
}

fn advisory_key(target: &ConnInfo, role: Option<&str>) -> String {
    match role {
        None => format!("supamigrate:{}", target.dbname),
        Some(r) => format!("supamigrate:{}:{r}", target.dbname),
    }
}

/// The session holding our advisory locks on the target server (in its
/// `postgres` database, which exists before the target database does),
/// named after us.
async fn target_session(target: &ConnInfo, me: &Holder) -> Result<Option<Client>> {
    let mut info = target.with_dbname("postgres");
    info.application_name = Some(format!(
        "supamigrate {} pid={} host={} started={}",
        me.command, me.pid, me.host, me.started_at
    ));
    match connect(&info).await {
        Ok(c) => Ok(Some(c)),
        Err(e) if e.is_bad_input() && e.kind() == ErrorKind::InvalidInput => {
            tracing::warn!(error = %e, "no advisory lock on the target (its postgres database is not reachable); the state folder's lock still holds");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// How long a lock whose holder is gone (a supamigrate on this host that
/// was killed: the server has not seen its connection close yet) is waited
/// for.
const GONE_HOLDER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Takes an advisory lock keyed by `key`, exclusive or shared; refused
/// naming the session that holds it. A holder that is a supamigrate of this
/// host no longer running is waited for, briefly: its server session ends
/// as soon as the server sees the connection closed.
async fn try_advisory(
    client: &Client,
    target: &ConnInfo,
    key: &str,
    exclusive: bool,
) -> Result<()> {
    let until = std::time::Instant::now() + GONE_HOLDER_WAIT;
    loop {
        match try_advisory_once(client, target, key, exclusive).await? {
            None => return Ok(()),
            Some((holder, gone)) if gone && std::time::Instant::now() < until => {
                tracing::debug!(%holder, "the lock's holder is gone; waiting for the server to end its session");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Some((holder, _)) => {
                return Err(busy(
                    &holder,
                    &format!("target server ({} database)", target.dbname),
                ))
            }
        }
    }
}

/// Whether this process's host ran the holder named by `application_name`
/// (`supamigrate … pid=N host=H …`) and it is no longer running.
fn holder_gone(application_name: &str) -> bool {
    let field = |name: &str| {
        application_name
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .map(str::to_string)
    };
    let here = Holder::me("").host;
    match (field("pid="), field("host=")) {
        (Some(pid), Some(host)) if host == here => pid
            .parse::<i32>()
            .is_ok_and(|p| !crate::cluster::process_alive(p)),
        _ => false,
    }
}

/// One try: `None` when taken, else who holds it and whether that holder
/// is gone (or released it meanwhile).
async fn try_advisory_once(
    client: &Client,
    _target: &ConnInfo,
    key: &str,
    exclusive: bool,
) -> Result<Option<(String, bool)>> {
    let sql = if exclusive {
        "select pg_try_advisory_lock(hashtext($1))"
    } else {
        "select pg_try_advisory_lock_shared(hashtext($1))"
    };
    let got: bool = client
        .query_one(sql, &[&key])
        .await
        .map_err(|e| Error::postgres("taking the migration's advisory lock on the target", e))?
        .get(0);
    if got {
        return Ok(None);
    }
    let holder: Option<String> = client
        .query_opt(
            "select a.application_name from pg_locks l join pg_stat_activity a on a.pid = l.pid \
             where l.locktype = 'advisory' and l.granted and l.pid <> pg_backend_pid() \
               and l.database = (select oid from pg_database where datname = current_database()) \
               and l.objsubid = 1 \
               and l.classid::bigint = (hashtext($1)::bigint >> 32) & 4294967295 \
               and l.objid::bigint = hashtext($1)::bigint & 4294967295 limit 1",
            &[&key],
        )
        .await
        .map_err(|e| Error::postgres("reading who holds the migration's lock", e))?
        .map(|r| r.get(0));
    let gone = holder.as_deref().is_none_or(holder_gone);
    let holder = holder
        .filter(|h| !h.is_empty())
        .map(|h| format!("`{h}`"))
        .unwrap_or_else(|| "another supamigrate".into());
    Ok(Some((holder, gone)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(sysid: Option<i64>, port: u16, db: &str, roles: &[&str], auth: bool) -> Identity {
        Identity {
            system_identifier: sysid,
            address: ("127.0.0.1".into(), port),
            database: db.into(),
            database_exists: true,
            supabase_roles: roles.iter().map(|r| r.to_string()).collect(),
            auth_users_table: auth,
        }
    }

    #[test]
    fn sides_are_judged() {
        let supabase = side(Some(1), 5432, "postgres", &["supabase_admin"], true);
        let rds = side(Some(2), 5433, "app", &[], false);
        let cases: Vec<(&str, Identity, Identity, Option<&str>)> = vec![
            ("a real pair", supabase.clone(), rds.clone(), None),
            (
                "target = source",
                supabase.clone(),
                supabase.clone(),
                Some("point at the same database"),
            ),
            (
                "swapped",
                rds.clone(),
                supabase.clone(),
                Some("the target looks like a Supabase project: it has a table auth.users"),
            ),
            (
                "same server unknown id, same port",
                side(None, 5432, "postgres", &["supabase_admin"], true),
                side(None, 5432, "postgres", &["supabase_admin"], true),
                Some("same database"),
            ),
            (
                "source not Supabase",
                rds.clone(),
                side(Some(3), 5434, "app", &[], false),
                Some("does not look like a Supabase project"),
            ),
            (
                "target with Supabase roles only",
                supabase.clone(),
                side(Some(2), 5433, "app", &["supabase_admin"], false),
                Some("Supabase's roles (supabase_admin)"),
            ),
        ];
        for (name, s, t, want) in cases {
            let got = judge(&s, &t, false);
            match want {
                None => assert!(got.is_ok(), "{name}: {got:?}"),
                Some(w) => {
                    let e = got.expect_err(name);
                    assert!(e.is_bad_input(), "{name}");
                    assert!(e.message().contains(w), "{name}: {}", e.message());
                }
            }
        }
        let plain = side(Some(3), 5434, "app", &[], false);
        assert!(judge(&plain, &side(Some(2), 5433, "app", &[], false), true).is_ok());
    }
}
