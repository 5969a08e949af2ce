//! Decoding of pgoutput's logical replication messages (protocol version 1,
//! text values): Relation, Type, Origin, Insert, Update, Delete, Truncate.
//! Begin, Commit and logical messages are parsed by the replication client
//! (`pgwire-replication`), which hands the rest over as raw bytes.
//!
//! The format is PostgreSQL's "Logical Replication Message Formats"
//! (protocol-logicalrep-message-formats).

use crate::error::{Error, Result};

/// One column of a Relation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelColumn {
    /// Part of the replica identity (the key pgoutput sends for old rows).
    pub key: bool,
    /// Column name.
    pub name: String,
    /// Type OID.
    pub type_oid: u32,
}

/// A table as the stream describes it; sent before its first change and
/// again after any change to its definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// The relation's OID on the source.
    pub oid: u32,
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
    /// `d` default, `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    /// Columns pgoutput sends, in order (generated columns are not sent).
    pub columns: Vec<RelColumn>,
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A TOASTed value the change did not touch: not sent; the target's
    /// value stands.
    Unchanged,
    /// The value in the type's text output form.
    Text(String),
}

/// A row: one value per column of its relation.
pub type Tuple = Vec<Value>;

/// A decoded change message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A table's definition.
    Relation(Relation),
    /// A new row.
    Insert {
        /// The relation.
        rel: u32,
        /// The row.
        new: Tuple,
    },
    /// A changed row. `old` is the replica identity's key columns (`K`)
    /// or the whole old row (`O`, replica identity full), when sent; without
    /// it the key did not change and `new` holds it.
    Update {
        /// The relation.
        rel: u32,
        /// The old key or row, if sent.
        old: Option<Tuple>,
        /// The new row.
        new: Tuple,
    },
    /// A deleted row: its key (or whole row, replica identity full).
    Delete {
        /// The relation.
        rel: u32,
        /// The old key or row.
        old: Tuple,
    },
    /// TRUNCATE of one or more relations.
    Truncate {
        /// `CASCADE` was given.
        cascade: bool,
        /// `RESTART IDENTITY` was given.
        restart_identity: bool,
        /// The relations.
        rels: Vec<u32>,
    },
    /// Anything else the stream carries that changes no row (Type,
    /// Origin): nothing to apply.
    Other(u8),
}

/// Decodes one pgoutput message (not Begin/Commit/Message).
pub fn decode(data: &[u8]) -> Result<Change> {
    let mut r = Reader { buf: data };
    let tag = r.u8()?;
    let change = match tag {
        b'R' => Change::Relation(relation(&mut r)?),
        b'I' => {
            let rel = r.u32()?;
            expect_kind(r.u8()?, b'N', "Insert")?;
            Change::Insert {
                rel,
                new: tuple(&mut r)?,
            }
        }
        b'U' => {
            let rel = r.u32()?;
            let mut kind = r.u8()?;
            let mut old = None;
            if kind == b'K' || kind == b'O' {
                old = Some(tuple(&mut r)?);
                kind = r.u8()?;
            }
            expect_kind(kind, b'N', "Update")?;
            Change::Update {
                rel,
                old,
                new: tuple(&mut r)?,
            }
        }
        b'D' => {
            let rel = r.u32()?;
            let kind = r.u8()?;
            if kind != b'K' && kind != b'O' {
                return Err(protocol(format!(
                    "a Delete message with tuple kind {:?}",
                    kind as char
                )));
            }
            Change::Delete {
                rel,
                old: tuple(&mut r)?,
            }
        }
        b'T' => {
            let n = r.u32()?;
            let options = r.u8()?;
            let rels = (0..n).map(|_| r.u32()).collect::<Result<Vec<_>>>()?;
            Change::Truncate {
                cascade: options & 1 != 0,
                restart_identity: options & 2 != 0,
                rels,
            }
        }
        b'Y' | b'O' => Change::Other(tag),
        other => {
            return Err(protocol(format!(
                "an unknown pgoutput message {:?}",
                other as char
            )))
        }
    };
    Ok(change)
}

fn relation(r: &mut Reader<'_>) -> Result<Relation> {
    let oid = r.u32()?;
    let schema = r.cstr()?;
    let name = r.cstr()?;
    let replica_identity = r.u8()?;
    let n = r.u16()?;
    let mut columns = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let flags = r.u8()?;
        let name = r.cstr()?;
        let type_oid = r.u32()?;
        let _typmod = r.u32()?;
        columns.push(RelColumn {
            key: flags & 1 != 0,
            name,
            type_oid,
        });
    }
    Ok(Relation {
        oid,
        schema,
        name,
        replica_identity,
        columns,
    })
}

