//! The application's new settings: what it needs to point at the target,
//! written to the state folder (mode 0600). Names and places only, never a
//! secret's value: the application role's password stays where `provision`
//! put it.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::error::Result;

/// The file's name in the state folder.
pub const FILE: &str = "app-settings.md";

/// Where RDS's CA bundle is published.
pub const RDS_CA_BUNDLE: &str = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem";

/// What the settings file says.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The target's host, port and database.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database.
    pub dbname: String,
    /// The CA bundle the target's certificate is checked with, when known.
    pub ca: Option<PathBuf>,
    /// The application's role.
    pub app_role: String,
    /// RLS policies kept through the shim (the application sets the claims).
    pub shim: bool,
    /// Storage: (Supabase bucket, S3 bucket).
    pub buckets: Vec<(String, String)>,
    /// Rewritten references start with this URL, when one was given.
    pub url_prefix: Option<String>,
    /// OAuth providers users sign in with.
    pub oauth: Vec<String>,
    /// SAML SSO is used.
    pub sso: bool,
    /// Phone sign-ins are used.
    pub phone: bool,
    /// Vault entries carried by name (values not readable).
    pub vault: Vec<String>,
    /// Where supamigrate keeps secrets it found in definitions.
    pub found_secrets: Option<PathBuf>,
}

/// The file's text.
pub fn render(f: &Facts) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# The application's settings for the target\n");
    let _ = writeln!(s, "Written by `supamigrate verify --app`. Names and places only: no secret's value is in this file.\n");
    let _ = writeln!(s, "## Database\n");
    let ca = f.ca.as_ref().map_or_else(
        || format!("/path/to/global-bundle.pem (download {RDS_CA_BUNDLE})"),
        |p| p.display().to_string(),
    );
    let _ = writeln!(
        s,
        "DATABASE_URL=postgresql://{}@{}:{}/{}?sslmode=verify-full&sslrootcert={ca}",
        f.app_role, f.host, f.port, f.dbname
    );
    let _ = writeln!(
        s,
        "\nThe password of `{}`: in the file `provision` wrote (`<secrets dir>/{}.password`) or your secrets manager; give it to the application as PGPASSWORD or in the URL. TLS: verify-full, with the CA bundle above.\n",
        f.app_role, f.app_role
    );
    if f.shim {
        let _ = writeln!(s, "## Row level security\n");
        let _ = writeln!(s, "The policies read the request's claims, as PostgREST set them on Supabase. Set them in each transaction, after verifying the user's token:\n");
        let _ = writeln!(s, "    begin;");
        let _ = writeln!(s, "    select set_config('request.jwt.claims', $1, true), set_config('role', 'authenticated', true);  -- $1: the token's claims as JSON");
        let _ = writeln!(s, "    -- … the request's queries …");
        let _ = writeln!(s, "    commit;\n");
        let _ = writeln!(s, "Use 'anon' for requests without a user, and 'service_role' only for trusted back-end work.\n");
    }
    if !f.buckets.is_empty() {
        let _ = writeln!(s, "## Storage\n");
        for (from, to) in &f.buckets {
            let _ = writeln!(s, "- Supabase bucket `{from}` → S3 bucket `{to}`");
        }
        match &f.url_prefix {
            Some(u) => {
                let _ = writeln!(s, "\nStored references now start with `{u}/<bucket>/`.\n");
            }
            None => {
                let _ = writeln!(s, "\nStored references now read `s3://<bucket>/<key>`; serve them through presigned URLs or CloudFront.\n");
            }
        }
    }
    let _ = writeln!(s, "## Secrets to enter again\n");
    let _ = writeln!(
        s,
        "Supabase does not let these be read; set each in the new environment:\n"
    );
    let _ = writeln!(
        s,
        "- the JWT secret (or new signing keys) of the service that signs your users' tokens"
    );
    let _ = writeln!(
        s,
        "- every Edge Function secret (`supabase secrets list` shows their names)"
    );
    for p in &f.oauth {
        let _ = writeln!(s, "- the {p} OAuth client secret");
    }
    if f.sso {
        let _ = writeln!(s, "- the SAML identity providers' settings");
    }
    if f.phone {
        let _ = writeln!(s, "- the SMS provider's credentials");
    }
    let _ = writeln!(s, "- the SMTP credentials for sign-in and password e-mails");
    for v in &f.vault {
        let _ = writeln!(s, "- Vault entry `{v}` (`select vault.update_secret(id, 'value') from vault.secrets where name = '{v}'`)");
    }
    if let Some(p) = &f.found_secrets {
        let _ = writeln!(s, "- the secrets supamigrate found in your functions' definitions: listed by name in {} (0600)", p.display());
    }
    s
}

/// Writes the file into `state_dir` (0600); returns its path.
pub fn write(state_dir: &Path, f: &Facts) -> Result<PathBuf> {
    std::fs::create_dir_all(state_dir)
        .map_err(|e| crate::error::Error::io(format!("creating {}", state_dir.display()), e))?;
    let path = state_dir.join(FILE);
    crate::fsutil::write_atomically(&path, render(f).as_bytes(), 0o600)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_name_places_and_never_values() {
        let f = Facts {
            host: "db.example".into(),
            port: 5432,
            dbname: "app".into(),
            app_role: "app_user".into(),
            shim: true,
            buckets: vec![("avatars".into(), "acme-avatars".into())],
            oauth: vec!["google".into()],
            vault: vec!["stripe_key".into()],
            ..Facts::default()
        };
        let text = render(&f);
        assert!(text.contains(
            "DATABASE_URL=postgresql://app_user@db.example:5432/app?sslmode=verify-full"
        ));
        assert!(text.contains("set_config('request.jwt.claims', $1, true)"));
        assert!(text.contains("`avatars` → S3 bucket `acme-avatars`"));
        assert!(text.contains("the google OAuth client secret"));
        assert!(text.contains("Vault entry `stripe_key`"));
    }
}
