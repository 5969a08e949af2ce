//! libpq's password file (`~/.pgpass`, or `PGPASSFILE`): lines of
//! `hostname:port:database:username:password`, `*` matching anything, `\`
//! escaping `:` and `\`, the first matching line winning. A file others may
//! read is ignored, as libpq ignores it.

use std::path::Path;

/// The password `path` holds for this connection, if a line matches.
pub fn lookup(path: &Path, host: &str, port: u16, dbname: &str, user: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            file = %path.display(),
            "the password file has group or world access and is ignored, as libpq does; chmod 0600 it"
        );
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    find(&text, host, port, dbname, user)
}

/// The first line of `text` matching the connection (pure).
pub fn find(text: &str, host: &str, port: u16, dbname: &str, user: &str) -> Option<String> {
    let port = port.to_string();
    let wanted = [host, port.as_str(), dbname, user];
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .find_map(|line| {
            let (fields, password) = split(line)?;
            let matches = fields.iter().zip(wanted).all(|(f, w)| f == "*" || f == w);
            matches.then_some(password)
        })
}

/// The four matched fields and the password (the rest of the line), each
/// with `\` escapes removed; `None` for a line with fewer fields.
fn split(line: &str) -> Option<([String; 4], String)> {
    let mut fields: Vec<String> = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    fields.last_mut()?.push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut()?.push(c),
        }
    }
    if fields.len() != 5 {
        return None;
    }
    let password = fields.pop()?;
    let [a, b, c, d]: [String; 4] = fields.try_into().ok()?;
    Some(([a, b, c, d], password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_matching_rules() {
        let file = "# comment\n\
                    db.example.com:5432:app:admin:first\n\
                    db.example.com:*:*:admin:second\n\
                    *:*:*:*:fallback\n\
                    other:5432:app:admin:pa\\:ss\\\\word:tail\n";
        // (host, port, db, user, expected)
        let cases = [
            ("db.example.com", 5432, "app", "admin", Some("first")),
            ("db.example.com", 6543, "app", "admin", Some("second")),
            ("db.example.com", 5432, "other", "admin", Some("second")),
            ("db.example.com", 5432, "app", "someone", Some("fallback")),
            ("other", 5432, "app", "admin", Some("fallback")),
        ];
        for (h, p, d, u, want) in cases {
            assert_eq!(find(file, h, p, d, u).as_deref(), want, "{h}:{p}:{d}:{u}");
        }
        // Escapes: `\:` is a colon, `\\` a backslash; the password is the rest of the line.
        let escaped = "other:5432:app:admin:pa\\:ss\\\\word:tail\n";
        assert_eq!(
            find(escaped, "other", 5432, "app", "admin").as_deref(),
            Some("pa:ss\\word:tail")
        );
        assert_eq!(
            find("h\\:x:1:d:u:pw", "h:x", 1, "d", "u").as_deref(),
            Some("pw")
        );
        // A short line matches nothing; first match wins.
        assert_eq!(find("h:1:d:u\n", "h", 1, "d", "u"), None);
        assert_eq!(
            find("*:*:*:*:a\n*:*:*:*:b", "h", 1, "d", "u").as_deref(),
            Some("a")
        );
    }

    #[test]
    fn a_file_others_can_read_is_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pgpass");
        std::fs::write(&p, "*:*:*:*:pw\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(lookup(&p, "h", 1, "d", "u"), None);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(lookup(&p, "h", 1, "d", "u").as_deref(), Some("pw"));
    }
}