fn tuple(r: &mut Reader<'_>) -> Result<Tuple> {
    let n = r.u16()?;
    let mut values = Vec::with_capacity(n as usize);
    for _ in 0..n {
        values.push(match r.u8()? {
            b'n' => Value::Null,
            b'u' => Value::Unchanged,
            b't' => {
                let len = r.u32()? as usize;
                let bytes = r.take(len)?;
                Value::Text(
                    String::from_utf8(bytes.to_vec())
                        .map_err(|_| protocol("a text value that is not UTF-8".into()))?,
                )
            }
            b'b' => {
                return Err(protocol(
                    "a binary value (the stream was started without text values)".into(),
                ))
            }
            k => return Err(protocol(format!("a value of kind {:?}", k as char))),
        });
    }
    Ok(values)
}

fn expect_kind(got: u8, want: u8, what: &str) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(protocol(format!(
            "an {what} message with tuple kind {:?}",
            got as char
        )))
    }
}

fn protocol(what: String) -> Error {
    Error::internal(format!("the source's change stream sent {what}"))
        .with_hint("this is a bug of supamigrate or an unexpected server; report it with the source's PostgreSQL version")
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(protocol("a truncated message".into()));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn cstr(&mut self) -> Result<String> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| protocol("a name without its terminator".into()))?;
        let s = String::from_utf8(self.buf[..end].to_vec())
            .map_err(|_| protocol("a name that is not UTF-8".into()))?;
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: &str) -> Vec<u8> {
        let mut b = vec![b't'];
        b.extend((v.len() as u32).to_be_bytes());
        b.extend(v.as_bytes());
        b
    }

    fn relation_bytes() -> Vec<u8> {
        let mut b = vec![b'R'];
        b.extend(16384u32.to_be_bytes());
        b.extend(b"public\0trips\0");
        b.push(b'd');
        b.extend(2u16.to_be_bytes());
        for (flags, name, oid) in [(1u8, "id", 20u32), (0, "note", 25)] {
            b.push(flags);
            b.extend(name.as_bytes());
            b.push(0);
            b.extend(oid.to_be_bytes());
            b.extend((-1i32).to_be_bytes());
        }
        b
    }

    #[test]
    fn decodes_each_message() {
        let rel = match decode(&relation_bytes()).unwrap() {
            Change::Relation(r) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            (rel.schema.as_str(), rel.name.as_str()),
            ("public", "trips")
        );
        assert_eq!(rel.columns.len(), 2);
        assert!(rel.columns[0].key && !rel.columns[1].key);

        let mut ins = vec![b'I'];
        ins.extend(16384u32.to_be_bytes());
        ins.push(b'N');
        ins.extend(2u16.to_be_bytes());
        ins.extend(text("7"));
        ins.push(b'n');
        assert_eq!(
            decode(&ins).unwrap(),
            Change::Insert {
                rel: 16384,
                new: vec![Value::Text("7".into()), Value::Null]
            }
        );

        // An update that changed the key (K) and left a TOASTed value alone (u).
        let mut up = vec![b'U'];
        up.extend(16384u32.to_be_bytes());
        up.push(b'K');
        up.extend(2u16.to_be_bytes());
        up.extend(text("7"));
        up.push(b'n');
        up.push(b'N');
        up.extend(2u16.to_be_bytes());
        up.extend(text("8"));
        up.push(b'u');
        assert_eq!(
            decode(&up).unwrap(),
            Change::Update {
                rel: 16384,
                old: Some(vec![Value::Text("7".into()), Value::Null]),
                new: vec![Value::Text("8".into()), Value::Unchanged]
            }
        );

        let mut del = vec![b'D'];
        del.extend(16384u32.to_be_bytes());
        del.push(b'K');
        del.extend(1u16.to_be_bytes());
        del.extend(text("8"));
        assert!(matches!(
            decode(&del).unwrap(),
            Change::Delete { rel: 16384, .. }
        ));

        let mut tr = vec![b'T'];
        tr.extend(2u32.to_be_bytes());
        tr.push(1);
        tr.extend(1u32.to_be_bytes());
        tr.extend(2u32.to_be_bytes());
        assert_eq!(
            decode(&tr).unwrap(),
            Change::Truncate {
                cascade: true,
                restart_identity: false,
                rels: vec![1, 2]
            }
        );
    }

    #[test]
    fn bad_messages_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"Z",
            b"I\0\0\0\x01",
            b"I\0\0\0\x01X",
            b"R\0\0\0\x01public",
            b"I\0\0\0\x01N\0\x01t\0\0\0\x09ab",
            b"D\0\0\0\x01N\0\0",
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }
}
