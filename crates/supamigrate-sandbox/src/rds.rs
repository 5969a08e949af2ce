//! Makes a cluster behave like RDS for PostgreSQL towards its master user: the
//! master role is not superuser, so what RDS refuses, this refuses.

use std::path::PathBuf;

use supamigrate::connect::{ConnInfo, Password};
use supamigrate::error::Result;

use super::servers::Server;
use super::{quote_literal, run_sql};

/// The extensions RDS for PostgreSQL 15 supports (`SHOW rds.extensions` on
/// an RDS instance; AWS's "Extensions supported for RDS for PostgreSQL 15").
pub const RDS_EXTENSIONS: &[&str] = &[
    "address_standardizer",
    "address_standardizer_data_us",
    "amcheck",
    "aws_commons",
    "aws_lambda",
    "aws_s3",
    "bloom",
    "btree_gin",
    "btree_gist",
    "citext",
    "cube",
    "dblink",
    "dict_int",
    "dict_xsyn",
    "earthdistance",
    "fuzzystrmatch",
    "hll",
    "hstore",
    "hypopg",
    "insert_username",
    "intagg",
    "intarray",
    "ip4r",
    "isn",
    "lo",
    "ltree",
    "moddatetime",
    "old_snapshot",
    "orafce",
    "pageinspect",
    "pg_bigm",
    "pg_buffercache",
    "pg_cron",
    "pg_freespacemap",
    "pg_hint_plan",
    "pg_partman",
    "pg_prewarm",
    "pg_proctab",
    "pg_repack",
    "pg_similarity",
    "pg_stat_statements",
    "pg_tle",
    "pg_trgm",
    "pg_visibility",
    "pgaudit",
    "pgcrypto",
    "pglogical",
    "pgrouting",
    "pgrowlocks",
    "pgstattuple",
    "pgtap",
    "plcoffee",
    "plls",
    "plperl",
    "plpgsql",
    "plpgsql_check",
    "plprofiler",
    "pltcl",
    "plv8",
    "postgis",
    "postgis_raster",
    "postgis_tiger_geocoder",
    "postgis_topology",
    "postgres_fdw",
    "prefix",
    "rdkit",
    "refint",
    "seg",
    "sslinfo",
    "tablefunc",
    "tcn",
    "tds_fdw",
    "tsm_system_rows",
    "tsm_system_time",
    "unaccent",
    "uuid-ossp",
    "vector",
];

/// The module that lets the master role create the allow-listed
/// extensions that are not trusted (vector, pg_cron, postgis…) as RDS's
/// `rds_superuser` may: the platform kit's `supautils_lite`, built for the
/// system's server when installed.
fn privileged_extensions_module(server: &Server) -> Option<PathBuf> {
    if server.bin_dir.is_some() {
        return None;
    }
    let path = PathBuf::from(format!(
        "/usr/lib/postgresql/{}/lib/supautils_lite.so",
        server.major
    ));
    path.is_file().then_some(path)
}

/// Whether the target can offer RDS's whole extension list
/// ([`RDS_EXTENSIONS`]) through supautils_lite. Without it (another major's
/// server) the allow-listed extensions that server has are made trusted
/// ([`prepare_server`]), which lets the master create them too.
pub fn offers_rds_extensions(server: &Server) -> bool {
    privileged_extensions_module(server).is_some()
}

