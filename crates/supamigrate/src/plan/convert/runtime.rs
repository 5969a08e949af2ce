//! Shims for Supabase's runtime: small SQL schemas on the target that keep
//! the application's code calling pg_net, Database Webhooks, Vault and pgmq
//! working instead of leaving it out.
//!
//! | Supabase | on the target |
//! |---|---|
//! | `net.http_post/http_get/http_delete` (pg_net) | a row in `supamigrate_outbox.http_requests`, returning its id |
//! | `supabase_functions.http_request` (webhooks) | a row in the same outbox, with the webhook's payload |
//! | `vault.secrets`, `vault.decrypted_secrets`, `vault.create_secret`, `vault.update_secret` | a secrets table the user fills: the source's names and ids, no value |
//! | pgmq (when the target lacks it) | queues as plain tables, `pgmq.create/send/read/pop/archive/delete/metrics…` in SQL |
//!
//! What no shim keeps stays left out with its reason (`reach`): reading a
//! pg_net response (`net._http_response`), the `http` extension's
//! synchronous calls, Vault's encryption keys (`pgsodium`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Action, Conversion, Impact};
use crate::catalog::dump::SchemaSource;
use crate::pg::{quote_ident, quote_literal};
use crate::sql::uses::Name;

/// One shim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shim {
    /// pg_net's calls and Database Webhooks, stored in an outbox.
    Outbox,
    /// Vault's secrets table and functions.
    Vault,
    /// pgmq in plain SQL.
    Pgmq,
}

/// What a shim provides: (schema, functions, relations, relation name prefixes).
struct Provides {
    shim: Shim,
    schema: &'static str,
    functions: &'static [&'static str],
    relations: &'static [&'static str],
    prefixes: &'static [&'static str],
}

const PROVIDES: &[Provides] = &[
    Provides {
        shim: Shim::Outbox,
        schema: "net",
        functions: &["http_post", "http_get", "http_delete"],
        relations: &[],
        prefixes: &[],
    },
    Provides {
        shim: Shim::Outbox,
        schema: "supabase_functions",
        functions: &["http_request"],
        relations: &[],
        prefixes: &[],
    },
    Provides {
        shim: Shim::Vault,
        schema: "vault",
        functions: &["create_secret", "update_secret"],
        relations: &["secrets", "decrypted_secrets"],
        prefixes: &[],
    },
    Provides {
        shim: Shim::Pgmq,
        schema: "pgmq",
        functions: &[
            "create",
            "send",
            "send_batch",
            "read",
            "pop",
            "delete",
            "archive",
            "purge_queue",
            "drop_queue",
            "set_vt",
            "list_queues",
            "metrics",
            "metrics_all",
        ],
        relations: &["meta", "message_record", "metrics_result"],
        prefixes: &["q_", "a_"],
    },
];

/// The shims the target can have: pgmq's only where the target lacks pgmq
/// (where it has it, the extension itself is created).
#[derive(Debug, Clone, Default)]
pub(super) struct Available {
    pub pgmq: bool,
}

impl Available {
    fn has(&self, shim: Shim) -> bool {
        shim != Shim::Pgmq || self.pgmq
    }

    /// The shim that provides function `f`, if any.
    pub fn function(&self, f: &Name) -> Option<Shim> {
        PROVIDES
            .iter()
            .find(|p| p.schema == f.schema && p.functions.contains(&f.name.as_str()))
            .map(|p| p.shim)
            .filter(|s| self.has(*s))
    }

    /// The shim that provides relation `r`, if any.
    pub fn relation(&self, r: &Name) -> Option<Shim> {
        PROVIDES
            .iter()
            .find(|p| {
                p.schema == r.schema
                    && (p.relations.contains(&r.name.as_str())
                        || p.prefixes.iter().any(|x| r.name.starts_with(x)))
            })
            .map(|p| p.shim)
            .filter(|s| self.has(*s))
    }
}

