//! Supabase Storage's metadata on the target: `storage.buckets` and
//! `storage.objects` stay tables there (the objects' files move to S3:
//! bucket `<prefix><bucket_id>`, key `name`), with Supabase's helper
//! functions, so the application's foreign keys to `storage.objects(id)`,
//! its views over it and its functions that read it keep working.

/// The columns the target's Storage tables have, and their definitions
/// (the stable part of Supabase's; columns of later Storage versions that
/// only the Storage server uses are not carried).
pub const BUCKET_COLUMNS: &[(&str, &str)] = &[
    ("id", "text NOT NULL"),
    ("name", "text NOT NULL"),
    ("owner", "uuid"),
    ("owner_id", "text"),
    ("public", "boolean DEFAULT false"),
    ("file_size_limit", "bigint"),
    ("allowed_mime_types", "text[]"),
    ("created_at", "timestamp with time zone DEFAULT now()"),
    ("updated_at", "timestamp with time zone DEFAULT now()"),
];

/// See [`BUCKET_COLUMNS`]; `path_tokens` is generated, as on Supabase.
pub const OBJECT_COLUMNS: &[(&str, &str)] = &[
    ("id", "uuid DEFAULT gen_random_uuid() NOT NULL"),
    ("bucket_id", "text"),
    ("name", "text"),
    ("owner", "uuid"),
    ("owner_id", "text"),
    ("metadata", "jsonb"),
    ("user_metadata", "jsonb"),
    ("version", "text"),
    ("created_at", "timestamp with time zone DEFAULT now()"),
    ("updated_at", "timestamp with time zone DEFAULT now()"),
    ("last_accessed_at", "timestamp with time zone DEFAULT now()"),
    (
        "path_tokens",
        "text[] GENERATED ALWAYS AS (string_to_array(name, '/'::text)) STORED",
    ),
];

/// Pre-data: the schema, the tables, the helper functions (Supabase's
/// definitions).
pub fn pre_data() -> Vec<String> {
    let table = |name: &str, cols: &[(&str, &str)]| {
        let body: Vec<String> = cols.iter().map(|(c, d)| format!("    {c} {d}")).collect();
        format!("CREATE TABLE storage.{name} (\n{}\n);", body.join(",\n"))
    };
    vec![
        "CREATE SCHEMA IF NOT EXISTS storage;".to_string(),
        table("buckets", BUCKET_COLUMNS),
        table("objects", OBJECT_COLUMNS),
        "CREATE FUNCTION storage.foldername(name text) RETURNS text[] LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  _parts text[];
BEGIN
  SELECT string_to_array(name, '/') INTO _parts;
  RETURN _parts[1:array_length(_parts, 1) - 1];
END
$$;"
        .to_string(),
        "CREATE FUNCTION storage.filename(name text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  _parts text[];
BEGIN
  SELECT string_to_array(name, '/') INTO _parts;
  RETURN _parts[array_length(_parts, 1)];
END
$$;"
        .to_string(),
        "CREATE FUNCTION storage.extension(name text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  _parts text[];
  _filename text;
BEGIN
  SELECT string_to_array(name, '/') INTO _parts;
  SELECT _parts[array_length(_parts, 1)] INTO _filename;
  RETURN reverse(split_part(reverse(_filename), '.', 1));
END
$$;"
        .to_string(),
    ]
}

/// Post-data: their keys, after the data.
pub fn post_data() -> Vec<String> {
    vec![
        "ALTER TABLE ONLY storage.buckets ADD CONSTRAINT buckets_pkey PRIMARY KEY (id);".to_string(),
        "CREATE UNIQUE INDEX bname ON storage.buckets USING btree (name);".to_string(),
        "ALTER TABLE ONLY storage.objects ADD CONSTRAINT objects_pkey PRIMARY KEY (id);".to_string(),
        "CREATE UNIQUE INDEX bucketid_objname ON storage.objects USING btree (bucket_id, name);".to_string(),
        // Storage's index for folder listings (`name LIKE 'folder/%'`),
        // which the application's own queries over the table use too.
        "CREATE INDEX name_prefix_search ON storage.objects USING btree (name text_pattern_ops);".to_string(),
        "ALTER TABLE ONLY storage.objects ADD CONSTRAINT \"objects_bucketId_fkey\" FOREIGN KEY (bucket_id) REFERENCES storage.buckets(id);".to_string(),
    ]
}

/// Whether the target's `table` (`buckets`, `objects`) has `column` as a
/// copied (not generated) column.
pub fn copies(table: &str, column: &str) -> bool {
    let cols = if table == "buckets" {
        BUCKET_COLUMNS
    } else {
        OBJECT_COLUMNS
    };
    cols.iter()
        .any(|(c, d)| *c == column && !d.contains("GENERATED"))
}
