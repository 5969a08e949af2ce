//! The copy's source session (`connect::raw`), which speaks the protocol
//! itself to read COPY data in bounded pieces, against real servers: over
//! TLS and without, with SCRAM, MD5 and clear-text passwords, a row far
//! larger than a piece, an error part-way through a COPY, a wrong password.

use futures_util::StreamExt;
use supamigrate::connect::raw::RawSession;
use supamigrate::connect::{connect, ConnInfo, Password};
use supamigrate::ErrorKind;

use super::tls::{ca, localhost_tls, start_cluster, url};

const PIECE: usize = 64 * 1024;

/// Every piece of `sql`'s COPY through the raw session: the data, the rows
/// counted, and the largest piece.
async fn read_all(s: &mut RawSession, sql: &str) -> supamigrate::Result<(Vec<u8>, u64, usize)> {
    let mut copy = s.copy_out(sql).await?;
    let (mut data, mut rows, mut largest) = (Vec::new(), 0, 0);
    while let Some((piece, n)) = copy.next(PIECE).await? {
        largest = largest.max(piece.len());
        data.extend_from_slice(&piece);
        rows += n;
    }
    Ok((data, rows, largest))
}

/// The same COPY through the driver, for comparison.
async fn driver_copy(info: &ConnInfo, sql: &str) -> Vec<u8> {
    let c = connect(info).await.unwrap();
    let stream = c.copy_out(sql).await.unwrap();
    let mut stream = std::pin::pin!(stream);
    let mut data = Vec::new();
    while let Some(chunk) = stream.next().await {
        data.extend_from_slice(&chunk.unwrap());
    }
    data
}

/// A table of small rows around one row of 3 MB, as text and binary COPY.
async fn streams_like_the_driver(info: &ConnInfo) {
    let c = connect(info).await.unwrap();
    c.batch_execute(
        "drop table if exists raw_t; create table raw_t (id int, v text);
         insert into raw_t select g, md5(g::text) from generate_series(1, 5000) g;
         insert into raw_t values (5001, repeat('é', 1500000));
         insert into raw_t select g, null from generate_series(5002, 5100) g;",
    )
    .await
    .unwrap();
    let mut s = RawSession::connect(info).await.unwrap();
    s.execute(supamigrate::pg::TEXT_FORMS).await.unwrap();
    for sql in [
        "copy (select * from raw_t order by id) to stdout",
        "copy (select * from raw_t order by id) to stdout (format binary)",
    ] {
        let (data, rows, largest) = read_all(&mut s, sql).await.unwrap();
        assert!(largest <= PIECE, "a piece of {largest} bytes");
        assert_eq!(data, driver_copy(info, sql).await, "{sql}");
        // Binary COPY's header and trailer come in messages of their own.
        assert!((5100..=5102).contains(&rows), "{rows} rows counted: {sql}");
    }
    // One session, many statements: a transaction and its end.
    s.execute("begin isolation level repeatable read read only")
        .await
        .unwrap();
    let (data, rows, _) = read_all(&mut s, "copy (select 1) to stdout").await.unwrap();
    assert_eq!((data.as_slice(), rows), (&b"1\n"[..], 1));
    s.execute("commit").await.unwrap();
}

/// An error part-way: said with the server's message and classified; the
/// session can go on.
async fn errors_part_way(info: &ConnInfo) {
    let mut s = RawSession::connect(info).await.unwrap();
    let e = read_all(
        &mut s,
        "copy (select 1 / (g - 3000) from generate_series(1, 5000) g) to stdout",
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Database, "{e}");
    assert!(e.to_string().contains("division by zero"), "{e}");
    let e = s
        .copy_out("copy no_such_table to stdout")
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("no_such_table"), "{e}");
    let (data, _, _) = read_all(&mut s, "copy (select 'still here') to stdout")
        .await
        .unwrap();
    assert_eq!(data, b"still here\n");
    let e = s.execute("select 1/0").await.unwrap_err();
    assert!(e.to_string().contains("division by zero"), "{e}");
    s.execute("select 1").await.unwrap();
}

#[tokio::test]
async fn raw_session_streams_copy_in_bounded_pieces_over_tls_and_without() {
    let authority = ca("supamigrate raw test CA");
    let (dir, cluster) = start_cluster(Some(localhost_tls(&authority)));
    let pem = dir.path().join("ca.pem");
    std::fs::write(&pem, authority.cert.pem()).unwrap();
    let c = &cluster.0;

    let tls = url(c, "localhost", "verify-full", &pem);
    streams_like_the_driver(&tls).await;
    errors_part_way(&tls).await;
    let plain = url(c, "127.0.0.1", "disable", &pem);
    streams_like_the_driver(&plain).await;

    // A CA that did not issue the certificate: refused as the driver refuses.
    let other = ca("another CA");
    let other_pem = dir.path().join("other.pem");
    std::fs::write(&other_pem, other.cert.pem()).unwrap();
    let e = RawSession::connect(&url(c, "localhost", "verify-full", &other_pem))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");

    // A wrong password: bad input, and the password is nowhere in the error.
    let mut wrong = plain.clone();
    wrong.password = Some(Password::new("not-the-password"));
    let e = RawSession::connect(&wrong).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(!format!("{e:?}").contains("not-the-password"));
}

#[tokio::test]
async fn raw_session_logs_in_with_md5_and_clear_text_passwords() {
    let (_dir, cluster) = start_cluster(None);
    let c = &cluster.0;
    let admin = connect(&c.superuser_conninfo("postgres")).await.unwrap();
    admin
        .batch_execute(
            "set password_encryption = 'md5';
             create role raw_md5 login password 'md5-pass';
             create role raw_clear login password 'clear-pass';",
        )
        .await
        .unwrap();
    let hba = c.dir().join("data/pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!(
            "host all raw_md5 127.0.0.1/32 md5\nhost all raw_clear 127.0.0.1/32 password\n{rules}"
        ),
    )
    .unwrap();
    admin
        .batch_execute("select pg_reload_conf()")
        .await
        .unwrap();
    for (user, password) in [("raw_md5", "md5-pass"), ("raw_clear", "clear-pass")] {
        let info = c.conninfo(user, &Password::new(password), "postgres");
        let mut s = RawSession::connect(&info).await.unwrap();
        let (data, _, _) = read_all(&mut s, "copy (select current_user) to stdout")
            .await
            .unwrap();
        assert_eq!(data, format!("{user}\n").as_bytes());
    }
}