const OUTBOX: &[&str] = &[
    "CREATE SCHEMA IF NOT EXISTS supamigrate_outbox;",
    "CREATE TABLE IF NOT EXISTS supamigrate_outbox.http_requests (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT http_requests_pkey PRIMARY KEY,
    method text NOT NULL,
    url text NOT NULL,
    headers jsonb NOT NULL DEFAULT '{}'::jsonb,
    params jsonb NOT NULL DEFAULT '{}'::jsonb,
    body jsonb,
    timeout_ms integer NOT NULL DEFAULT 5000,
    origin text NOT NULL,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    delivered_at timestamp with time zone,
    attempts integer NOT NULL DEFAULT 0,
    last_error text
);",
    "CREATE INDEX IF NOT EXISTS http_requests_undelivered ON supamigrate_outbox.http_requests (id) WHERE delivered_at IS NULL;",
    "COMMENT ON TABLE supamigrate_outbox.http_requests IS 'HTTP requests the database asked for (pg_net, Database Webhooks), to be sent by a worker: select … where delivered_at is null order by id for update skip locked; send; set delivered_at (see supamigrate docs/outbox.md)';",
];

const NET: &[&str] = &[
    "CREATE SCHEMA IF NOT EXISTS net;",
    "CREATE OR REPLACE FUNCTION net.http_post(url text, body jsonb DEFAULT '{}'::jsonb, params jsonb DEFAULT '{}'::jsonb, headers jsonb DEFAULT '{\"Content-Type\": \"application/json\"}'::jsonb, timeout_milliseconds integer DEFAULT 5000) RETURNS bigint LANGUAGE sql SECURITY DEFINER SET search_path = '' AS $$
  INSERT INTO supamigrate_outbox.http_requests (method, url, headers, params, body, timeout_ms, origin)
  VALUES ('POST', url, coalesce(headers, '{}'::jsonb), coalesce(params, '{}'::jsonb), body, coalesce(timeout_milliseconds, 5000), 'net.http_post')
  RETURNING id
$$;",
    "CREATE OR REPLACE FUNCTION net.http_get(url text, params jsonb DEFAULT '{}'::jsonb, headers jsonb DEFAULT '{}'::jsonb, timeout_milliseconds integer DEFAULT 5000) RETURNS bigint LANGUAGE sql SECURITY DEFINER SET search_path = '' AS $$
  INSERT INTO supamigrate_outbox.http_requests (method, url, headers, params, timeout_ms, origin)
  VALUES ('GET', url, coalesce(headers, '{}'::jsonb), coalesce(params, '{}'::jsonb), coalesce(timeout_milliseconds, 5000), 'net.http_get')
  RETURNING id
$$;",
    "CREATE OR REPLACE FUNCTION net.http_delete(url text, params jsonb DEFAULT '{}'::jsonb, headers jsonb DEFAULT '{}'::jsonb, timeout_milliseconds integer DEFAULT 5000) RETURNS bigint LANGUAGE sql SECURITY DEFINER SET search_path = '' AS $$
  INSERT INTO supamigrate_outbox.http_requests (method, url, headers, params, timeout_ms, origin)
  VALUES ('DELETE', url, coalesce(headers, '{}'::jsonb), coalesce(params, '{}'::jsonb), coalesce(timeout_milliseconds, 5000), 'net.http_delete')
  RETURNING id
$$;",
    "REVOKE ALL ON FUNCTION net.http_post(text, jsonb, jsonb, jsonb, integer), net.http_get(text, jsonb, jsonb, integer), net.http_delete(text, jsonb, jsonb, integer) FROM PUBLIC;",
];