/// For another major's server (no supautils_lite): marks the allow-listed extensions
/// it ships trusted (RDS lets `rds_superuser` create them; a trusted
/// extension's script runs as the bootstrap superuser, as on RDS, and the
/// objects belong to the master). Returns those it offers. Idempotent.
pub fn prepare_server(server: &Server) -> Result<Vec<&'static str>> {
    use supamigrate::error::Error;
    let mut offered = Vec::new();
    if server.bin_dir.is_none() {
        // The system's server: its files are the system's, not ours to edit.
        return Ok(offered);
    }
    for name in RDS_EXTENSIONS {
        let control = server.extension_dir.join(format!("{name}.control"));
        let Ok(text) = std::fs::read_to_string(&control) else {
            continue;
        };
        offered.push(*name);
        if text.lines().any(|l| l.trim_start().starts_with("trusted")) {
            continue;
        }
        let marked = format!(
            "{text}\n# supamigrate sandbox: RDS lets rds_superuser create it\ntrusted = true\n"
        );
        // Atomically: another sandbox's server may be reading it.
        let tmp = control.with_extension(format!("control.{}", std::process::id()));
        std::fs::write(&tmp, marked)
            .and_then(|()| std::fs::rename(&tmp, &control))
            .map_err(|e| Error::io(format!("writing {}", control.display()), e))?;
    }
    Ok(offered)
}

/// What RDS grants `rds_superuser` once it created an extension, by
/// extension: supautils_lite runs each file after the extension is created.
const AFTER_CREATE: &[(&str, &str)] = &[(
    "pg_cron",
    "grant usage on schema cron to rds_superuser with grant option;\n\
     grant all on all tables in schema cron to rds_superuser with grant option;\n\
     grant all on all sequences in schema cron to rds_superuser with grant option;\n\
     grant all on all functions in schema cron to rds_superuser with grant option;\n",
)];

/// Writes the after-create scripts into `dir` (readable by the server).
pub fn write_extension_scripts(dir: &std::path::Path) -> supamigrate::error::Result<()> {
    use supamigrate::error::Error;
    for (ext, sql) in AFTER_CREATE {
        let d = dir.join(ext);
        std::fs::create_dir_all(&d)
            .map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
        std::fs::write(d.join("after-create.sql"), sql)
            .map_err(|e| Error::io(format!("writing {}/after-create.sql", d.display()), e))?;
    }
    Ok(())
}

/// `postgresql.conf` settings: RDS defaults that matter here, and RDS's
/// extension allow-list with `rds_superuser`'s right to create from it
/// (`scripts`: where [`write_extension_scripts`] put what RDS grants after).
pub fn server_settings(
    scripts: &std::path::Path,
    server: &Server,
    offered: &[&str],
) -> Vec<(String, String)> {
    let mut s: Vec<(String, String)> = [("wal_level", "replica"), ("max_connections", "100")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if server.bin_dir.is_some() {
        s.push(("rds.extensions".into(), format!("'{}'", offered.join(","))));
    } else if offers_rds_extensions(server) {
        let list = RDS_EXTENSIONS.join(",");
        let cron = PathBuf::from(format!(
            "/usr/lib/postgresql/{}/lib/pg_cron.so",
            server.major
        ))
        .is_file();
        let preload = if cron {
            "supautils_lite, pg_cron"
        } else {
            "supautils_lite"
        };
        for (k, v) in [
            ("shared_preload_libraries", format!("'{preload}'")),
            ("rds.extensions", format!("'{list}'")),
            ("supautils.privileged_extensions", format!("'{list}'")),
            (
                "supautils.privileged_extensions_superuser",
                "'rdsadmin'".to_string(),
            ),
            ("supautils.privileged_role", "''".to_string()),
            (
                "supautils.privileged_extensions_custom_scripts_path",
                format!("'{}'", scripts.display()),
            ),
            ("cron.database_name", "'postgres'".to_string()),
        ] {
            s.push((k.to_string(), v));
        }
    }
    s
}

/// Creates the master role `postgres` with `master_password` and the `rds_*` roles.
/// `superuser` is the bootstrap superuser on the `postgres` database.
pub async fn install(superuser: &ConnInfo, master_password: &Password) -> Result<()> {
    let create_master = format!(
        "create role postgres login nosuperuser inherit createdb createrole noreplication password {};",
        quote_literal(&master_password.scram_verifier())
    );
    run_sql(superuser, &create_master, "creating the master role").await?;
    run_sql(
        superuser,
        include_str!("sql/rds.sql"),
        "installing the RDS-like target (rds.sql)",
    )
    .await
}