/// Supabase's webhook trigger function: its arguments are the URL, the
/// method, the headers, the parameters and the timeout; the body is the
/// event (`type`, `table`, `schema`, `record`, `old_record`).
const WEBHOOKS: &[&str] = &[
    "CREATE SCHEMA IF NOT EXISTS supabase_functions;",
    "CREATE OR REPLACE FUNCTION supabase_functions.http_request() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  INSERT INTO supamigrate_outbox.http_requests (method, url, headers, params, body, timeout_ms, origin)
  VALUES (
    upper(coalesce(TG_ARGV[1], 'POST')),
    TG_ARGV[0],
    coalesce(nullif(TG_ARGV[2], 'null')::jsonb, '{}'::jsonb),
    coalesce(nullif(TG_ARGV[3], 'null')::jsonb, '{}'::jsonb),
    jsonb_build_object(
      'type', TG_OP,
      'table', TG_TABLE_NAME,
      'schema', TG_TABLE_SCHEMA,
      'record', CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE to_jsonb(NEW) END,
      'old_record', CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE to_jsonb(OLD) END),
    coalesce(nullif(TG_ARGV[4], '')::integer, 1000),
    format('webhook %s on %I.%I', TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME));
  RETURN coalesce(NEW, OLD);
END
$$;",
    "REVOKE ALL ON FUNCTION supabase_functions.http_request() FROM PUBLIC;",
];

const VAULT: &[&str] = &[
    "CREATE SCHEMA IF NOT EXISTS vault;",
    "CREATE TABLE IF NOT EXISTS vault.secrets (
    id uuid DEFAULT gen_random_uuid() CONSTRAINT secrets_pkey PRIMARY KEY,
    name text CONSTRAINT secrets_name_key UNIQUE,
    description text NOT NULL DEFAULT '',
    secret text,
    key_id uuid,
    nonce bytea,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now()
);",
    "CREATE OR REPLACE VIEW vault.decrypted_secrets AS SELECT id, name, description, secret, secret AS decrypted_secret, key_id, nonce, created_at, updated_at FROM vault.secrets;",
    "CREATE OR REPLACE FUNCTION vault.create_secret(new_secret text, new_name text DEFAULT NULL, new_description text DEFAULT '', new_key_id uuid DEFAULT NULL) RETURNS uuid LANGUAGE sql SET search_path = '' AS $$
  INSERT INTO vault.secrets (secret, name, description, key_id)
  VALUES (new_secret, new_name, coalesce(new_description, ''), new_key_id)
  RETURNING id
$$;",
    "CREATE OR REPLACE FUNCTION vault.update_secret(secret_id uuid, new_secret text DEFAULT NULL, new_name text DEFAULT NULL, new_description text DEFAULT NULL, new_key_id uuid DEFAULT NULL) RETURNS void LANGUAGE sql SET search_path = '' AS $$
  UPDATE vault.secrets SET secret = coalesce(new_secret, secret), name = coalesce(new_name, name),
    description = coalesce(new_description, description), key_id = coalesce(new_key_id, key_id), updated_at = now()
  WHERE id = secret_id
$$;",
    "REVOKE ALL ON ALL TABLES IN SCHEMA vault FROM PUBLIC;",
    "REVOKE ALL ON FUNCTION vault.create_secret(text, text, text, uuid), vault.update_secret(uuid, text, text, text, uuid) FROM PUBLIC;",
];

/// pgmq's interface in SQL (the queue tables have pgmq's columns).
const PGMQ: &[&str] = &[
    "CREATE SCHEMA IF NOT EXISTS pgmq;",
    "CREATE TYPE pgmq.message_record AS (msg_id bigint, read_ct integer, enqueued_at timestamp with time zone, vt timestamp with time zone, message jsonb);",
    "CREATE TABLE pgmq.meta (queue_name text CONSTRAINT meta_pkey PRIMARY KEY, created_at timestamp with time zone NOT NULL DEFAULT now());",
    "CREATE FUNCTION pgmq._queue_columns() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'msg_id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT %I PRIMARY KEY, read_ct integer NOT NULL DEFAULT 0, enqueued_at timestamp with time zone NOT NULL DEFAULT now(), vt timestamp with time zone NOT NULL, message jsonb'::text $$;",
    "CREATE FUNCTION pgmq._archive_columns() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'msg_id bigint CONSTRAINT %I PRIMARY KEY, read_ct integer NOT NULL DEFAULT 0, enqueued_at timestamp with time zone NOT NULL DEFAULT now(), archived_at timestamp with time zone NOT NULL DEFAULT now(), vt timestamp with time zone NOT NULL, message jsonb'::text $$;",
    "CREATE FUNCTION pgmq.create(queue_name text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE TABLE IF NOT EXISTS pgmq.%I (%s)', 'q_' || queue_name, format(pgmq._queue_columns(), 'q_' || queue_name || '_pkey'));
  EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON pgmq.%I (vt)', 'q_' || queue_name || '_vt_idx', 'q_' || queue_name);
  EXECUTE format('CREATE TABLE IF NOT EXISTS pgmq.%I (%s)', 'a_' || queue_name, format(pgmq._archive_columns(), 'a_' || queue_name || '_pkey'));
  INSERT INTO pgmq.meta (queue_name) VALUES ($1) ON CONFLICT DO NOTHING;
END
$$;",
    "CREATE FUNCTION pgmq.send(queue_name text, msg jsonb, delay integer DEFAULT 0) RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY EXECUTE format('INSERT INTO pgmq.%I (vt, message) VALUES (clock_timestamp() + make_interval(secs => $1), $2) RETURNING msg_id', 'q_' || queue_name) USING delay, msg;
END
$$;",
    "CREATE FUNCTION pgmq.send_batch(queue_name text, msgs jsonb[], delay integer DEFAULT 0) RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY EXECUTE format('INSERT INTO pgmq.%I (vt, message) SELECT clock_timestamp() + make_interval(secs => $1), m FROM unnest($2) AS m RETURNING msg_id', 'q_' || queue_name) USING delay, msgs;
END
$$;",
    "CREATE FUNCTION pgmq.read(queue_name text, vt integer, qty integer) RETURNS SETOF pgmq.message_record LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY EXECUTE format('WITH next AS (SELECT msg_id FROM pgmq.%I WHERE vt <= clock_timestamp() ORDER BY msg_id LIMIT $1 FOR UPDATE SKIP LOCKED) UPDATE pgmq.%I m SET vt = clock_timestamp() + make_interval(secs => $2), read_ct = m.read_ct + 1 FROM next WHERE m.msg_id = next.msg_id RETURNING m.msg_id, m.read_ct, m.enqueued_at, m.vt, m.message', 'q_' || queue_name, 'q_' || queue_name) USING qty, vt;
END
$$;",
    "CREATE FUNCTION pgmq.pop(queue_name text) RETURNS SETOF pgmq.message_record LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY EXECUTE format('WITH next AS (SELECT msg_id FROM pgmq.%I WHERE vt <= clock_timestamp() ORDER BY msg_id LIMIT 1 FOR UPDATE SKIP LOCKED) DELETE FROM pgmq.%I m USING next WHERE m.msg_id = next.msg_id RETURNING m.msg_id, m.read_ct, m.enqueued_at, m.vt, m.message', 'q_' || queue_name, 'q_' || queue_name);
END
$$;",
    "CREATE FUNCTION pgmq.set_vt(queue_name text, msg_id bigint, vt integer) RETURNS SETOF pgmq.message_record LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY EXECUTE format('UPDATE pgmq.%I SET vt = clock_timestamp() + make_interval(secs => $2) WHERE msg_id = $1 RETURNING msg_id, read_ct, enqueued_at, vt, message', 'q_' || queue_name) USING msg_id, vt;
END
$$;",
    "CREATE FUNCTION pgmq.delete(queue_name text, msg_id bigint) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
BEGIN
  EXECUTE format('DELETE FROM pgmq.%I WHERE msg_id = $1', 'q_' || queue_name) USING msg_id;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n > 0;
END
$$;",
    "CREATE FUNCTION pgmq.archive(queue_name text, msg_id bigint) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
BEGIN
  EXECUTE format('WITH gone AS (DELETE FROM pgmq.%I WHERE msg_id = $1 RETURNING msg_id, read_ct, enqueued_at, vt, message) INSERT INTO pgmq.%I (msg_id, read_ct, enqueued_at, vt, message) SELECT * FROM gone', 'q_' || queue_name, 'a_' || queue_name) USING msg_id;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n > 0;
END
$$;",
    "CREATE FUNCTION pgmq.purge_queue(queue_name text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
BEGIN
  EXECUTE format('DELETE FROM pgmq.%I', 'q_' || queue_name);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;",
    "CREATE FUNCTION pgmq.drop_queue(queue_name text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('DROP TABLE IF EXISTS pgmq.%I, pgmq.%I', 'q_' || queue_name, 'a_' || queue_name);
  DELETE FROM pgmq.meta m WHERE m.queue_name = $1;
  RETURN FOUND;
END
$$;",
    "CREATE FUNCTION pgmq.list_queues() RETURNS SETOF pgmq.meta LANGUAGE sql AS $$ SELECT * FROM pgmq.meta ORDER BY queue_name $$;",
    "CREATE TYPE pgmq.metrics_result AS (queue_name text, queue_length bigint, newest_msg_age_sec integer, oldest_msg_age_sec integer, total_messages bigint, scrape_time timestamp with time zone);",
    "CREATE FUNCTION pgmq.metrics(queue_name text) RETURNS pgmq.metrics_result LANGUAGE plpgsql AS $$
DECLARE
  result pgmq.metrics_result;
BEGIN
  EXECUTE format('SELECT $1, count(*), extract(epoch FROM clock_timestamp() - max(enqueued_at))::integer, extract(epoch FROM clock_timestamp() - min(enqueued_at))::integer, (SELECT CASE WHEN s.is_called THEN s.last_value ELSE 0 END FROM %s s), clock_timestamp() FROM pgmq.%I', pg_get_serial_sequence(format('pgmq.%I', 'q_' || queue_name), 'msg_id'), 'q_' || queue_name) INTO result USING queue_name;
  RETURN result;
END
$$;",
    "CREATE FUNCTION pgmq.metrics_all() RETURNS SETOF pgmq.metrics_result LANGUAGE sql AS $$ SELECT (pgmq.metrics(m.queue_name)).* FROM pgmq.meta m ORDER BY m.queue_name $$;",
];

/// The shims' statements and report lines, for the shims `used` names
/// (and the source's Vault secrets and pgmq queues where they have one).
pub(super) fn add(
    src: &SchemaSource,
    used: &BTreeSet<Shim>,
    available: &Available,
    roles: &[String],
    out: &mut Conversion,
) -> Vec<String> {
    let mut sql: Vec<String> = Vec::new();
    let grant = |schema: &str, sql: &mut Vec<String>| {
        for r in roles {
            sql.push(format!(
                "GRANT USAGE ON SCHEMA {schema} TO {};",
                quote_ident(r)
            ));
        }
    };
    if used.contains(&Shim::Outbox) {
        sql.extend(OUTBOX.iter().map(|s| s.to_string()));
        sql.extend(NET.iter().map(|s| s.to_string()));
        sql.extend(WEBHOOKS.iter().map(|s| s.to_string()));
        grant("net", &mut sql);
        for r in roles {
            sql.push(format!("GRANT EXECUTE ON FUNCTION net.http_post(text, jsonb, jsonb, jsonb, integer), net.http_get(text, jsonb, jsonb, integer), net.http_delete(text, jsonb, jsonb, integer) TO {};", quote_ident(r)));
        }
        out.note_todo(
            Action::Added,
            "HTTP outbox supamigrate_outbox.http_requests, with net.http_post/http_get/http_delete and supabase_functions.http_request",
            "pg_net and Database Webhooks are not on RDS: each HTTP request the application's triggers, functions and jobs ask for is stored as a row of supamigrate_outbox.http_requests (method, url, headers, params, body, the webhook's event) instead of being sent, so none is lost; nothing sends them yet",
            "deliver them with a worker: every minute (an AWS Lambda function on an Amazon EventBridge Scheduler rule) select the rows where delivered_at is null order by id for update skip locked, send each request, set delivered_at (or attempts and last_error); see docs/outbox.md",
        );
    }
    if used.contains(&Shim::Vault) || src.platform.vault_secrets > 0 {
        sql.extend(VAULT.iter().map(|s| s.to_string()));
        sql.extend(vault_names(src));
        grant("vault", &mut sql);
        for r in roles {
            sql.push(format!(
                "GRANT SELECT ON vault.secrets, vault.decrypted_secrets TO {};",
                quote_ident(r)
            ));
        }
        note_vault(src, out);
    }
    let queues = !src.platform.queues.is_empty() && available.pgmq;
    if used.contains(&Shim::Pgmq) || queues {
        sql.extend(PGMQ.iter().map(|s| s.to_string()));
        grant("pgmq", &mut sql);
        for q in &src.platform.queues {
            sql.extend(queue(q));
        }
        out.note_with(
            Action::Added,
            "pgmq in plain SQL (schema pgmq)",
            "the target does not offer the pgmq extension: pgmq.create, send, send_batch, read, pop, set_vt, delete, archive, purge_queue, drop_queue and list_queues work as pgmq's, on plain tables pgmq.q_<queue> and pgmq.a_<queue>",
            Impact::None,
        );
    }
    sql
}

/// A queue of the source, made as `pgmq.create` makes one (but written
/// out, so that the plan lists its tables and verify finds them).
fn queue(name: &str) -> Vec<String> {
    let q = quote_ident(&format!("q_{name}"));
    let a = quote_ident(&format!("a_{name}"));
    let pkey = |t: &str| quote_ident(&format!("{t}_{name}_pkey"));
    vec![
        format!("CREATE TABLE pgmq.{q} (msg_id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT {} PRIMARY KEY, read_ct integer NOT NULL DEFAULT 0, enqueued_at timestamp with time zone NOT NULL DEFAULT now(), vt timestamp with time zone NOT NULL, message jsonb);", pkey("q")),
        format!("CREATE INDEX {} ON pgmq.{q} (vt);", quote_ident(&format!("q_{name}_vt_idx"))),
        format!("CREATE TABLE pgmq.{a} (msg_id bigint CONSTRAINT {} PRIMARY KEY, read_ct integer NOT NULL DEFAULT 0, enqueued_at timestamp with time zone NOT NULL DEFAULT now(), archived_at timestamp with time zone NOT NULL DEFAULT now(), vt timestamp with time zone NOT NULL, message jsonb);", pkey("a")),
        format!("INSERT INTO pgmq.meta (queue_name) VALUES ({});", quote_literal(name)),
    ]
}

/// The source's secrets by id and name, no value: functions that read a
/// secret by name or id find its row, empty until the user sets it.
fn vault_names(src: &SchemaSource) -> Vec<String> {
    src.platform
        .vault_names
        .iter()
        .map(|(id, name)| {
            format!(
                "INSERT INTO vault.secrets (id, name) VALUES ({}::uuid, {}) ON CONFLICT DO NOTHING;",
                quote_literal(id),
                if name.is_empty() { "NULL".to_string() } else { quote_literal(name) }
            )
        })
        .collect()
}

fn note_vault(src: &SchemaSource, out: &mut Conversion) {
    let names: Vec<&str> = src
        .platform
        .vault_names
        .iter()
        .map(|(_, n)| n.as_str())
        .filter(|n| !n.is_empty())
        .collect();
    let listed = if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", names.join(", "))
    };
    out.note_todo(
        Action::Added,
        "Vault shim: table vault.secrets, view vault.decrypted_secrets, vault.create_secret(), vault.update_secret()",
        format!(
            "Supabase Vault (encrypted with pgsodium) is not on RDS; the application's reads of vault.decrypted_secrets keep working on a plain table holding the source's {} secrets by id and name{listed}, with no value: their values are never read from Supabase",
            src.platform.vault_names.len()
        ),
        "set each value on the target: select vault.update_secret(id, 'value') as the migration's role (the table is readable by its owner only; values are stored unencrypted, under RDS's storage encryption), or move the secrets to AWS Secrets Manager",
    );
}
